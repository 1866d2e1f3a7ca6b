"""Finding the face in a scan larger than a face (se3unet.locate): the crop's sampling, the vote
spread that tells a face from the rest, and the shipped model on Surrey faces embedded in a
synthetic skull cap and neck, in random poses."""

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import se3unet
from se3unet.data.io import Surface
from se3unet.data.preprocess import sample_sphere
from se3unet.data.sources import SurreyFaceSource
from se3unet.data.synthetic_head import embed_in_head
from se3unet.inference.decode import vote_spread
from se3unet.locate import Anchors, LandmarkReader, LocateSettings, locate
from se3unet.predict import surface_input


def grid_mesh(size: float, cells: int) -> Surface:
    """A flat square of ``size`` mm in the z = 0 plane, two triangles per cell."""
    x, y = np.meshgrid(np.linspace(0, size, cells + 1), np.linspace(0, size, cells + 1))
    vertices = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], axis=1)
    corner = (np.arange(cells)[:, None] * (cells + 1) + np.arange(cells)[None]).ravel()
    triangles = np.concatenate([np.stack([corner, corner + 1, corner + cells + 2], 1),
                                np.stack([corner, corner + cells + 2, corner + cells + 1], 1)])
    return Surface(vertices, triangles)


@pytest.mark.parametrize("cells", [40, 1])  # small triangles; two triangles far larger than the sphere
def test_a_crop_of_a_mesh_is_sampled_as_densely_as_a_scan_of_its_size(cells):
    points, normals = sample_sphere(grid_mesh(400.0, cells), np.array([200.0, 200.0, 0.0]), 50.0, 2000,
                                    np.random.default_rng(0))
    assert np.linalg.norm(points - [200.0, 200.0, 0.0], axis=1).max() <= 50.0
    assert 1700 < len(points) < 2300  # about the samples asked for, inside the sphere alone
    assert np.allclose(np.abs(normals[:, 2]), 1.0)


def test_a_crop_of_a_cloud_keeps_its_points_inside_the_sphere():
    cloud = np.random.default_rng(1).uniform(-100, 100, size=(5000, 3))
    points, normals = sample_sphere(Surface(cloud), np.zeros(3), 60.0, 100_000, np.random.default_rng(0))
    inside = np.linalg.norm(cloud, axis=1) <= 60.0
    assert normals is None and len(points) == inside.sum()
    assert set(map(tuple, points)) == set(map(tuple, cloud[inside]))


def test_a_crop_centre_off_by_float32_error_is_moved_onto_the_same_surface_sample():
    mesh = grid_mesh(100.0, 20)
    anchors = Anchors(mesh, 4000)
    rng = np.random.default_rng(1)
    for centre in anchors.points[rng.choice(4000, 20, replace=False)] + rng.normal(0, 0.3, (20, 3)):
        snapped = anchors.snap(centre)
        assert any(np.array_equal(snapped, p) for p in anchors.points)
        assert np.array_equal(anchors.snap(centre + rng.normal(0, 1e-4, 3)), snapped)
    turn = Rotation.random(random_state=2).as_matrix()
    turned = Anchors(Surface(mesh.vertices @ turn.T + 5.0, mesh.triangles), 4000)
    assert np.abs(turned.points - (anchors.points @ turn.T + 5.0)).max() < 1e-9  # the same samples in any pose


def test_vote_spread_is_the_rms_distance_of_the_votes_behind_a_landmark():
    points = torch.tensor([[[1.0, 0, 0], [-1.0, 0, 0], [0, 3.0, 0], [0, -3.0, 0]]])  # [1, 4, 3]
    heatmaps = torch.ones(1, 4, 1)
    landmarks = torch.zeros(1, 1, 3)
    assert vote_spread(points, heatmaps, landmarks).item() == pytest.approx(np.sqrt(5.0))
    agreeing = -points.unsqueeze(2)  # every point votes for the origin
    assert vote_spread(points, heatmaps, landmarks, agreeing).item() == pytest.approx(0.0, abs=1e-6)


def test_locate_settings_refuse_what_cannot_work():
    for bad in ({"samplings": 0}, {"candidates": 0}, {"radius_mm": 0.0}, {"search_outside": 1.5}):
        with pytest.raises(ValueError):
            LocateSettings(**bad)


def test_predict_options_default_to_the_locate_settings():
    from se3unet.cli import build_parser

    from se3unet.inference import ReadSettings

    args = build_parser().parse_args(["predict", "scan.obj"])  # the parser stays free of torch: literals there
    assert (args.samplings, args.candidates) == (LocateSettings.samplings, LocateSettings.candidates)
    # The radius comes from the checkpoint (a fine-tuned model records its own); a checkpoint
    # that records none, as the shipped one, gets locate's.
    assert args.crop_radius is None and ReadSettings().radius_mm == LocateSettings.radius_mm


