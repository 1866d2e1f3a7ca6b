"""The inference module: the typed checkpoint, the shared scan preprocessing, decoding."""

import json

import numpy as np
import pytest
import torch
from helpers import write_obj

from se3unet.data.io import read_surface
from se3unet.data.preprocess import model_input, sample_surface
from se3unet.inference import (Checkpoint, Decoding, InferenceState, ResumeState, ScanSettings, build_model,
                               convert_legacy, load_model)
from se3unet.model import SE3Unet, preset
from se3unet.predict import predict, prepare_scan

TINY = preset("default", num_outputs=6, channels=(4, 4), neighbours=6, pool_neighbours=4, head_hidden=8,
              radial_hidden=8)


def tiny_checkpoint(path, points=96, resume=False):
    torch.manual_seed(0)
    model = SE3Unet(TINY)
    state = InferenceState(TINY.to_dict(), model.state_dict(), [f"p{i}" for i in range(6)],
                           ScanSettings(samples=1024, points=points), Decoding("softmax"))
    extra = ResumeState({"state": {}}, {"last_epoch": 1}, 0, 3, [{"epoch": 0, "val_error_mm": 2.5}], 2.5,
                        {"loss": {"name": "heatmap_ce"}}) if resume else None
    Checkpoint(state, extra).save(path)
    return model


def test_checkpoint_round_trips_and_is_plain_data(tmp_path):
    model = tiny_checkpoint(tmp_path / "c.pt", resume=True)
    raw = torch.load(tmp_path / "c.pt", weights_only=True)  # refuses pickled classes
    assert set(raw) == {"format", "version", "inference", "resume"}
    loaded, checkpoint = load_model(tmp_path / "c.pt")
    assert checkpoint.inference.decoding == Decoding("softmax") and checkpoint.resume.step == 3
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)
    checkpoint.without_resume().save(tmp_path / "ship.pt")
    assert "resume" not in torch.load(tmp_path / "ship.pt", weights_only=True)


def test_old_checkpoints_are_refused_with_the_conversion_command_and_convert(tmp_path):
    torch.manual_seed(0)
    model = SE3Unet(TINY)
    old = {"model": model.state_dict(), "model_config": TINY.to_dict(), "optimizer": {"state": {}, "param_groups": []},
           "scheduler": {}, "epoch": 2, "step": 9, "history": [{"epoch": 0, "val_error_mm": np.float64(3.0)}],
           "experiment": {"loss": {"name": "bce"}, "data": {"sigma": 0.1, "threshold": 0.4}},
           "reference": {"points": np.zeros((4, 3))}, "data_config": {"samples": 2048, "points": 128},
           "landmark_names": [f"q{i}" for i in range(6)], "best_error_mm": 3.0}
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="se3unet convert-checkpoint"):
        Checkpoint.load(tmp_path / "old.pt")
    from se3unet.cli import main

    assert main(["convert-checkpoint", str(tmp_path / "old.pt"), str(tmp_path / "new.pt")]) == 0
    converted = Checkpoint.load(tmp_path / "new.pt")
    assert converted.inference.scan == ScanSettings(samples=2048, points=128, sigma=0.1, threshold=0.4, normals=True)
    assert converted.inference.decoding.heatmap == "sigmoid" and converted.resume.epoch == 2
    assert converted.inference.landmark_names[0] == "q0"
    rebuilt = build_model(converted.inference).state_dict()
    assert all(torch.equal(rebuilt[name], tensor) for name, tensor in model.state_dict().items())


def test_not_a_checkpoint_is_named(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="x.pt"):
        Checkpoint.load(tmp_path / "x.pt")


