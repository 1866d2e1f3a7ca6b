"""Preprocessing steps and ICP realignment."""

import numpy as np
import pytest

from se3unet.data.preprocess import (ScannerEffects, binary_labels, farthest_points, gaussian_heatmaps, normalise,
                                     prepare_points, random_rigid_motion, sample_surface)
from se3unet.geometry.icp import align, rotation_angle_degrees


def test_heatmaps_and_labels_follow_the_formula():
    rng = np.random.default_rng(0)
    points, landmarks = rng.normal(size=(30, 3)), rng.normal(size=(4, 3))
    h = gaussian_heatmaps(points, landmarks, 0.3)
    for n, j in [(0, 0), (5, 3), (29, 2)]:
        d2 = np.sum((points[n] - landmarks[j]) ** 2)
        assert h[n, j] == pytest.approx(np.exp(-d2 / (2 * 0.3**2)))
    assert gaussian_heatmaps(landmarks[:1], landmarks[:1], 0.1)[0, 0] == 1.0
    assert np.array_equal(binary_labels(h, 0.5), h > 0.5)
    missing = landmarks.copy()
    missing[1] = np.nan
    assert (gaussian_heatmaps(points, missing, 0.3)[:, 1] == 0).all()


def test_normalise_keeps_the_factor_for_millimetres():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(100, 3)) * 50 + 7
    unit, centre, scale = normalise(points)
    assert np.allclose(unit.mean(0), 0, atol=1e-12)
    assert np.linalg.norm(unit, axis=1).max() == pytest.approx(1.0)
    assert np.allclose(unit * scale + centre, points)


def test_surface_sampling_lies_on_the_mesh_with_normals(sfm_model):
    rng = np.random.default_rng(2)
    v = sfm_model.shape.mean
    points, normals = sample_surface(v, sfm_model.triangles, 8192, rng)
    assert points.shape == (8192, 3) and np.allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-6)
    from scipy.spatial import cKDTree

    # every sample within a triangle's reach of a vertex (mean edge length is a few mm)
    assert cKDTree(v).query(points)[0].max() < 15


def test_fps_keeps_the_same_points_in_any_pose():
    rng = np.random.default_rng(3)
    points = rng.normal(size=(2000, 3))
    r, t = random_rigid_motion(rng, 5.0)
    assert np.array_equal(farthest_points(points, 300), farthest_points(points @ r.T + t, 300))


def test_random_rotations_are_proper_and_spread_over_so3():
    rng = np.random.default_rng(4)
    rotations = [random_rigid_motion(rng)[0] for _ in range(2000)]
    for r in rotations[:20]:
        assert np.allclose(r @ r.T, np.eye(3), atol=1e-12) and np.linalg.det(r) == pytest.approx(1.0)
    # uniform over SO(3): the image of a fixed axis is uniform on the sphere (mean ~ 0)
    axes = np.array([r[:, 2] for r in rotations])
    assert np.abs(axes.mean(0)).max() < 0.06


def test_scanner_effects_remove_and_perturb_points():
    rng = np.random.default_rng(5)
    points = rng.uniform(-50, 50, size=(5000, 3))
    effects = ScannerEffects(noise=0.5, holes=3, hole_radius=15, crop=60, outliers=0.05)
    out, _ = effects.apply(points, np.zeros_like(points), rng)
    assert len(out) < len(points)
    assert np.linalg.norm(out - points.mean(0), axis=1).max() <= np.sqrt(3) * 50 + 5


def test_prepare_points_maps_landmarks_with_the_points():
    rng = np.random.default_rng(6)
    points = rng.normal(size=(600, 3)) * 40
    landmarks = points[[3, 10, 50]]
    scan = prepare_points(points, None, landmarks, 200, 1.0, "s", "e")
    assert scan.points.shape == (200, 3) and scan.landmarks.shape == (3, 3)
    centre = points[farthest_points(points, 200)].mean(0)
    assert np.allclose(scan.landmarks * scan.scale + centre, landmarks, atol=1e-3)


