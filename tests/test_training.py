"""Training, resuming, distributed training, evaluation, prediction and their commands, on tiny data."""

import json
import os
import socket
import time

import numpy as np
import pytest
import torch

from se3unet.cli import main
from se3unet.data.prepare import PrepareConfig, prepare
from se3unet.inference import Checkpoint, build_model
from se3unet.train.config import ExperimentConfig, load_config
from se3unet.train.trainer import parameter_digest, train

TINY_MODEL = {"preset": "default", "channels": [4, 4], "neighbours": 6, "heads": 2, "pool_keep": 0.5,
              "pool_neighbours": 4, "head_hidden": 16, "radial_hidden": 8}


@pytest.fixture(scope="module")
def tiny_cache(sfm_dir, tmp_path_factory):
    config = PrepareConfig(source="sfm", path=str(sfm_dir), subjects=10, samples=512, points=64, val=2, test=2)
    return prepare(config, tmp_path_factory.mktemp("cache"), progress=False).path


def tiny_config(cache, output, **optim):
    return ExperimentConfig.from_dict({
        "model": TINY_MODEL, "data": {"cache": str(cache), "translation": 0.2},
        "optim": {"batch_size": 2, "epochs": 3, "lr": 1e-2, **optim}, "run": {"output": str(output), "seed": 3},
    })


