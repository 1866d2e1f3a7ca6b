"""Atlas transfer (se3unet.atlas, `finetune --method atlas`): a new landmark set placed on a scan
by registering annotated scans onto it. It must be the same in any pose, beat carrying the
atlases' landmarks by the anchor landmarks alone (template transfer), and reach predict's files
through an ordinary checkpoint."""

import json

import numpy as np
import pytest
from helpers import write_obj
from scipy.spatial.transform import Rotation

from se3unet.atlas import Atlas, AtlasSettings, LandmarkAtlas, ScanCloud
from se3unet.data.io import Surface
from se3unet.data.landmark_files import format_landmarks
from se3unet.data.sources import IctFaceSource
from se3unet.geometry.icp import similarity
from se3unet.inference import Checkpoint

SMALL = AtlasSettings(density=0.1, sparse=1500, nodes=120, widths_mm=(40.0, 20.0, 10.0), iterations=3)


def new_landmark_vertices(head: np.ndarray) -> np.ndarray:
    """Vertex indices of points no iBUG landmark marks: the head's extremes left, right, up, back."""
    centred = head - head.mean(0)
    return np.array([centred[:, 0].argmax(), centred[:, 0].argmin(), centred[:, 1].argmax(), centred[:, 2].argmin()])


@pytest.fixture(scope="module")
def heads(ict_model):
    """Five ICT heads: their surfaces, 68 iBUG landmarks with 1.5 mm of noise (a model's
    prediction) and four new landmarks on fixed vertices."""
    source = IctFaceSource(ict_model, subjects=5, seed=31, region="head")
    raws = [source.load((s, 0)) for s in range(5)]
    chosen = new_landmark_vertices(raws[0].surface.vertices)
    rng = np.random.default_rng(0)
    return [(r.surface, r.landmarks + rng.normal(0, 1.5 / np.sqrt(3), r.landmarks.shape), r.surface.vertices[chosen])
            for r in raws]


def learned(heads, settings=SMALL) -> LandmarkAtlas:
    atlases = [Atlas(ScanCloud.of(surface, 1.0, settings), new, anchors) for surface, anchors, new in heads[:4]]
    return LandmarkAtlas(["left", "right", "top", "back"], atlases, settings)


def moved(surface: Surface, points: np.ndarray, seed: int):
    rotation = Rotation.random(random_state=seed).as_matrix()
    shift = np.random.default_rng(seed).uniform(-300, 300, 3)
    return Surface(surface.vertices @ rotation.T + shift, surface.triangles), points @ rotation.T + shift, rotation, shift


def test_placement_beats_template_transfer_in_a_random_pose(heads):
    atlas = learned(heads)
    surface, anchors, truth = heads[4]
    surface, anchors, rotation, shift = moved(surface, anchors, seed=7)
    truth = truth @ rotation.T + shift
    placed = atlas.place(ScanCloud.of(surface, 1.0, SMALL), anchors)
    error = np.linalg.norm(placed.landmarks - truth, axis=1)
    template = np.mean([s * a.landmarks @ r.T + t for a in atlas.atlases
                        for s, r, t in [similarity(a.anchors, anchors)]], axis=0)
    template_error = np.linalg.norm(template - truth, axis=1)
    assert error.mean() < 0.75 * template_error.mean(), (error, template_error)
    assert error.max() < 8.0 and np.all(placed.spread > 0)


def test_placement_moves_with_the_scan(heads):
    atlas = learned(heads)
    surface, anchors, _ = heads[4]
    here = atlas.place(ScanCloud.of(surface, 1.0, SMALL), anchors).landmarks
    there_surface, there_anchors, rotation, shift = moved(surface, anchors, seed=3)
    there = atlas.place(ScanCloud.of(there_surface, 1.0, SMALL), there_anchors).landmarks
    assert np.abs(there - (here @ rotation.T + shift)).max() < 1e-6


def test_missing_landmarks_are_left_to_the_other_atlases(heads):
    surface, anchors, new = heads[0]
    gap = new.copy()
    gap[2] = np.nan  # "top" missing in this scan's file
    atlases = [Atlas(ScanCloud.of(surface, 1.0, SMALL), gap, anchors)]
    only_gap = LandmarkAtlas(["left", "right", "top", "back"], atlases, SMALL)
    placed = only_gap.place(ScanCloud.of(heads[1][0], 1.0, SMALL), heads[1][1])
    assert np.isnan(placed.landmarks[2]).all() and np.isfinite(placed.landmarks[[0, 1, 3]]).all()


