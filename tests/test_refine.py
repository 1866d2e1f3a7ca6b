"""Coarse to fine (se3unet.refine, se3unet.data.crops): the training crops, the refiner's
exactness under rotation and translation, what it keeps coarse, and predict with and without it."""

import csv
import json

import numpy as np
import pytest
import torch
from helpers import sphere_mesh
from scipy.spatial.transform import Rotation

from se3unet.cli import main
from se3unet.data.crops import CropDataConfig, CropSettings, crop_model_input, training_crops
from se3unet.data.io import Surface
from se3unet.inference import Checkpoint, Decoding, InferenceState, ScanSettings
from se3unet.model import SE3Unet, preset
from se3unet.refine import RefineSettings, Refiner, refiner_for, refiner_path, save_refiner

NAMES = [f"p{i}" for i in range(6)]
TINY = preset("default", num_outputs=6, channels=(4, 4), neighbours=6, pool_neighbours=4, head_hidden=8,
              radial_hidden=8, head="offset")
CROP = CropSettings(radius_mm=20.0, points=64, samples=256)
# Everything a random network votes for is accepted, so that a test sees the votes themselves.
ACCEPT_ALL = RefineSettings(crop=CROP, anchors=8192, gap_mm=1e9, max_move=1e9)


def _bumpy_sphere():
    vertices, faces = sphere_mesh(radius=80.0, subdivisions=4)
    direction = vertices / np.linalg.norm(vertices, axis=1, keepdims=True)
    bumps = 4.0 * np.sin(3 * direction[:, 0]) * np.cos(2 * direction[:, 1]) + 2.0 * direction[:, 2] ** 2
    return Surface(vertices + direction * bumps[:, None], faces)


def _checkpoint(path, config, seed):
    torch.manual_seed(seed)
    model = SE3Unet(config)
    Checkpoint(InferenceState(config.to_dict(), model.state_dict(), NAMES, ScanSettings(samples=1024, points=96),
                              Decoding("softmax", "offset_vote"))).save(path)


def _refiner(settings=ACCEPT_ALL, seed=1):
    torch.manual_seed(seed)
    config = TINY.replace(normals=False)
    model = SE3Unet(config)
    inference = InferenceState(config.to_dict(), model.state_dict(), NAMES, ScanSettings(samples=256, points=64,
                                                                                           normals=False),
                               Decoding("softmax", "offset_vote"))
    return Refiner(model, inference, settings, base_sha256="")


def test_training_crops_hold_their_landmark_near_the_middle_and_label_only_what_lies_inside():
    surface = _bumpy_sphere()
    points = Surface(surface.vertices).vertices
    rng = np.random.default_rng(0)
    truth = points[[0, 1, 50, 51, 300, 301]]
    errors = rng.normal(0, 30.0, (5, 6, 3))  # far past the radius: the shift is cut to max_shift of it
    errors[:, 5] = np.nan  # no scan of the pool has this landmark: its crop is centred on the truth, jittered
    dense = np.concatenate([points, rng.normal(0, 1, (20000, 3))])  # a dense cloud: the sphere and its inside
    dense = np.concatenate([dense, (dense / np.linalg.norm(dense, axis=1, keepdims=True)) * 80])
    config = CropDataConfig(crop=CROP, jitter_mm=0.5)
    crops = training_crops(dense, truth, errors, config, rng, "s1")
    assert [c.expression for c in crops] == [f"crop-{i}" for i in range(6)]
    for index, crop in enumerate(crops):
        assert crop.points.shape == (64, 3) and crop.scale == CROP.radius_mm
        labelled = np.isfinite(crop.landmarks).all(axis=1)
        assert labelled[index]
        own, placed = crop.landmarks[index] * crop.scale, crop.points * crop.scale  # mm, about the crop's centroid
        # every point lies within the radius of a centre at most max_shift of it (+ jitter) from its landmark
        reach = (1 + config.max_shift) * CROP.radius_mm + 3 * config.jitter_mm
        assert np.linalg.norm(placed - own, axis=1).max() <= reach
        far = np.linalg.norm(truth - truth[index], axis=1) > (config.label_share + config.max_shift) * CROP.radius_mm
        assert not labelled[far].any()


def test_the_refiner_gives_the_same_landmarks_in_five_random_poses():
    surface = _bumpy_sphere()
    rng = np.random.default_rng(3)
    coarse = surface.vertices[[5, 80, 160, 400, 900, 1500]] + rng.normal(0, 2.0, (6, 3))
    refiner = _refiner()
    found = []
    for pose in range(5):
        rotation = Rotation.random(random_state=pose).as_matrix()
        shift = rng.normal(0, 100, 3)
        moved = Surface(surface.vertices @ rotation.T + shift, surface.triangles)
        refined = refiner(moved, coarse @ rotation.T + shift, NAMES)
        assert refined.refined.all()
        found.append((refined.landmarks - shift) @ rotation)
    assert np.abs(np.stack(found) - found[0]).max() < 0.01
    assert np.linalg.norm(found[0] - coarse, axis=1).mean() > 0.1  # the votes moved the landmarks


