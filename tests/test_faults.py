"""The silent faults of issue 39, each as a user met it: every test here failed before its fix."""

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import write_obj
from se3unet.cli import main
from se3unet.data.errors import DataError, DataWarning
from se3unet.data.io import read_surface
from se3unet.data.prepare import PrepareConfig, load_split, prepare
from se3unet.data.reference import REFERENCE
from se3unet.predict import output_names

TETRAHEDRON = (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float), [(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)])


@pytest.fixture
def config(sfm_dir):
    return PrepareConfig(source="sfm", path=str(sfm_dir), subjects=8, expressions=2, samples=1024, points=192,
                         val=0.25, test=0.25, seed=7)


def test_an_obj_with_a_latin1_comment_is_read(tmp_path):
    path = tmp_path / "scan.obj"
    write_obj(path, *TETRAHEDRON)
    path.write_bytes("# scanned at the café, Zürich\n".encode("latin-1") + path.read_bytes())
    surface = read_surface(path)
    assert surface.vertices.shape == (4, 3) and surface.triangles.shape == (4, 3)


@pytest.mark.parametrize("bad", ["nan", "zero"])
def test_a_cloud_with_unusable_normals_gets_estimated_ones(tmp_path, bad):
    points = np.random.default_rng(0).normal(size=(300, 3))
    normals = np.full((300, 3), np.nan) if bad == "nan" else np.zeros((300, 3))
    path = tmp_path / "cloud.npy"
    np.save(path, np.hstack([points, normals]))
    with pytest.warns(DataWarning, match="cloud.npy: 300 of 300 normals"):
        surface = read_surface(path)
    assert surface.normals is None  # estimated from the points downstream, like a cloud without normals


def test_given_normals_are_scaled_to_unit_length(tmp_path):
    points = np.random.default_rng(0).normal(size=(50, 3))
    path = tmp_path / "cloud.npy"
    np.save(path, np.hstack([points, 3.0 * points]))
    normals = read_surface(path).normals
    assert np.allclose(np.linalg.norm(normals, axis=1), 1.0)


def test_scans_with_one_stem_in_different_folders_get_different_outputs():
    names = output_names([Path("a/face.obj"), Path("b/face.npy"), Path("a/other.ply")])
    assert names == ["a__face", "b__face", "other"]
    assert output_names([Path("x/face.obj"), Path("x/face.npy")]) == ["face.obj", "face.npy"]
    assert output_names([Path("x/one.obj"), Path("y/two.obj")]) == ["one", "two"]  # unchanged where no clash


def test_a_folder_given_as_a_scan_is_named_as_a_folder(tmp_path):
    with pytest.raises(DataError, match="is a folder, not a scan"):
        read_surface(tmp_path)


def test_a_cache_missing_a_middle_shard_is_refused_on_load_and_rebuilt_by_prepare(config, tmp_path, monkeypatch):
    import se3unet.data.prepare as module

    monkeypatch.setattr(module, "SHARD_SIZE", 2)
    first = prepare(config, tmp_path, progress=False)
    shards = sorted(first.path.glob("train-*.npz"))
    assert len(shards) >= 3
    complete = load_split(first.path, "train")
    shards[1].unlink()
    with pytest.raises(DataError, match=f"{shards[1].name} missing"):
        load_split(first.path, "train")
    again = prepare(config, tmp_path, progress=False)
    assert not again.reused and shards[1].is_file()
    assert np.array_equal(load_split(again.path, "train")["points"], complete["points"])


def test_a_truncated_reference_fails_evaluate_before_any_work_and_prepare_rebuilds_it(config, tmp_path, capsys,
                                                                                     monkeypatch):
    import se3unet.evaluate.report as report

    result = prepare(config, tmp_path, progress=False)
    reference = result.path / REFERENCE
    whole = reference.read_bytes()
    reference.write_bytes(whole[: len(whole) // 2])
    ran = []
    monkeypatch.setattr(report, "evaluate_condition", lambda *a, **k: ran.append(1))
    code = main(["evaluate", "--cache", str(result.path), "--output", str(tmp_path / "report"), "--quiet"])
    message = capsys.readouterr().err
    assert code == 2 and not ran
    assert f"{reference}: damaged reference face" in message and "se3unet prepare" in message
    again = prepare(config, tmp_path, progress=False)
    assert not again.reused and reference.read_bytes() == whole


@pytest.mark.parametrize("override, message", [
    ("optim.epochs=ten", "optim.epochs must be a whole number; got 'ten'"),
    ("optim.batch_size=0", "optim.batch_size must be at least 1; got 0"),
    ("optim.lr=-1e-3", "optim.lr must be at least 0"),
    ("data.rotate=maybe", "data.rotate must be true or false"),
    ("model.channels=[8,many]", "model.channels must be a list of whole numbers"),
])
def test_wrongly_typed_settings_are_refused_before_a_run_folder_exists(tmp_path, capsys, override, message):
    output = tmp_path / "run"
    code = main(["train", "--set", override, f"run.output={output}", f"data.cache={tmp_path / 'no-cache'}"])
    assert code == 2 and message in capsys.readouterr().err
    assert not output.exists()


def test_verify_reports_the_original_preset_instead_of_crashing(capsys):
    code = main(["verify", "--preset", "original", "--json", "--points", "24", "-k", "5", "--model-points", "256"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # Its biases in [-1, 1] zero every feature; with [0, 1] its logits vary, and it is not invariant.
    assert code == 1 and not report["model"]["collapsed"] and report["model"]["bias_range"] == [0.0, 1.0]
    assert report["model"]["float64"] > 1e-3 and report["model"]["passes"] is False


def test_verify_checks_the_baseline_network_and_says_it_is_not_invariant(capsys):
    code = main(["verify", "--preset", "baseline", "--json", "--points", "24", "-k", "5", "--model-points", "256"])
    out = capsys.readouterr().out
    report = json.loads(out.strip().splitlines()[-1])
    assert code == 1 and report["model"]["architecture"] == "edgeconv" and report["model"]["float64"] > 1e-3
    assert "not rotation invariant" in out


def test_written_files_get_the_usual_mode_not_a_private_one(tmp_path):
    from se3unet.atomic import write_text_atomically

    mask = os.umask(0o022)
    try:
        write_text_atomically(tmp_path / "page.html", "<html></html>")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "page.html").stat().st_mode) == 0o644


def test_ctrl_c_ends_with_a_line_not_a_traceback(monkeypatch, capsys):
    import se3unet.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_verify", interrupted)  # the parser binds the command when main builds it
    assert cli.main(["verify"]) == 130
    assert capsys.readouterr().err.strip() == "se3unet verify: interrupted"


def _children(pid):
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def _alive(pid):
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_prepare_killed_with_kill_9_leaves_no_workers(sfm_dir, tmp_path):
    # Reads /proc to find the workers: Linux, where the project is built and CI runs.
    parent = subprocess.Popen([sys.executable, "-m", "se3unet.cli", "prepare", "--sfm-dir", str(sfm_dir),
                               "--subjects", "400", "--workers", "2", "--quiet", "--cache-dir", str(tmp_path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        workers = []
        while time.time() < deadline and len(workers) < 2:
            time.sleep(0.5)
            workers = [c for c in _children(parent.pid) if b"spawn" in (Path("/proc") / str(c) / "cmdline").read_bytes()]
        assert len(workers) == 2, "prepare did not start its two workers"
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.time() + 20
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.5)
    alive = [w for w in workers if _alive(w)]
    for w in alive:  # do not leave them to the next test
        os.kill(w, signal.SIGKILL)
    assert not alive
