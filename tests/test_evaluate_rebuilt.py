"""`se3unet evaluate --rebuilt`: predict's path scored on a cache's scans rebuilt whole."""

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh

from se3unet.cli import main
from se3unet.data.preprocess import ScannerEffects
from se3unet.data.prepare import PrepareConfig, load_split, prepare
from se3unet.evaluate.rebuilt import SCAN_DENSITY, rebuilt_scans


def distance_to_mesh(vertices, triangles, points, candidates=16):
    """Each point's distance to the mesh (exact over its nearest triangles by centroid)."""
    from scipy.spatial import cKDTree

    corners = vertices[triangles]
    nearest = cKDTree(corners.mean(1)).query(points, candidates)[1]  # [P, C]
    repeated = np.repeat(points, candidates, axis=0)
    closest = trimesh.triangles.closest_point(corners[nearest.ravel()], repeated)
    return np.linalg.norm(closest - repeated, axis=1).reshape(-1, candidates).min(1)


@pytest.fixture
def surrounded_cache(sfm_dir, tmp_path):
    """Surrey faces, every one in a synthetic skull and neck (its draws must be made again)."""
    config = PrepareConfig(source="sfm", path=str(sfm_dir), subjects=4, samples=2000, points=256, val=0, test=2,
                           seed=11, surround=1.0)
    return prepare(config, tmp_path / "cache", progress=False).path


def test_rebuilt_scans_are_the_cached_scans_whole(surrounded_cache):
    cached = load_split(surrounded_cache, "test")
    scans = list(rebuilt_scans(surrounded_cache))
    assert [s.origin for s in scans] == cached["origin"].tolist()
    for scan, points, landmarks, scale in zip(scans, cached["points"], cached["landmarks"], cached["scale"]):
        assert scan.surface.is_mesh
        # The cache's landmarks are the rebuilt ones, normalised: same shape to float32 precision.
        offset = scan.landmarks.mean(0) - (landmarks * scale).mean(0)
        assert np.allclose(landmarks * scale + offset, scan.landmarks, atol=1e-3)
        # ... and every cached point lies on the rebuilt surface, skull and neck included (a face
        # alone would leave the points sampled from the head 10s of mm away).
        distance = distance_to_mesh(scan.surface.vertices, scan.surface.triangles, points * scale + offset)
        assert distance.max() < 0.01
        assert np.ptp(scan.surface.vertices[:, 1]) > 1.5 * np.ptp(scan.landmarks[:, 1])  # a head, not the face


def test_scanner_effects_act_on_the_dense_surface(sfm_dir, tmp_path):
    effects = ScannerEffects(noise=0.3, holes=2, hole_radius=15.0)
    config = PrepareConfig(source="sfm", path=str(sfm_dir), subjects=3, samples=1000, points=256, val=0, test=1,
                           seed=5, scanner=effects)
    cache = prepare(config, tmp_path / "cache", progress=False).path
    clean = prepare(PrepareConfig(**{**config.__dict__, "scanner": ScannerEffects()}), tmp_path / "c",
                    progress=False).path
    scan, again = next(rebuilt_scans(cache)), next(rebuilt_scans(cache))
    mesh = next(rebuilt_scans(clean)).surface
    assert not scan.surface.is_mesh and np.array_equal(scan.surface.vertices, again.surface.vertices)
    area = trimesh.Trimesh(mesh.vertices, mesh.triangles).area
    # Dense, as a scanner gives (not the cache's 1,000 samples), with two holes' worth missing
    assert 0.6 * SCAN_DENSITY * area < len(scan.surface.vertices) < 0.99 * SCAN_DENSITY * area
    distance = distance_to_mesh(mesh.vertices, mesh.triangles, scan.surface.vertices[::50])
    assert 0.1 < distance.mean() < 0.5  # the 0.3 mm noise, on the same face


def test_evaluate_rebuilt_scores_predict_with_and_without_the_refiner(sfm_dir, tmp_path, capsys):
    config = PrepareConfig(source="sfm", path=str(sfm_dir), subjects=3, samples=1000, points=256, val=0, test=1,
                           seed=5)
    cache = prepare(config, tmp_path / "cache", progress=False).path
    out = tmp_path / "report"
    assert main(["evaluate", "--cache", str(cache), "--rebuilt", "--samplings", "2", "--output", str(out),
                 "--quiet"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rows"]
    assert list(rows) == ["predict --no-refine", "predict"]  # the shipped model has a refiner
    for row in rows.values():  # the shipped model on an unseen Surrey face: a few mm, not tens
        assert 0.3 < row["error_mm"] < 6.0 and row["seconds_per_scan"] > 0
    table = (out / "table.md").read_text()
    assert "| predict --no-refine |" in table and "| jaw |" in table
    saved = np.load(out / "predictions.npz")
    assert saved["truth"].shape == saved["predict"].shape == (1, 50, 3)  # the 50 Surrey landmarks scored
    error = np.linalg.norm(saved["predict_no_refine"] - saved["truth"], axis=2).mean()
    assert error == pytest.approx(rows["predict --no-refine"]["error_mm"], rel=1e-6)
    for picture in ("per_landmark.png", "ced.png"):
        assert (out / picture).stat().st_size > 10_000


def test_a_scan_that_cannot_be_rebuilt_is_named(tmp_path, face_obj):
    import shutil

    from se3unet.data.errors import DataError

    folder = tmp_path / "scans"
    for name in ("a", "b", "c"):
        (folder / name).mkdir(parents=True)
        shutil.copy(face_obj, folder / name / "face.obj")
        np.savetxt(folder / name / "face.landmarks.csv", np.random.default_rng(0).normal(0, 30, (5, 3)), delimiter=",")
    config = PrepareConfig(source="folder", path=str(folder), samples=1000, points=256, val=0, test=1, seed=2)
    cache = prepare(config, tmp_path / "cache", progress=False).path
    test_scan = next(rebuilt_scans(cache)).origin
    Path(test_scan).write_text("v 0 0\n")  # damaged since prepare
    with pytest.raises(DataError) as raised:
        next(rebuilt_scans(cache))
    assert test_scan in str(raised.value)