def test_a_landmark_without_surface_to_read_keeps_its_coarse_place():
    surface = _bumpy_sphere()
    coarse = surface.vertices[[5, 80, 160, 400, 900, 1500]].copy()
    coarse[1] *= 2.0  # 80 mm away from the surface: nothing in its crop
    middles = surface.vertices[surface.triangles].mean(axis=1)
    holed = Surface(surface.vertices, surface.triangles[np.linalg.norm(middles - coarse[2], axis=1) > 30])
    # the crops snap onto the surface (the hole's rim, the sphere below): what they read is too far to be it
    refined = _refiner(RefineSettings(crop=CROP, anchors=8192, gap_mm=1e9))(holed, coarse, NAMES)
    assert not refined.refined[1] and not refined.refined[2]
    assert np.array_equal(refined.landmarks[[1, 2]], coarse[[1, 2]]) and refined.refined[[0, 3, 4, 5]].all()
    assert refined.chosen.all() and list(np.flatnonzero(refined.kept)) == [1, 2]
    # Landmarks the refiner's settings do not choose keep their place and are not reported as unreadable;
    # a share below 1 takes that much of the refined place.
    full = _refiner(RefineSettings(crop=CROP, anchors=8192))(surface, coarse, NAMES)
    some = _refiner(RefineSettings(crop=CROP, anchors=8192, blend={"p0": 1.0, "p3": 0.25}))(surface, coarse, NAMES)
    assert list(np.flatnonzero(some.chosen)) == [0, 3] and not some.kept.any()
    assert np.array_equal(some.landmarks[[1, 2, 4, 5]], coarse[[1, 2, 4, 5]]) and some.refined[[0, 3]].all()
    assert np.allclose(some.landmarks[0], full.landmarks[0])
    assert np.allclose(some.landmarks[3], 0.25 * full.landmarks[3] + 0.75 * coarse[3])
    # A strict gap: a refined landmark must lie on the crop's surface; random votes do not.
    strict = _refiner(RefineSettings(crop=CROP, anchors=8192, gap_mm=1e-6, max_move=1e9))(surface, coarse, NAMES)
    assert not strict.refined.any() and np.array_equal(strict.landmarks, coarse)
    sparse = Surface(surface.vertices[::20])  # a cloud far too sparse for a dense crop
    assert not _refiner()(sparse, coarse, NAMES).refined.any()


def test_a_refiner_file_applies_only_to_the_checkpoint_it_was_made_for(tmp_path):
    _checkpoint(tmp_path / "m.pt", TINY, 0)
    _checkpoint(tmp_path / "r.pt", TINY.replace(normals=False), 1)
    assert refiner_for(tmp_path / "m.pt") is None
    save_refiner(refiner_path(tmp_path / "m.pt"), tmp_path / "r.pt", tmp_path / "m.pt", ACCEPT_ALL)
    loaded = refiner_for(tmp_path / "m.pt")
    assert loaded is not None and loaded.settings == ACCEPT_ALL and loaded.inference.landmark_names == NAMES
    (tmp_path / "m.pt").write_bytes((tmp_path / "m.pt").read_bytes() + b"\0")  # other weights
    assert refiner_for(tmp_path / "m.pt") is None


def test_predict_refines_with_the_checkpoints_refiner_when_asked(face_obj, tmp_path, capsys):
    _checkpoint(tmp_path / "m.pt", TINY, 0)
    _checkpoint(tmp_path / "r.pt", TINY.replace(normals=False), 1)
    save_refiner(refiner_path(tmp_path / "m.pt"), tmp_path / "r.pt", tmp_path / "m.pt", ACCEPT_ALL)
    args = [str(face_obj), "--checkpoint", str(tmp_path / "m.pt"), "--no-picture", "--samplings", "2",
            "--device", "cpu", "--format", "csv"]
    assert main(["predict", *args, "--output", str(tmp_path / "fine"), "--refine"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"][0]
    assert result["refined"] == "6/6" and result["not_refined"] == []
    assert main(["predict", *args, "--output", str(tmp_path / "coarse")]) == 0
    assert "refined" not in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["results"][0]
    (tmp_path / "m.refiner.pt").unlink()
    assert main(["predict", *args, "--output", str(tmp_path / "asked"), "--refine"]) == 0
    output = capsys.readouterr()
    assert "no refiner was made for these weights" in output.err
    assert "refined" not in json.loads(output.out.strip().splitlines()[-1])["results"][0]

    def read(folder):
        return np.array([[float(v) for v in row[1:4]] for row in list(csv.reader((folder / "face.landmarks.csv").open()))[1:]])

    moved = np.linalg.norm(read(tmp_path / "fine") - read(tmp_path / "coarse"), axis=1)
    assert (moved > 1e-3).all()
    summary = list(csv.DictReader((tmp_path / "fine" / "summary.csv").open()))
    assert summary[0]["refined"] == "6/6"


def test_a_crop_is_read_in_the_scale_of_its_radius():
    points = np.random.default_rng(0).normal(0, 5.0, (300, 3)) + 40.0
    crop = crop_model_input(points, 64, 20.0)
    assert crop.scale == 20.0 and np.allclose(crop.points.mean(0), 0, atol=1e-5) and not crop.normals.any()
    restored = crop.points.astype(np.float64) * crop.scale + crop.centre  # FPS keeps input points
    assert np.linalg.norm(restored[:, None] - points[None], axis=2).min(axis=1).max() < 1e-4


def test_the_shipped_refiner_belongs_to_the_shipped_weights_and_stays_small():
    from se3unet.pretrained import pretrained_path

    refiner = refiner_for(pretrained_path())
    assert refiner is not None and refiner.inference.landmark_names == [f"ibug{i}" for i in range(1, 69)]
    assert refiner.settings.blend and all(0 < w <= 1 for w in refiner.settings.blend.values())
    assert not refiner.model.config.normals and refiner.settings.crop == CropSettings()
    shipped = sum(p.stat().st_size for p in pretrained_path().parent.glob("*.pt"))
    assert shipped <= 10 * 2**20
