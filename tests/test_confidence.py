"""Landmark confidence and "no face here": the calibration, the file that ties it to a
checkpoint, and what predict and evaluate do with it."""

import csv
import json

import numpy as np
import pytest
import torch

from se3unet.cli import main
from se3unet.evaluate.metrics import confidence_statistics
from se3unet.inference import InferenceState, ScanSettings, Decoding, Checkpoint
from se3unet.inference.confidence import (Calibration, ConfidenceModel, confidence_for, confidence_path,
                                          file_sha256)
from se3unet.model import SE3Unet, preset

TINY = preset("default", num_outputs=6, channels=(4, 4), neighbours=6, pool_neighbours=4, head_hidden=8,
              radial_hidden=8, head="offset")


def _synthetic(rng, scans=400, landmarks=5):
    """Spreads and errors where the error grows with the spread and differs by landmark."""
    spreads = rng.lognormal(0.0, 0.5, (scans, landmarks)) * np.arange(1, landmarks + 1)
    errors = 2.0 * spreads * rng.lognormal(0.0, 0.3, (scans, landmarks))
    return spreads, errors


def test_a_fitted_calibration_predicts_mean_errors_by_landmark_and_by_decile():
    spreads, errors = _synthetic(np.random.default_rng(0))
    calibration = Calibration.fit(spreads, errors)
    assert list(calibration.values) == sorted(calibration.values)  # more spread, more error: never less
    fresh_spreads, fresh_errors = _synthetic(np.random.default_rng(1))
    confidence = calibration(fresh_spreads)
    assert np.allclose(confidence.mean(0), fresh_errors.mean(0), rtol=0.15)
    stats = confidence_statistics(confidence, fresh_errors)
    assert stats["spearman"] > 0.7 and stats["spearman_within_landmarks"] > 0.5
    assert all(abs(d["error_mm"] / d["confidence_mm"] - 1) < 0.25 for d in stats["deciles"])
    assert stats["error_most_confident_90_mm"] < 0.9 * stats["error_all_mm"]


def test_spreads_far_past_any_face_give_errors_that_keep_growing():
    calibration = Calibration.fit(*_synthetic(np.random.default_rng(0)))
    typical = np.array(calibration.typical_mm)
    far, farther = calibration(20 * typical), calibration(40 * typical)
    assert np.allclose(farther, 2 * far) and (far > 10 * np.array(calibration.scale_mm)).all()
    assert calibration.face_score(typical) == pytest.approx(1.0)
    assert calibration.face_score(30 * typical) == pytest.approx(30.0)


def test_a_landmark_undefined_in_some_scans_is_skipped_not_guessed():
    spreads, errors = _synthetic(np.random.default_rng(0))
    errors[::2, 1] = np.nan  # e.g. a Surrey face's jaw
    calibration = Calibration.fit(spreads, errors)
    assert np.isfinite(calibration.scale_mm).all() and np.isfinite(calibration(spreads)).all()


def _tiny_checkpoint(path):
    torch.manual_seed(0)
    model = SE3Unet(TINY)
    Checkpoint(InferenceState(TINY.to_dict(), model.state_dict(), [f"p{i}" for i in range(6)],
                              ScanSettings(samples=1024, points=96), Decoding("softmax", "offset_vote"))).save(path)


def _confidence_file(checkpoint, threshold):
    spreads, errors = _synthetic(np.random.default_rng(0), landmarks=6)
    calibration = Calibration.fit(spreads * 1e-3, errors)  # tiny untrained votes: any spread is "typical"
    model = ConfidenceModel(file_sha256(checkpoint), calibration, calibration, threshold, threshold, made_by="the test")
    model.save(confidence_path(checkpoint))
    return model


def test_a_confidence_file_applies_only_to_the_checkpoint_it_was_made_for(tmp_path):
    _tiny_checkpoint(tmp_path / "m.pt")
    assert confidence_for(tmp_path / "m.pt") is None  # none made: no confidence, no warning
    made = _confidence_file(tmp_path / "m.pt", 5.0)
    assert confidence_for(tmp_path / "m.pt") == made
    (tmp_path / "m.pt").write_bytes((tmp_path / "m.pt").read_bytes() + b"\0")  # other weights
    with pytest.warns(UserWarning, match="made for other weights"):
        assert confidence_for(tmp_path / "m.pt") is None


def test_predict_writes_each_landmarks_confidence(face_obj, tmp_path, capsys):
    _tiny_checkpoint(tmp_path / "m.pt")
    _confidence_file(tmp_path / "m.pt", threshold=1e9)
    out = tmp_path / "out"
    for fmt in ("csv", "json"):
        code = main(["predict", str(face_obj), "--checkpoint", str(tmp_path / "m.pt"), "--output", str(out),
                     "--format", fmt, "--no-picture", "--samplings", "2", "--device", "cpu"])
        assert code == 0
    rows = list(csv.reader((out / "face.landmarks.csv").open()))
    assert rows[0] == ["landmark", "x", "y", "z", "confidence"] and len(rows) == 7
    assert all(float(r[4]) > 0 for r in rows[1:])
    record = json.loads((out / "face.landmarks.json").read_text())
    assert set(record["confidence"]) == {f"p{i}" for i in range(6)} and record["face_score"] > 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["results"][0]["mean_confidence"] > 0


def test_a_scan_that_does_not_look_like_a_face_fails_unless_kept(face_obj, tmp_path, capsys):
    _tiny_checkpoint(tmp_path / "m.pt")
    _confidence_file(tmp_path / "m.pt", threshold=1e-6)  # nothing scores this low: every scan is "no face"
    args = [str(face_obj), "--checkpoint", str(tmp_path / "m.pt"), "--no-picture", "--samplings", "2",
            "--device", "cpu"]
    assert main(["predict", *args, "--output", str(tmp_path / "strict")]) == 1
    out = capsys.readouterr().out
    assert "no face here" in out and not list((tmp_path / "strict").glob("*.landmarks.*"))
    assert main(["predict", *args, "--output", str(tmp_path / "kept"), "--keep-no-face"]) == 0
    assert "NO FACE, kept as asked" in capsys.readouterr().out
    assert (tmp_path / "kept" / "face.landmarks.csv").is_file()


def test_without_a_confidence_file_predict_writes_what_it_always_did(face_obj, tmp_path):
    _tiny_checkpoint(tmp_path / "m.pt")
    assert main(["predict", str(face_obj), "--checkpoint", str(tmp_path / "m.pt"), "--output", str(tmp_path / "o"),
                 "--no-picture", "--samplings", "2", "--device", "cpu"]) == 0
    assert next(csv.reader((tmp_path / "o" / "face.landmarks.csv").open())) == ["landmark", "x", "y", "z"]


def test_the_shipped_weights_carry_their_own_confidence():
    from se3unet.pretrained import pretrained_path

    model = confidence_for(pretrained_path())  # None (and a warning) if face68.pt was re-made without it
    assert model is not None and len(model.one_pass.scale_mm) == len(model.averaged.scale_mm) == 68
    assert 1.0 < model.no_face_score < 20.0  # a face scores about 1, a sphere tens
    assert "experiments/confidence.sh" in model.made_by