@pytest.mark.parametrize("trial", range(4))
def test_icp_recovers_a_random_rigid_motion_from_any_start(sfm_model, trial):
    rng = np.random.default_rng(100 + trial)
    vertices, _ = sfm_model.random_face(rng)
    reference, normals = sample_surface(vertices, sfm_model.triangles, 8192, rng)
    scan, _ = sample_surface(vertices, sfm_model.triangles, 2048, rng)  # another sampling
    rotation, translation = random_rigid_motion(rng, 200.0)
    fit = align(scan @ rotation.T + translation, reference, normals)
    assert rotation_angle_degrees(fit.rotation @ rotation, np.eye(3)) < 1.0
    recovered_translation = fit.rotation @ translation + fit.translation  # should be 0 (mm)
    assert np.linalg.norm(recovered_translation) < 0.5


def test_estimated_normals_match_a_sphere_and_point_outwards():
    from se3unet.data.preprocess import estimate_normals

    rng = np.random.default_rng(7)
    points = rng.normal(size=(2000, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    normals = estimate_normals(points)
    assert np.abs((normals * points).sum(1)).min() > 0.95  # along the radius
    assert ((normals * points).sum(1) > 0).all()  # outwards


def _sphere(n=4000, radius=80.0, seed=0):
    v = np.random.default_rng(seed).standard_normal((n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v * radius, v


def test_single_view_keeps_the_side_that_faces_the_scanner():
    points, normals = _sphere()
    seen, seen_normals = ScannerEffects(view=1.0, view_cone=0.0).apply(points, -normals, np.random.default_rng(1))
    # A view from the front (cone 0): the back half is gone, whatever the normals' signs.
    assert 0.4 < len(seen) / len(points) < 0.6 and (seen[:, 2] > 0).all()
    assert np.array_equal(seen_normals, -normals[points[:, 2] > 0])  # each point keeps its own normal
    untouched, _ = ScannerEffects(view=0.0).apply(points, normals, np.random.default_rng(1))
    assert len(untouched) == len(points)


def test_uneven_density_and_field_of_view():
    points, normals = _sphere(20000)
    thinned, _ = ScannerEffects(density=1.0, density_low=0.2).apply(points, normals, np.random.default_rng(2))
    assert 0.5 < len(thinned) / len(points) < 0.7  # on average (1 + 0.2) / 2 of the points stay
    cropped, _ = ScannerEffects(fov=1.0, fov_min=50.0, fov_max=60.0).apply(
        points, normals, np.random.default_rng(3), centre=np.array([0.0, 0.0, 80.0]))
    distance = np.linalg.norm(cropped - [0.0, 0.0, 80.0], axis=1)
    assert distance.max() <= 60.0 and len(cropped) < 0.25 * len(points)
    assert ScannerEffects(fov=0.5).active and not ScannerEffects().active


def test_the_first_points_of_a_prepared_scan_are_the_scan_prepared_with_fewer(sfm_dir, tmp_path):
    from se3unet.data.prepare import PrepareConfig, load_split, prepare
    from se3unet.data.preprocess import fewer_points

    config = dict(source="sfm", path=str(sfm_dir), subjects=3, samples=400, val=0, test=0,
                  scanner=ScannerEffects(noise=0.3))
    large = load_split(prepare(PrepareConfig(**config, points=120), tmp_path / "a", progress=False).path, "train")
    small = load_split(prepare(PrepareConfig(**config, points=50), tmp_path / "b", progress=False).path, "train")
    cut = fewer_points(large, 50)
    for key in ("points", "normals", "landmarks", "scale"):
        assert np.allclose(cut[key], small[key], atol=1e-5), key
    with pytest.raises(ValueError, match="cannot take 130 points of scans that have 120"):
        fewer_points(large, 130)
