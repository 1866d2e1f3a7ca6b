"""The ICT Face Model source, and a source mixing face models by landmark name."""

import json

import numpy as np
import pytest

from se3unet.cli import main
from se3unet.data.errors import DataError
from se3unet.data.ict import IctFaceModel
from se3unet.data.prepare import load_split
from se3unet.data.sources import IctFaceSource, MixedSource, SurreyFaceSource


def test_heads_are_face_sized_with_68_landmarks_on_their_vertices(ict_model):
    source = IctFaceSource(ict_model, subjects=3, expressions=2, seed=1)
    for key in ((0, 0), (1, 1), (2, 0)):
        raw = source.load(key)
        marks = raw.landmarks
        assert marks.shape == (68, 3) and np.isfinite(marks).all()
        assert np.array_equal(marks, raw.surface.vertices[ict_model.landmark_vertices])
        assert 80 < np.linalg.norm(marks[36] - marks[45]) < 105  # outer eye corners (README: 88-92 mm)
        assert 95 < np.linalg.norm(marks[27] - marks[8]) < 140  # nasion to chin (README: 110-126 mm)
    assert source.landmark_names[0] == "ibug1" and source.landmark_names[-1] == "ibug68"


def test_face_region_leaves_out_skull_and_neck_and_subjects_keep_their_identity(ict_model):
    face = IctFaceSource(ict_model, subjects=2, expressions=3, seed=4, region="face")
    head = IctFaceSource(ict_model, subjects=2, expressions=3, seed=4, region="head")
    assert 0 < len(face.load((0, 0)).surface.triangles) < len(head.load((0, 0)).surface.triangles)
    assert np.array_equal(face.load((1, 2)).surface.vertices, head.load((1, 2)).surface.vertices)
    neutral, smiling = face.load((1, 0)).surface.vertices, face.load((1, 2)).surface.vertices
    used = face.expression(1, 2)
    assert 1 <= len(used) <= 3 and all(0 <= w <= 1 for w in used.values())
    expected = neutral + sum(w * ict_model.expression[ict_model.expression_names.index(n)] for n, w in used.items())
    assert np.abs(smiling - expected).max() < 1e-3  # the same person, plus the blendshapes
    assert np.abs(face.load((0, 0)).surface.vertices - neutral).max() > 1.0  # another subject


def test_a_missing_or_wrong_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="lacks ict_face_model.npz"):
        IctFaceModel(tmp_path)
    np.savez(tmp_path / "ict_face_model.npz", neutral=np.zeros((3, 3)))
    with pytest.raises(DataError, match="ict_face_model.npz.*lacks the arrays"):
        IctFaceModel(tmp_path)


def test_mixed_source_matches_landmarks_by_name(ict_model, sfm_model):
    mixed = MixedSource([SurreyFaceSource(sfm_model, 2), IctFaceSource(ict_model, 2)])
    assert mixed.landmark_names == [f"ibug{i}" for i in range(1, 69)]
    entries = mixed.entries()
    assert [e.subject for e in entries] == ["sfm-00000", "sfm-00001", "ict-00000", "ict-00001"]
    surrey = mixed.load(entries[0].key)
    defined = np.isfinite(surrey.landmarks).all(axis=1)
    assert defined.sum() == 50 and not defined[0]  # the SFM has no jawline point ibug1
    direct = SurreyFaceSource(sfm_model, 2).load((0, 0)).landmarks
    assert np.array_equal(surrey.landmarks[np.array(sfm_model.landmark_numbers) - 1], direct)
    assert np.isfinite(mixed.load(entries[2].key).landmarks).all()


def test_prepare_command_builds_an_ict_cache(ict_dir, tmp_path, capsys):
    code = main(["prepare", "--source", "ict", "--path", str(ict_dir), "--subjects", "5", "--expressions", "2",
                 "--samples", "600", "--points", "96", "--val", "1", "--test", "1", "--cache-dir", str(tmp_path),
                 "--workers", "1", "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    folder = tmp_path / summary["cache"].split("/")[-1]
    assert folder.name.startswith("ict-")
    train = load_split(folder, "train")
    assert train["points"].shape == (6, 96, 3) and train["landmarks"].shape == (6, 68, 3)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["landmark_names"][8] == "ibug9" and manifest["sizes"] == {"train": 6, "val": 2, "test": 2}


def test_training_takes_its_outputs_from_the_data(ict_dir, tmp_path):
    from se3unet.data.prepare import PrepareConfig, prepare
    from se3unet.inference import Checkpoint
    from se3unet.train.config import ExperimentConfig
    from se3unet.train.trainer import train

    cache = prepare(PrepareConfig(source="ict", path=str(ict_dir), subjects=5, samples=400, points=64, val=1, test=1),
                    tmp_path / "cache", progress=False).path
    config = ExperimentConfig.from_dict({
        "model": {"preset": "default", "channels": [4, 4], "neighbours": 6, "pool_keep": 0.5, "pool_neighbours": 4,
                  "head_hidden": 8, "radial_hidden": 8},
        "data": {"cache": str(cache)}, "optim": {"batch_size": 3, "epochs": 1}, "run": {"output": str(tmp_path / "run")}})
    train(config, progress=False)
    saved = Checkpoint.load(tmp_path / "run" / "last.pt")
    assert saved.inference.model_config["num_outputs"] == 68 and len(saved.inference.landmark_names) == 68