def test_training_writes_checkpoints_logs_and_curves(tiny_cache, tmp_path):
    summary = train(tiny_config(tiny_cache, tmp_path / "run", epochs=2), progress=False)
    run = tmp_path / "run"
    for name in ("last.pt", "best.pt", "epochs.csv", "steps.csv", "training.png", "summary.json", "config.json"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").iterdir())
    epochs = (run / "epochs.csv").read_text().splitlines()
    assert len(epochs) == 3 and epochs[0].startswith("epoch,step,train_loss,lr,val_loss,val_error_mm")
    assert summary["epochs"] == 2 and summary["steps"] == 2 * 3  # 6 training scans / batch 2
    saved = Checkpoint.load(run / "last.pt")
    assert saved.resume.epoch == 1 and saved.inference.landmark_names[0] == "ibug9"
    assert saved.inference.scan.points == 64 and saved.inference.decoding.heatmap == "softmax"  # heatmap_ce
    assert parameter_digest(build_model(saved.inference)) == summary["weights_digest"]
    # Plain containers only: a weights_only load reads it, no class is unpickled.
    raw = torch.load(run / "best.pt", weights_only=True)
    assert raw["format"] == "se3unet-checkpoint" and raw["version"] == 2 and "resume" in raw


def test_training_reduces_the_loss(tiny_cache, tmp_path):
    train(tiny_config(tiny_cache, tmp_path, epochs=6, lr=2e-2), progress=False)
    rows = [line.split(",") for line in (tmp_path / "epochs.csv").read_text().splitlines()[1:]]
    losses = [float(r[2]) for r in rows]
    assert losses[-1] < losses[0]


def test_bfloat16_autocast_trains_float32_weights_to_a_lower_loss(tiny_cache, tmp_path):
    """optim.precision=bfloat16: products in bfloat16 (the weights end elsewhere than in float32),
    weights and loss in float32, and the loss still falls."""
    digests = {}
    for precision in ("float32", "bfloat16"):
        summary = train(tiny_config(tiny_cache, tmp_path / precision, epochs=6, lr=2e-2, precision=precision),
                        progress=False)
        digests[precision] = summary["weights_digest"]
        rows = [line.split(",") for line in (tmp_path / precision / "epochs.csv").read_text().splitlines()[1:]]
        assert float(rows[-1][2]) < float(rows[0][2]), precision
        weights = Checkpoint.load(tmp_path / precision / "last.pt").inference.weights
        assert all(w.dtype == torch.float32 for w in weights.values() if w.is_floating_point()), precision
    assert digests["float32"] != digests["bfloat16"]


def test_killed_and_resumed_run_ends_with_the_same_weights(tiny_cache, tmp_path, monkeypatch):
    whole = train(tiny_config(tiny_cache, tmp_path / "whole"), progress=False)

    import se3unet.train.trainer as trainer

    calls = {"n": 0}
    real_collate = trainer.collate

    def dying_collate(items):
        calls["n"] += 1
        if calls["n"] == 6:  # inside epoch 2 (3 batches and 1 validation batch per epoch)
            raise KeyboardInterrupt
        return real_collate(items)

    monkeypatch.setattr(trainer, "collate", dying_collate)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tiny_cache, tmp_path / "killed"), progress=False)
    assert Checkpoint.load(tmp_path / "killed" / "last.pt").resume.epoch == 0
    monkeypatch.setattr(trainer, "collate", real_collate)
    resumed = train(tiny_config(tiny_cache, tmp_path / "killed"), resume=True, progress=False)
    assert resumed["weights_digest"] == whole["weights_digest"]
    assert resumed["steps"] == whole["steps"]
    epochs = (tmp_path / "killed" / "epochs.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in epochs[1:]] == ["0", "1", "2"]  # no duplicated epoch rows


def steps_logged(run):
    return [int(line.split(",")[1]) for line in (run / "steps.csv").read_text().splitlines()[1:]]


def test_a_run_stopped_inside_an_epoch_by_its_time_limit_resumes_there(tiny_cache, tmp_path):
    whole = train(tiny_config(tiny_cache, tmp_path / "whole"), progress=False)
    config = tiny_config(tiny_cache, tmp_path / "stopped")
    config.run.time_limit = 1e-9  # over after the first optimizer step: batch 1 of 3 in epoch 0
    stopped = train(config, progress=False)
    assert stopped["stopped_by_time_limit"] and stopped["steps"] == 1 and stopped["epochs"] == 0
    saved = Checkpoint.load(tmp_path / "stopped" / "last.pt").resume
    assert (saved.epoch, saved.batches_done, len(saved.epoch_losses)) == (0, 1, 1)
    resumed = train(tiny_config(tiny_cache, tmp_path / "stopped"), resume=True, progress=False)
    # The rest of epoch 0 is trained, not skipped: the same steps and weights as one run through.
    assert (resumed["steps"], resumed["weights_digest"]) == (whole["steps"], whole["weights_digest"])
    epochs = (tmp_path / "stopped" / "epochs.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in epochs[1:]] == ["0", "1", "2"]  # the stopped epoch's row rewritten
    assert steps_logged(tmp_path / "stopped") == list(range(1, whole["steps"] + 1))


@pytest.mark.parametrize("accumulate", [1, 2])
def test_a_run_killed_inside_an_epoch_resumes_from_its_last_checkpoint_there(tiny_cache, tmp_path, monkeypatch,
                                                                              accumulate):
    whole = train(tiny_config(tiny_cache, tmp_path / "whole", accumulate=accumulate), progress=False)

    import se3unet.train.trainer as trainer

    calls = {"n": 0}
    real_collate = trainer.collate

    def dying_collate(items):
        calls["n"] += 1
        if calls["n"] == 7:  # batch 3 of epoch 1 (3 batches and 1 validation batch per epoch)
            raise KeyboardInterrupt
        return real_collate(items)

    config = tiny_config(tiny_cache, tmp_path / "killed", accumulate=accumulate)
    config.run.checkpoint_minutes = 0.0  # after every optimizer step
    monkeypatch.setattr(trainer, "collate", dying_collate)
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False)
    saved = Checkpoint.load(tmp_path / "killed" / "last.pt").resume
    # Written after batch 2 of epoch 1 either way: with accumulation only where a step was taken.
    assert (saved.epoch, saved.batches_done) == (1, 2)
    monkeypatch.setattr(trainer, "collate", real_collate)
    resumed = train(config, resume=True, progress=False)
    assert (resumed["steps"], resumed["weights_digest"]) == (whole["steps"], whole["weights_digest"])
    assert steps_logged(tmp_path / "killed") == list(range(1, whole["steps"] + 1))


def test_resume_refuses_other_settings_than_the_run_was_trained_with(tiny_cache, tmp_path):
    train(tiny_config(tiny_cache, tmp_path, epochs=1), progress=False)
    with pytest.raises(ValueError, match=r"last\.pt: --resume with other settings.*optim\.lr \(0\.01 there, 0\.02 here\)"):
        train(tiny_config(tiny_cache, tmp_path, epochs=2, lr=2e-2), resume=True, progress=False)
    # More epochs would change the learning-rate schedule (its period is the run's length): refused
    # too; a time limit is no change to what is trained.
    config = tiny_config(tiny_cache, tmp_path, epochs=2)
    config.run.time_limit = 1e6
    with pytest.raises(ValueError, match=r"optim\.epochs \(1 there, 2 here\)"):
        train(config, resume=True, progress=False)
    config = tiny_config(tiny_cache, tmp_path, epochs=1)
    config.run.time_limit = 1e6
    assert train(config, resume=True, progress=False)["epochs"] == 1  # nothing left to train


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, cache, output, results, time_limits=None):
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world),
                       "RANK": str(rank), "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    config = tiny_config(cache, output, epochs=2 if time_limits is None else 3)
    if time_limits is not None:
        config.run.time_limit = time_limits[rank]
    summary = train(config, progress=False)
    (results / f"rank{rank}.json").write_text(json.dumps(summary))