def test_one_normal_rule_mesh_winding_and_flipped_normals_do_not_matter(sfm_model):
    rng = np.random.default_rng(0)
    vertices, triangles = sfm_model.shape.mean, sfm_model.triangles
    points, normals = sample_surface(vertices, triangles, 2000, np.random.default_rng(1))
    turned, flipped = sample_surface(vertices, triangles[:, ::-1], 2000, np.random.default_rng(1))
    assert np.array_equal(turned, points)  # the same samples whatever the winding
    a, b = model_input(points, normals, 256), model_input(points, -normals, 256)
    assert np.array_equal(a.normals, b.normals) and np.array_equal(a.points, b.points)
    signs = rng.choice([-1.0, 1.0], size=(len(points), 1))  # a cloud's normals, pointing any way
    assert np.array_equal(model_input(points, normals * signs, 256).normals, a.normals)
    # Estimated normals follow the same rule and agree with the surface's (up to its curvature).
    estimated = model_input(points, None, 256).normals
    assert np.median(np.abs((estimated * a.normals).sum(1))) > 0.95
    assert np.median((estimated * a.normals).sum(1)) > 0.95  # same orientation, not only the same line


def test_prepare_and_predict_feed_the_model_the_same_input(sfm_model, tmp_path):
    from se3unet.data.prepare import PrepareConfig, preprocess_entry
    from se3unet.data.sources import Entry, FolderSource

    write_obj(tmp_path / "faces" / "a.obj", sfm_model.shape.mean, sfm_model.triangles)
    np.savetxt(tmp_path / "faces" / "a.landmarks.txt", sfm_model.landmarks(sfm_model.shape.mean))
    source = FolderSource(str(tmp_path / "faces"))
    config = PrepareConfig(source="folder", path=str(tmp_path / "faces"), samples=1500, points=200, seed=4)
    entry = source.entries()[0]
    prepared = preprocess_entry(source, config, entry, 0)
    # predict draws its surface samples with its own seed; with the same samples both agree.
    surface = read_surface(tmp_path / "faces" / "a.obj")
    points, normals = sample_surface(surface.vertices, surface.triangles, 1500, np.random.default_rng([4, 0]))
    scan = model_input(points, normals, 200)
    assert np.array_equal(scan.points, prepared.points) and np.array_equal(scan.normals, prepared.normals)
    cloud = prepare_scan(tmp_path / "faces" / "a.obj", ScanSettings(samples=1500, points=200))
    assert np.abs(np.linalg.norm(cloud.normals, axis=1) - 1).max() < 1e-5  # a mesh's scan has its normals


def test_predict_gives_the_same_landmarks_whatever_the_winding_or_normal_signs(sfm_model, tmp_path):
    tiny_checkpoint(tmp_path / "m.pt", points=96)
    vertices, triangles = sfm_model.shape.mean, sfm_model.triangles
    write_obj(tmp_path / "a.obj", vertices, triangles)
    write_obj(tmp_path / "b.obj", vertices, triangles[:, ::-1])
    points, normals = sample_surface(vertices, triangles, 1024, np.random.default_rng(2))
    signs = np.random.default_rng(3).choice([-1.0, 1.0], size=(len(points), 1))
    np.save(tmp_path / "c.npy", np.hstack([points, normals]))
    np.save(tmp_path / "d.npy", np.hstack([points, normals * signs]))
    results = predict([str(tmp_path / f"{n}") for n in ("a.obj", "b.obj", "c.npy", "d.npy")], str(tmp_path / "m.pt"),
                      str(tmp_path / "out"), fmt="json", picture=False, device="cpu")
    marks = [json.loads((tmp_path / "out" / f"{n}.landmarks.json").read_text())["landmarks"] for n in "abcd"]
    assert all("error" not in r for r in results)
    assert marks[0] == marks[1] and marks[2] == marks[3]


def test_predict_names_the_file_of_a_degenerate_cloud(tmp_path):
    tiny_checkpoint(tmp_path / "m.pt", points=96)
    np.savetxt(tmp_path / "dot.xyz", np.ones((200, 3)))
    [result] = predict([str(tmp_path / "dot.xyz")], str(tmp_path / "m.pt"), str(tmp_path / "out"), picture=False,
                       device="cpu")
    assert "dot.xyz" in result["error"] and "coincide" in result["error"]


def test_decoding_refuses_unknown_rules():
    with pytest.raises(ValueError, match="decoding.heatmap must be one of 'sigmoid', 'softmax'"):
        Decoding(heatmap="tanh")
    with pytest.raises(ValueError, match="decoding.landmarks must be one of"):
        Decoding(landmarks="median")