@pytest.fixture(scope="module")
def reader():
    model, checkpoint = se3unet.load_pretrained()
    return LandmarkReader(model, checkpoint.inference, torch.device("cpu"))


@pytest.fixture(scope="module")
def face_and_head(sfm_model):
    source = SurreyFaceSource(sfm_model, 1, seed=777)
    raw = source.load((0, 0))  # an identity the shipped model never saw
    head, share = embed_in_head(raw.surface)
    return raw, source.landmark_names, head, share


def predicted(reader, surface, settings, turn=np.eye(3), shift=np.zeros(3), mm_per_unit=1.0):
    """Landmarks of the surface turned and moved, brought back, in the surface's units."""
    moved = Surface(surface.vertices @ turn.T + shift, surface.triangles)
    first = surface_input(moved, Path("scan.obj"), reader.inference.scan)
    return (locate(moved, Path("scan.obj"), first, reader, settings, mm_per_unit) - shift) @ turn


def errors(reader, found, raw, names):
    index = [reader.inference.landmark_names.index(n) for n in names]
    return np.linalg.norm(found[index] - raw.landmarks, axis=1).mean()


def test_the_face_is_found_in_a_head_better_than_one_pass_over_the_whole_scan_reads_it(reader, face_and_head):
    raw, names, head, share = face_and_head
    assert share < 0.4  # the face is under 40% of the scan
    turn = Rotation.random(random_state=11).as_matrix()
    one_pass = predicted(reader, head, LocateSettings(crop=False), turn, np.array([30.0, -80.0, 200.0]))
    located = predicted(reader, head, LocateSettings(samplings=2), turn, np.array([30.0, -80.0, 200.0]))
    # One pass reads the face off by 5 mm here (the shipped model's later stages saw such heads;
    # stage 1 alone lost it in the skull and neck, 60 mm and more); found and cropped, 2-2.5 mm.
    assert errors(reader, located, raw, names) < min(4.0, errors(reader, one_pass, raw, names) - 1.0)
    alone = predicted(reader, raw.surface, LocateSettings(samplings=2), Rotation.random(random_state=12).as_matrix())
    assert errors(reader, alone, raw, names) < 4.0
    # Measured (experiments/whole_head.py, 32 samplings, 4 identities): 1.44 mm apart on average, at
    # most 2.39 (stage 2: 1.56); the 0.5 mm asked for is not met here (docs/inference.md says why).
    assert np.linalg.norm(located - alone, axis=1).mean() < 5.0


def test_locating_turns_with_the_scan_and_reads_its_unit(reader, face_and_head):
    head = face_and_head[2]
    settings = LocateSettings(samplings=2)
    here = predicted(reader, head, settings)
    turn = Rotation.random(random_state=5).as_matrix()
    in_metres = Surface(head.vertices / 1000.0, head.triangles)  # the radii and search follow --unit
    there = predicted(reader, in_metres, settings, turn, np.array([0.1, 0.2, -0.3]), mm_per_unit=1000.0) * 1000.0
    assert np.abs(here - there).max() < 0.01  # mm: float32 rounding; a different crop moves them by tenths


def test_an_ict_head_and_its_own_face_crop_get_nearly_the_same_landmarks(reader, ict_model):
    from se3unet.data.sources import IctFaceSource

    found = {}
    for region, seed in (("head", 21), ("face", 22)):
        raw = IctFaceSource(ict_model, 1, seed=777, region=region).load((0, 0))  # unseen identity
        used = np.unique(raw.surface.triangles)
        index = np.full(len(raw.surface.vertices), -1)
        index[used] = np.arange(len(used))
        surface = Surface(raw.surface.vertices[used], index[raw.surface.triangles])
        found[region] = predicted(reader, surface, LocateSettings(), Rotation.random(random_state=seed).as_matrix())
    # Measured (experiments/head_vs_face.py, 6 identities, 32 samplings: the default): 0.43 mm apart,
    # this identity 0.37 (stage 2: 0.50 and 0.39); one pass over each gave 4.77 mm with the first model.
    assert np.linalg.norm(found["head"] - found["face"], axis=1).mean() < 0.5  # the goal
    assert np.linalg.norm(found["head"] - raw.landmarks, axis=1).mean() < 5.0


def test_training_heads_vary_and_the_experiments_head_stays_the_same(sfm_model):
    raw = SurreyFaceSource(sfm_model, 1).load((0, 0))
    fixed = [embed_in_head(raw.surface) for _ in range(2)]
    assert np.array_equal(fixed[0][0].vertices, fixed[1][0].vertices)
    varied = [embed_in_head(raw.surface, np.random.default_rng(seed)) for seed in (1, 2)]
    assert not np.array_equal(varied[0][0].vertices[-100:], varied[1][0].vertices[-100:])
    assert all(0.2 < share < 0.45 for _, share in fixed + varied)  # the face a minority of the head