def _run_two_ranks(cache, tmp_path, time_limits=None, timeout=240):
    """Trains on two CPU processes into tmp_path/run; each rank's summary. A deadlock fails
    the test after ``timeout`` seconds instead of hanging the suite."""
    results = tmp_path / "results"
    results.mkdir()
    args = (2, _free_port(), str(cache), str(tmp_path / "run"), results, time_limits)
    context = torch.multiprocessing.spawn(_ddp_worker, args=args, nprocs=2, join=False)
    deadline = time.monotonic() + timeout
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the two ranks did not finish in {timeout} s: deadlocked")
    return [json.loads((results / f"rank{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.slow
def test_two_cpu_processes_end_with_identical_weights(tiny_cache, tmp_path):
    ranks = _run_two_ranks(tiny_cache, tmp_path)
    assert ranks[0]["world_size"] == 2 and ranks[0]["weights_digest"] == ranks[1]["weights_digest"]
    assert ranks[0]["steps"] == 2 * 1  # 6 scans -> 3 per rank -> 1 batch of 2 per epoch
    saved = Checkpoint.load(tmp_path / "run" / "last.pt")  # written by rank 0 only
    assert parameter_digest(build_model(saved.inference)) == ranks[0]["weights_digest"]


def test_processes_with_a_share_of_the_batch_step_through_one_process_batches():
    # docs/training.md's recipe for a CPU's cores: P processes with batch B / P. At every step the
    # ranks' batches together must be the one process's batch (the same scans, so the same poses),
    # then DDP's averaged gradient is the one process's.
    from se3unet.train.distributed import Distributed
    from se3unet.train.trainer import batches, epoch_order

    for count, batch, world in ((50, 4, 2), (23, 6, 3), (9, 4, 4)):
        one = batches(epoch_order(count, 7, 1, Distributed(), batch), batch)
        ranks = [batches(epoch_order(count, 7, 1, Distributed(rank, world), batch // world), batch // world)
                 for rank in range(world)]
        assert all(len(r) == len(one) for r in ranks)
        assert [sum((r[i] for r in ranks), []) for i in range(len(one))] == one
    # Fewer scans than a batch per rank: one short batch each, none shared.
    shares = [epoch_order(5, 7, 0, Distributed(rank, 2), 4) for rank in range(2)]
    assert len(shares[0]) == len(shares[1]) == 2 and not set(shares[0]) & set(shares[1])


@pytest.mark.slow
def test_a_time_limit_reached_on_one_rank_stops_every_rank_together(tiny_cache, tmp_path):
    # Rank 0's limit is over after its first step, rank 1's never: both must stop there.
    ranks = _run_two_ranks(tiny_cache, tmp_path, time_limits=(1e-9, 1e9))
    assert [r["steps"] for r in ranks] == [1, 1]
    assert all(r["stopped_by_time_limit"] for r in ranks)
    assert ranks[0]["weights_digest"] == ranks[1]["weights_digest"]


def test_config_files_load_and_overrides_apply():
    from pathlib import Path

    configs = Path(__file__).resolve().parents[1] / "configs"
    for path in sorted(configs.glob("*.yaml")):
        load_config(path)  # every shipped config is valid
    c = load_config(configs / "report-v1-bce.yaml", ["optim.lr=1e-3", "model.num_outputs=50", "data.realign=true"])
    assert c.optim.lr == 1e-3 and isinstance(c.optim.lr, float) and c.model_config().num_outputs == 50 and c.data.realign
    assert c.loss.name == "bce" and c.model_config().degrees == (0, 1, 2)
    with pytest.raises(ValueError, match="unknown optim settings"):
        load_config(None, ["optim.learning_rate=1"])
    with pytest.raises(ValueError, match="section.field=value"):
        load_config(None, ["lr=1"])


def test_train_refuses_a_missing_cache_and_wrong_output_count(tiny_cache, tmp_path, capsys):
    assert main(["train", "--set", f"data.cache={tmp_path}", "--quiet"]) == 2
    assert "not a prepared cache" in capsys.readouterr().err
    with pytest.raises(ValueError, match="50 landmarks but the model 68"):
        config = tiny_config(tiny_cache, tmp_path)
        config.model["num_outputs"] = 68
        train(config, progress=False)


@pytest.fixture(scope="module")
def checkpoint(tiny_cache, tmp_path_factory):
    output = tmp_path_factory.mktemp("run")
    train(tiny_config(tiny_cache, output, epochs=2), progress=False)
    return output / "best.pt"


def test_evaluate_command_writes_the_test_matrix_report(checkpoint, tiny_cache, tmp_path, capsys):
    code = main(["evaluate", "--checkpoint", str(checkpoint), "--cache", str(tiny_cache), "--output",
                 str(tmp_path / "report"), "--baseline", "raw / both", "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(summary["conditions"]) == ["none", "icp / rotation", "raw / rotation", "icp / translation",
                                           "raw / translation", "icp / both", "raw / both"]
    assert "baseline_error_mm" in summary["conditions"]["raw / both"]
    report = tmp_path / "report"
    metrics = json.loads((report / "metrics.json").read_text())
    cond = metrics["conditions"]["raw / rotation"]
    assert len(cond["f1"]) == 11 and len(cond["iou_per_landmark"]) == 18 and len(cond["iou_per_landmark"][0]) == 50
    assert set(cond["error"]["success_rate"]) == {"2mm", "2.5mm", "5mm", "10mm"}
    for name in ("summary.md", "precision_recall.png", "ced.png", "iou.png", "per_landmark.png", "example_0.png"):
        assert (report / name).is_file(), name
    assert "| raw / both |" in (report / "summary.md").read_text()
    # an invariant model scores the same in every pose: raw rotation equals no perturbation
    assert cond["error"]["mean_mm"] == pytest.approx(metrics["conditions"]["none"]["error"]["mean_mm"], rel=1e-3)
    # predictions.npz: the landmarks behind every number, in mm, per condition
    with np.load(report / "predictions.npz") as saved:
        assert list(saved["conditions"]) == list(summary["conditions"])
        assert list(saved["landmark_names"]) == metrics["landmark_names"]
        scans = metrics["conditions"]["raw / rotation"]["scans"]
        predicted, truth = saved["raw_rotation.predicted_mm"], saved["raw_rotation.true_mm"]
        assert predicted.shape == truth.shape == (scans, 50, 3)
        assert list(saved["raw_rotation.scan"]) == list(range(scans))
        per_landmark = np.nanmean(np.linalg.norm(predicted - truth, axis=-1), axis=0)
        assert per_landmark == pytest.approx(cond["error"]["per_landmark_mm"], rel=1e-4, abs=1e-4)
        # the same scans rotated: the truth moved, and the stored motion takes it back
        rotated, aligned = saved["raw_rotation.true_mm"], saved["none.true_mm"]
        assert not np.allclose(rotated, aligned, atol=1e-2)
        rotation, translation = saved["raw_rotation.rotation"], saved["raw_rotation.translation_mm"]
        back = np.einsum("skj,sji->ski", rotated - translation[:, None], rotation)
        assert np.nanmax(np.abs(back - aligned)) < 1e-2


def test_evaluate_scores_against_the_labels_asked_for_not_only_the_trained_ones(checkpoint, tiny_cache, tmp_path, capsys):
    runs = {}
    for name, extra in (("trained", []), ("wider", ["--sigma", "0.2", "--threshold", "0.3"])):
        code = main(["evaluate", "--checkpoint", str(checkpoint), "--cache", str(tiny_cache), "--output",
                     str(tmp_path / name), "--preprocessing", "none", "--baseline", "--quiet", *extra])
        assert code == 0, capsys.readouterr().err
        runs[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    trained, wider = runs["trained"], runs["wider"]
    assert (trained["sigma"], trained["label_threshold"]) == (0.08, 0.5)  # tiny_config's
    assert (wider["sigma"], wider["label_threshold"]) == (0.2, 0.3)
    assert "sigma 0.2, labels where they reach 0.3" in (tmp_path / "wider" / "summary.md").read_text()
    a, b = trained["conditions"]["none"], wider["conditions"]["none"]
    assert a["error"]["mean_mm"] == b["error"]["mean_mm"]  # the same landmarks ...
    assert a["recall"] != b["recall"] and a["mean_iou"] != b["mean_iou"]  # ... scored against other labels


def test_predict_finds_landmarks_that_turn_with_the_scan(checkpoint, sfm_model, tmp_path, capsys):
    from helpers import write_obj
    from scipy.spatial.transform import Rotation

    vertices = sfm_model.shape.mean
    r = Rotation.random(random_state=0).as_matrix()
    write_obj(tmp_path / "face.obj", vertices, sfm_model.triangles)
    write_obj(tmp_path / "turned.obj", vertices @ r.T + 30.0, sfm_model.triangles)
    (tmp_path / "broken.ply").write_text("ply\nthis is not a ply file\n")
    code = main(["predict", str(tmp_path / "face.obj"), str(tmp_path / "turned.obj"), str(tmp_path / "broken.ply"),
                 "--checkpoint", str(checkpoint), "--output", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 1 and "broken.ply: error:" in out
    read = lambda name: np.loadtxt(tmp_path / "out" / f"{name}.landmarks.csv", delimiter=",", skiprows=1,
                                   usecols=(1, 2, 3))
    face, turned = read("face"), read("turned")
    assert face.shape == (50, 3)
    assert np.abs(face @ r.T + 30.0 - turned).max() < 0.05  # mm: the same landmarks, turned
    assert (tmp_path / "out" / "face.png").is_file()


def test_export_keeps_what_inference_needs_and_the_training_data(checkpoint, tmp_path, capsys):
    assert main(["export", str(checkpoint), str(tmp_path / "shared.pt")]) == 0
    assert "inference only, 50 landmarks" in capsys.readouterr().out
    full, exported = Checkpoint.load(checkpoint), Checkpoint.load(tmp_path / "shared.pt")
    assert full.resume is not None and exported.resume is None
    assert exported.inference.provenance.training_data["points"] == 64
    assert all(torch.equal(exported.inference.weights[k], v) for k, v in full.inference.weights.items())
    assert (tmp_path / "shared.pt").stat().st_size < checkpoint.stat().st_size


def test_predict_names_the_likely_unit_of_a_scan_not_in_millimetres(checkpoint, sfm_model, tmp_path, capsys):
    from helpers import write_obj

    vertices = sfm_model.shape.mean
    write_obj(tmp_path / "face.obj", vertices, sfm_model.triangles)
    write_obj(tmp_path / "metres.obj", vertices / 1000.0, sfm_model.triangles)
    args = ["--checkpoint", str(checkpoint), "--output", str(tmp_path / "out"), "--no-picture"]
    assert main(["predict", str(tmp_path / "metres.obj"), *args]) == 1
    out = capsys.readouterr().out
    assert "metres.obj: error:" in out and "mm across, implausible" in out and "likely in m: pass --unit m" in out
    assert main(["predict", str(tmp_path / "metres.obj"), *args, "--unit", "m"]) == 0
    assert main(["predict", str(tmp_path / "face.obj"), *args]) == 0
    read = lambda name: np.loadtxt(tmp_path / "out" / f"{name}.landmarks.csv", delimiter=",", skiprows=1,
                                   usecols=(1, 2, 3))
    assert np.allclose(read("metres") * 1000.0, read("face"), atol=1e-3)  # the same landmarks, in the file's unit


def _tiny_demo(sfm_dir, output, capsys):
    overrides = [f"model.{k}={json.dumps(v)}" for k, v in TINY_MODEL.items() if k != "preset"]
    code = main(["demo", "--sfm-dir", str(sfm_dir), "--output", str(output), "--subjects", "12", "--points", "64",
                 "--epochs", "1", "--quiet", "--set", *overrides, "optim.batch_size=2"])
    assert code == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.slow
def test_demo_gives_the_same_answer_on_a_busy_machine(sfm_dir, tmp_path, capsys, monkeypatch):
    """A fixed number of steps, not minutes: a clock running 1000x fast (a machine that much
    slower) trains the same steps and prints the same figures."""
    import time as clock

    idle = _tiny_demo(sfm_dir, tmp_path / "idle", capsys)
    real = clock.perf_counter
    monkeypatch.setattr("se3unet.train.trainer.time.perf_counter", lambda: real() * 1000.0)
    busy = _tiny_demo(sfm_dir, tmp_path / "busy", capsys)
    assert busy["steps"] == idle["steps"] == 4  # 12 subjects: 9 for training, batches of 2
    assert busy["error_mm"] == idle["error_mm"] and busy["baseline_error_mm"] == idle["baseline_error_mm"]


@pytest.mark.slow
def test_demo_command_runs_end_to_end_on_tiny_settings(sfm_dir, tmp_path, capsys):
    summary = _tiny_demo(sfm_dir, tmp_path, capsys)
    # The figures it prints are the report's: the raw / both condition of its metrics, in mm.
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())["conditions"]["raw / both"]
    assert summary["error_mm"] == pytest.approx(metrics["error"]["mean_mm"], abs=1e-3)
    assert summary["baseline_error_mm"] == pytest.approx(metrics["baseline_error"]["mean_mm"], abs=1e-3)
    assert summary["test_scans"] == metrics["scans"] == 2  # 12 subjects, 20% for testing
    assert 0 < summary["baseline_error_mm"] < 30  # ICP of the mean face lands on the face
    assert (tmp_path / "report" / "summary.md").is_file()
    assert Checkpoint.load(summary["checkpoint"]).inference.scan.points == 64


def test_validation_scores_every_scan_including_a_last_partial_batch(tiny_cache):
    from se3unet.data.dataset import LandmarkDataset
    from se3unet.model import SE3Unet
    from se3unet.train.trainer import validate

    config = tiny_config(tiny_cache, "unused")
    torch.manual_seed(0)
    model = SE3Unet(config.model_config())
    scans = LandmarkDataset(tiny_cache, "train", rotate=True, translation=0.2, hierarchy=model.hierarchy, seed=1,
                            fixed_pose=True)  # 6 scans
    one_by_one = validate(model, scans, config.loss, 1, torch.device("cpu"), None, limit=5)
    in_pairs = validate(model, scans, config.loss, 2, torch.device("cpu"), None, limit=5)  # 2 + 2 + 1
    for key in ("val_error_mm", "val_f1", "val_loss"):
        assert in_pairs[key] == pytest.approx(one_by_one[key], rel=1e-5), key


def test_every_string_option_is_checked_when_the_config_is_loaded():
    from se3unet.model import UNetConfig

    with pytest.raises(ValueError, match="model.inputs must be one of 'centred', 'absolute'; got 'centered'"):
        UNetConfig(inputs="centered")
    for field, value in (("head", "mlp"), ("block_output", "vector"), ("final_self_interaction", "attention")):
        with pytest.raises(ValueError, match=f"model.{field} must be one of"):
            load_config(None, [f"model.{field}={value}"])
    for override in ("loss.name=l2", "loss.reduction=avg", "optim.optimizer=sgd", "run.device=gpu"):
        with pytest.raises(ValueError, match=f"{override.split('=')[0]} must be one of"):
            load_config(None, [override])
    with pytest.raises(ValueError, match="prepare.source must be one of 'sfm', 'ict', 'mixed', 'facescape'"):
        PrepareConfig(source="scans")


def test_evaluate_reads_the_first_points_of_larger_scans_and_refuses_smaller(checkpoint, sfm_dir, tmp_path, capsys):
    config = dict(source="sfm", path=str(sfm_dir), subjects=6, samples=256, val=1, test=1)
    smaller = prepare(PrepareConfig(**config, points=48), tmp_path / "small", progress=False).path
    code = main(["evaluate", "--checkpoint", str(checkpoint), "--cache", str(smaller), "--output", str(tmp_path / "r"),
                 "--quiet"])
    assert code == 2
    assert "48 points, the model reads 64" in capsys.readouterr().err
    larger = prepare(PrepareConfig(**config, points=96), tmp_path / "large", progress=False).path
    exact = prepare(PrepareConfig(**config, points=64), tmp_path / "exact", progress=False).path
    scores = {}
    for name, cache in (("larger", larger), ("exact", exact)):
        assert main(["evaluate", "--checkpoint", str(checkpoint), "--cache", str(cache), "--output",
                     str(tmp_path / name), "--preprocessing", "raw", "--perturbations", "both", "--baseline",
                     "--quiet"]) == 0
        scores[name] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["conditions"]["raw / both"]
    # the first 64 of 96 FPS points are the 64 that prepare keeps: the same scores
    assert scores["larger"]["error_mm"] == pytest.approx(scores["exact"]["error_mm"], rel=1e-4)
    assert "the first 64 of each scan's 96" in (tmp_path / "larger" / "summary.md").read_text()


def test_evaluate_scores_the_landmarks_model_and_cache_share_by_name(checkpoint, ict_dir, tmp_path, capsys):
    # The checkpoint predicts the Surrey model's 50 landmarks; ICT heads define all 68.
    heads = prepare(PrepareConfig(source="ict", path=str(ict_dir), subjects=3, samples=256, points=64, val=0,
                                  test=2), tmp_path / "ict", progress=False).path
    code = main(["evaluate", "--checkpoint", str(checkpoint), "--cache", str(heads), "--output", str(tmp_path / "r"),
                 "--preprocessing", "none", "--quiet"])
    assert code == 0
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    model_names = Checkpoint.load(checkpoint).inference.landmark_names
    assert metrics["landmark_names"] == model_names and len(model_names) == 50
    assert len(metrics["unscored_landmarks"]) == 18 and "ibug1" in metrics["unscored_landmarks"]  # the jawline
    assert len(metrics["conditions"]["none"]["error"]["per_landmark_mm"]) == 50
    assert "50 landmarks scored" in (tmp_path / "r" / "summary.md").read_text()


def test_offset_head_trains_and_its_checkpoint_votes(tiny_cache, tmp_path, capsys):
    config = tiny_config(tiny_cache, tmp_path / "run", epochs=2)
    config.model["head"] = "offset"
    summary = train(config, progress=False)
    saved = Checkpoint.load(tmp_path / "run" / "best.pt")
    assert saved.inference.decoding.landmarks == "offset_vote" and summary["steps"] == 6
    code = main(["evaluate", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--cache", str(tiny_cache),
                 "--output", str(tmp_path / "report"), "--preprocessing", "none", "raw", "--perturbations", "both",
                 "--baseline", "--quiet"])
    assert code == 0
    conditions = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["conditions"]
    # Offsets turn with the scan: the error in random poses equals the canonical one.
    assert conditions["raw / both"]["error_mm"] == pytest.approx(conditions["none"]["error_mm"], rel=1e-3)
    assert "offset vote" in (tmp_path / "report" / "summary.md").read_text()


def test_the_baseline_trains_and_evaluates_through_the_same_commands(tiny_cache, tmp_path, capsys):
    config = tiny_config(tiny_cache, tmp_path / "run", epochs=2)
    config.model = {"preset": "baseline", "channels": [8, 8], "neighbours": 6, "pool_keep": 0.5, "pool_neighbours": 4,
                    "head_hidden": 16}
    summary = train(config, progress=False)
    saved = Checkpoint.load(tmp_path / "run" / "best.pt")
    assert saved.inference.model_config["architecture"] == "edgeconv" and summary["steps"] == 6
    code = main(["evaluate", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--cache", str(tiny_cache),
                 "--output", str(tmp_path / "report"), "--preprocessing", "none", "raw", "--perturbations", "both",
                 "--quiet"])
    assert code == 0
    conditions = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["conditions"]
    # Not equivariant: random poses change its answers (the SE3Unet's stay the same, above).
    assert conditions["raw / both"]["error_mm"] != pytest.approx(conditions["none"]["error_mm"], rel=1e-2)


def test_training_on_the_first_points_of_each_scan_records_what_predict_must_read(tiny_cache, tmp_path):
    config = tiny_config(tiny_cache, tmp_path / "run", epochs=1)
    config.data.points = 32  # of the cache's 64: a 2048-point study cache serves 1024-point ablations
    train(config, progress=False)
    saved = Checkpoint.load(tmp_path / "run" / "best.pt")
    assert saved.inference.scan.points == 32
    config.data.points = 128
    with pytest.raises(ValueError, match="cannot take 128 points"):
        train(config, progress=False)


def test_fine_tuning_starts_from_the_given_weights_and_refuses_another_model(tiny_cache, tmp_path):
    first = tmp_path / "first"
    train(tiny_config(tiny_cache, first, epochs=1), progress=False)
    start = Checkpoint.load(first / "best.pt").inference.weights
    # At a learning rate of 0 nothing moves: the run ends with exactly the weights it started from.
    config = tiny_config(tiny_cache, tmp_path / "tuned", epochs=1, lr=0.0, eta_min=0.0)
    config.run.init = str(first / "best.pt")
    train(config, progress=False)
    tuned = Checkpoint.load(tmp_path / "tuned" / "best.pt").inference.weights
    assert all(torch.equal(start[k], tuned[k]) for k in start)
    other = tiny_config(tiny_cache, tmp_path / "other", epochs=1)
    other.model["heads"], other.run.init = 1, str(first / "best.pt")
    with pytest.raises(ValueError, match=r"differs from this run's in heads \(2 there, 1 here\)"):
        train(other, progress=False)
    other.model["heads"], other.run.init = 2, str(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt is not a checkpoint file"):
        train(other, progress=False)


@pytest.fixture(scope="module")
def twin_caches(sfm_dir, tmp_path_factory):
    config = PrepareConfig(source="sfm", path=str(sfm_dir), subjects=6, samples=512, points=64, val=1, test=1,
                           surround=1.0, face_crop=120.0)
    root = tmp_path_factory.mktemp("twins")
    twin = PrepareConfig(**{**config.__dict__, "surround_twin": True})
    return prepare(config, root, progress=False).path, prepare(twin, root, progress=False).path


def test_training_with_a_twin_cache_reads_each_scan_beside_its_twin(twin_caches, tiny_cache, tmp_path, monkeypatch):
    import se3unet.train.trainer as trainer

    cache, twin = twin_caches
    batches = []
    real_collate = trainer.collate

    def recording_collate(items):
        batches.append([int(item["index"]) for item in items])
        return real_collate(items)

    monkeypatch.setattr(trainer, "collate", recording_collate)
    config = tiny_config(cache, tmp_path / "run", epochs=1)
    config.data.twin_cache, config.loss.consistency = str(twin), 1.0
    summary = train(config, progress=False)
    trained = batches[:summary["steps"]]  # then validation's batches, without twins
    assert summary["steps"] == 2 and all(len(b) == 4 and b[:2] == b[2:] for b in trained)
    assert np.isfinite(summary["best_val_error_mm"])
    config.loss.consistency = 0.0
    with pytest.raises(ValueError, match="go together"):
        train(config, progress=False)
    config.loss.consistency = 1.0
    config.data.twin_cache, config.run.output = str(tiny_cache), str(tmp_path / "other")
    with pytest.raises(ValueError, match="not data.cache's faces"):
        train(config, progress=False)
