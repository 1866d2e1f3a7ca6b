"""FPS, the level hierarchy, pooling and upsampling."""

import pytest
import torch

from se3unet.equivariant.rotation import random_rotation, relative_error, rotate_features
from se3unet.geometry.fps import farthest_point_sample, invariant_start
from se3unet.geometry.hierarchy import build_hierarchy, level_sizes
from se3unet.geometry.knn import gather_points
from se3unet.model.pooling import Pooling3D
from se3unet.model.upsampling import Upsampling3D


def test_fps_starts_nearest_the_centroid_and_is_greedy():
    x = torch.randn(2, 200, 3, dtype=torch.float64)
    idx = farthest_point_sample(x, 30)
    assert torch.equal(idx[:, 0], invariant_start(x))
    for b in range(2):
        for i in range(1, 30):
            chosen = x[b, idx[b, :i]]
            min_dist = torch.cdist(x[b], chosen).min(dim=1).values
            assert torch.isclose(min_dist[idx[b, i]], min_dist.max())
    assert all(len(set(row.tolist())) == 30 for row in idx)


def test_fps_picks_the_same_points_in_any_pose(dtype):
    x = torch.randn(2, 1024, 3, dtype=dtype)
    idx = farthest_point_sample(x, 256)
    for _ in range(3):
        moved = x @ random_rotation(dtype).T + torch.randn(3, dtype=dtype) * 10
        assert torch.equal(farthest_point_sample(moved, 256), idx)


def test_fps_refuses_impossible_counts():
    with pytest.raises(ValueError, match="cannot sample 11 of 10"):
        farthest_point_sample(torch.randn(1, 10, 3), 11)


def test_hierarchy_levels_have_the_documented_shapes():
    x = torch.randn(2, 300, 3)
    levels = build_hierarchy(x, levels=2, keep=0.25, neighbours=[8, 6, 4], pool_neighbours=5)
    assert [lv.num_points for lv in levels] == level_sizes(300, 2, 0.25) == [300, 75, 19]
    for i in (1, 2):
        lv, finer = levels[i], levels[i - 1]
        assert torch.equal(lv.positions, gather_points(finer.positions, lv.kept))
        # each kept point's pooling neighbourhood starts with itself (distance 0)
        assert torch.equal(lv.pool_index[:, :, 0], lv.kept)
        assert lv.up_index.shape == (2, finer.num_points, 3)
        assert torch.allclose(lv.up_weights.sum(-1), torch.ones(2, finer.num_points))
    assert levels[2].neighbours.shape == (2, 19, 4)


def test_hierarchy_is_the_same_in_any_pose():
    x = torch.randn(1, 400, 3, dtype=torch.float64)
    a = build_hierarchy(x, 2, 0.3, 8)
    b = build_hierarchy(x @ random_rotation().T - 4.0, 2, 0.3, 8)
    for la, lb in zip(a, b):
        for name, value in la.state().items():
            if name == "positions":
                continue
            other = lb.state()[name]
            assert torch.allclose(value, other) if value.is_floating_point() else torch.equal(value, other), name


def test_hierarchy_refuses_levels_too_small_for_k():
    with pytest.raises(ValueError, match="level 1"):
        build_hierarchy(torch.randn(1, 100, 3), levels=1, keep=0.1, neighbours=16)


def _features(n, dtype=torch.float64):
    return {d: torch.randn(1, n, 3, 2 * d + 1, dtype=dtype) for d in (0, 1, 2)}


def test_upsampling_reproduces_a_constant_field_exactly():
    x = torch.randn(1, 200, 3, dtype=torch.float64)
    levels = build_hierarchy(x, 1, 0.2, 6)
    constant = {d: torch.randn(1, 1, 2, 2 * d + 1, dtype=torch.float64).expand(1, 40, 2, 2 * d + 1) for d in (0, 1)}
    up = Upsampling3D()(constant, levels[1])
    for d in constant:
        assert torch.allclose(up[d], constant[d][:, :1].expand_as(up[d]), atol=1e-14, rtol=0)


def test_upsampling_and_mean_and_max_pooling_commute_with_rotation():
    x = torch.randn(1, 200, 3, dtype=torch.float64)
    r = random_rotation()
    levels = build_hierarchy(x, 1, 0.2, 6, pool_neighbours=6)
    f = _features(200)
    for aggregation in ("mean", "sum", "max", "multi"):
        pool = Pooling3D(0.2, aggregation)
        err = relative_error(pool(rotate_features(f, r), levels[1]), rotate_features(pool(f, levels[1]), r))
        assert err < 1e-12, aggregation
    coarse = _features(40)
    err = relative_error(Upsampling3D()(rotate_features(coarse, r), levels[1]),
                         rotate_features(Upsampling3D()(coarse, levels[1]), r))
    assert err < 1e-12


def test_equivariant_max_keeps_the_largest_norm_and_componentwise_max_breaks_equivariance():
    x = torch.randn(1, 200, 3, dtype=torch.float64)
    levels = build_hierarchy(x, 1, 0.2, 6, pool_neighbours=6)
    f = _features(200)
    pooled = Pooling3D(0.2, "max")(f, levels[1])[1]  # [1, 40, 3, 3]
    neighbourhood = gather_points(f[1], levels[1].pool_index)
    assert torch.allclose(pooled.norm(dim=-1), neighbourhood.norm(dim=-1).amax(dim=2))
    r = random_rotation()
    pool = Pooling3D(0.2, "componentwise_max")
    err = relative_error(pool(rotate_features(f, r), levels[1]), rotate_features(pool(f, levels[1]), r))
    assert err > 0.05


def test_pooling_refuses_bad_fractions_and_aggregations():
    with pytest.raises(ValueError, match="fraction"):
        Pooling3D(1.5)
    with pytest.raises(ValueError, match="aggregation"):
        Pooling3D(0.5, "median")


def test_fps_kernels_agree():
    from se3unet.geometry.fps import _fps_torch

    x = torch.randn(3, 500, 3, dtype=torch.float64)
    assert torch.equal(farthest_point_sample(x, 100), _fps_torch(x, invariant_start(x), 100))
