import pytest
import torch

from se3unet.equivariant.rotation import random_rotation
from se3unet.geometry.knn import gather_points, knn_graph, knn_query


def test_knn_matches_brute_force_and_excludes_self():
    x = torch.randn(2, 50, 3, dtype=torch.float64)
    nb = knn_graph(x, 6)
    d = torch.cdist(x, x)
    d.diagonal(dim1=1, dim2=2).fill_(float("inf"))
    expected = d.topk(6, largest=False).indices
    assert torch.equal(nb, expected)
    assert not (nb == torch.arange(50).view(1, 50, 1)).any()


def test_knn_picks_the_same_neighbours_in_any_pose(dtype):
    x = torch.randn(2, 300, 3, dtype=dtype)
    for _ in range(5):
        r = random_rotation(dtype)
        assert torch.equal(knn_graph(x, 10), knn_graph(x @ r.T + torch.randn(3, dtype=dtype), 10))


def test_knn_refuses_clouds_smaller_than_k_plus_one():
    with pytest.raises(ValueError, match="at least 6"):
        knn_graph(torch.randn(1, 5, 3), 5)


def test_knn_query_finds_exact_matches_first():
    points = torch.randn(1, 30, 3)
    idx = knn_query(points[:, :7], points, 2)
    assert torch.equal(idx[0, :, 0], torch.arange(7))


def test_gather_points_matches_indexing_and_its_gradient_is_the_same_every_time():
    values = torch.randn(2, 2048, 16, 3, requires_grad=True)
    index = torch.randint(0, 2048, (2, 2048, 12))
    gathered = gather_points(values, index)
    assert torch.equal(gathered, values[torch.arange(2).view(2, 1, 1), index])
    weights = torch.randn_like(gathered)
    grads = [torch.autograd.grad((gather_points(values, index) * weights).sum(), values)[0] for _ in range(4)]
    assert all(torch.equal(grads[0], g) for g in grads[1:])