def test_finetune_atlas_writes_a_checkpoint_predict_reads(heads, tmp_path):
    from se3unet.cli import main
    from se3unet.pretrained import pretrained_path

    names = ["left", "right", "top", "back"]
    for i, (surface, _, new) in enumerate(heads[:3]):
        surface, new, _, _ = moved(surface, new, seed=100 + i)
        write_obj(tmp_path / "data" / f"head{i}.obj", surface.vertices, surface.triangles)
        (tmp_path / "data" / f"head{i}.mrk.json").write_text(format_landmarks(names, new, "mrk.json"))
    test_surface, _, test_truth = heads[4]
    test_surface, test_truth, _, _ = moved(test_surface, test_truth, seed=200)
    write_obj(tmp_path / "new" / "unseen.obj", test_surface.vertices, test_surface.triangles)

    assert main(["finetune", str(tmp_path / "data"), "--output", str(tmp_path / "mine"), "--samplings", "1",
                 "--voters", "2", "--quiet"]) == 0
    checkpoint = tmp_path / "mine" / "model.pt"
    saved = Checkpoint.load(checkpoint)
    shipped = Checkpoint.load(pretrained_path())
    assert saved.inference.atlas["names"] == names and len(saved.inference.atlas["atlases"]) == 3
    assert saved.inference.atlas["settings"]["nearest"] == 2
    assert all(saved.inference.weights[k].equal(v) for k, v in shipped.inference.weights.items())
    assert main(["predict", str(tmp_path / "new" / "unseen.obj"), "--checkpoint", str(checkpoint), "--samplings", "1",
                 "--output", str(tmp_path / "out"), "--format", "json", "--no-picture", "--quiet"]) == 0
    record = json.loads((tmp_path / "out" / "unseen.landmarks.json").read_text())
    assert list(record["landmarks"]) == list(shipped.inference.landmark_names) + names
    assert set(record["confidence"]) == set(record["landmarks"])  # the shipped confidence holds for the same weights
    found = np.array([record["landmarks"][n] for n in names])
    assert np.linalg.norm(found - test_truth, axis=1).mean() < 8.0


def test_the_atlases_whose_faces_fit_best_vote(heads):
    from dataclasses import replace

    atlas = learned(heads, replace(SMALL, nearest=2))
    surface, anchors, _ = heads[2]  # the third atlas's own face, moved and scaled: its 68 fit exactly
    _, anchors, _, _ = moved(surface, 1.1 * anchors, seed=5)
    chosen = atlas.chosen(anchors)
    assert len(chosen) == 2 and chosen[0] is atlas.atlases[2]
    assert len(learned(heads, replace(SMALL, nearest=0)).chosen(anchors)) == 4


def test_votes_weigh_by_how_well_their_patch_fits():
    from se3unet.atlas import geometric_median, vote_weights

    weights = vote_weights(np.array([1.0, 1.2, 2.0, np.nan]), temperature=0.2)
    assert np.allclose(weights, np.exp([0.0, -1.0, -5.0, -5.0]))  # no patch: as twice the best residual
    assert np.allclose(vote_weights(np.array([1.0, 3.0]), temperature=0.0), 1.0)
    assert np.allclose(vote_weights(np.array([np.nan, np.nan]), temperature=0.2), 1.0)
    votes = np.array([[0.0, 0, 0], [10.0, 0, 0], [0.0, 10, 0]])
    assert np.allclose(geometric_median(votes, np.array([1.0, 1.0, 1.0])), [2.113249, 2.113249, 0], atol=1e-4)
    assert np.allclose(geometric_median(votes, np.array([5.0, 1.0, 1.0])), 0.0, atol=1e-6)  # outweighs the rest


def test_the_scans_own_head_fits_it_best_at_every_landmark(heads):
    """The patch residual that weighs the votes ranks the scan's own head (sampled apart, moved)
    first. Samples 1.4 mm apart: at SMALL's 3 mm the residual measures the sampling more than the fit."""
    from dataclasses import replace

    from se3unet.atlas import register

    dense = replace(SMALL, density=0.5)
    surface, anchors, truth = heads[4]
    own = Atlas(ScanCloud.of(surface, 1.0, dense, seed=11), truth, anchors)
    surface, anchors, _, _ = moved(surface, anchors, seed=9)
    scan = ScanCloud.of(surface, 1.0, dense)
    residuals = np.stack([register(a, scan, anchors, dense)[1] for a in [own, *learned(heads, dense).atlases]])
    assert np.all(residuals[0] < residuals[1:].min(0)), residuals
