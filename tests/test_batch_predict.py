"""Many scans without a GUI: folders and lists, shards without overlap, a killed run that
resumes, one summary table, a non-zero exit on any failure, every landmark file format."""

import csv
import json

import numpy as np
import pytest
import torch
from helpers import write_obj

from se3unet.cli import main
from se3unet.data.landmark_files import FORMATS, WRITTEN_FORMATS, read_landmark_file, read_tps
from se3unet.inference import Checkpoint, Decoding, InferenceState, ScanSettings
from se3unet.locate import LocateSettings
from se3unet.model import SE3Unet, preset
from se3unet.predict import predict, scan_list, shard_of

TINY = preset("default", num_outputs=3, channels=(4, 4), neighbours=6, pool_neighbours=4, head_hidden=8,
              radial_hidden=8)
ONE_PASS = LocateSettings(crop=False)


@pytest.fixture
def collection(sfm_model, tmp_path):
    """A checkpoint and four face scans, two of them with one file stem in different folders."""
    torch.manual_seed(0)
    Checkpoint(InferenceState(TINY.to_dict(), SE3Unet(TINY).state_dict(), ["nasion", "pronasale", "pogonion"],
                              ScanSettings(samples=1024, points=96), Decoding("softmax"))).save(tmp_path / "m.pt")
    rng = np.random.default_rng(0)
    for name in ("a/face", "b/face", "c", "d"):
        vertices = sfm_model.vertices(rng.standard_normal(sfm_model.num_components))
        write_obj(tmp_path / "scans" / f"{name}.obj", vertices, sfm_model.triangles)
    return tmp_path


def rows(path):
    return list(csv.DictReader(path.open()))


def test_shards_split_a_collection_without_overlap():
    shards = [shard_of(10, f"{k}/3") for k in (1, 2, 3)]
    assert sorted(sum(shards, [])) == list(range(10)) and shards[0] == [0, 3, 6, 9]
    with pytest.raises(ValueError, match="K must be between 1 and N"):
        shard_of(10, "4/3")


def test_folders_and_lists_name_every_scan_once(collection):
    scans = collection / "scans"
    (collection / "list.txt").write_text(f"# two scans\n{scans / 'c.obj'}\n\n{scans / 'd.obj'}\n")
    assert scan_list([str(scans)]) == [str(scans / n) for n in ("a/face.obj", "b/face.obj", "c.obj", "d.obj")]
    assert scan_list([], str(collection / "list.txt")) == [str(scans / "c.obj"), str(scans / "d.obj")]


def test_a_stopped_run_resumes_and_shards_keep_their_own_summaries(collection):
    scans = scan_list([str(collection / "scans")])
    out = collection / "out"
    first = predict(scans, str(collection / "m.pt"), str(out), picture=False, device="cpu", locating=ONE_PASS,
                    shard="1/2")
    second = predict(scans, str(collection / "m.pt"), str(out), picture=False, device="cpu", locating=ONE_PASS,
                     shard="2/2")
    assert [r["name"] for r in first] == ["a__face", "c"] and [r["name"] for r in second] == ["b__face", "d"]
    assert [r["status"] for r in rows(out / "summary-1-of-2.csv")] == ["ok", "ok"]
    written = (out / "c.landmarks.csv").stat().st_mtime_ns
    (out / "d.landmarks.csv").unlink()  # as if the run had been killed before d was written
    again = predict(scans, str(collection / "m.pt"), str(out), picture=False, device="cpu", locating=ONE_PASS)
    assert [r["status"] for r in again] == ["done before", "done before", "done before", "ok"]
    assert (out / "c.landmarks.csv").stat().st_mtime_ns == written
    assert [r["status"] for r in rows(out / "summary.csv")] == ["done before"] * 3 + ["ok"]
    other = predict(scans[:1], str(collection / "m.pt"), str(out), picture=False, device="cpu",
                    locating=LocateSettings(crop=False, samplings=2), fmt="json")
    assert other[0]["status"] == "ok"  # other settings: predicted again


def test_the_command_exits_non_zero_when_a_scan_fails_and_says_which(collection, capsys):
    np.savetxt(collection / "scans" / "dot.xyz", np.ones((200, 3)))
    code = main(["predict", str(collection / "scans"), "--checkpoint", str(collection / "m.pt"), "--output",
                 str(collection / "out"), "--no-picture", "--whole-scan", "--quiet"])
    assert code == 1
    table = {r["name"]: r for r in rows(collection / "out" / "summary.csv")}
    assert table["dot"]["status"] == "failed" and "dot.xyz" in table["dot"]["error"]
    assert table["c"]["status"] == "ok" and float(table["c"]["seconds"]) > 0


@pytest.mark.parametrize("fmt", WRITTEN_FORMATS)
def test_predict_writes_every_format_with_the_same_landmarks(collection, fmt):
    scans = [str(collection / "scans" / n) for n in ("c.obj", "d.obj")]
    reference = predict(scans, str(collection / "m.pt"), str(collection / "csv"), picture=False, device="cpu",
                        locating=ONE_PASS, fmt="json")
    results = predict(scans, str(collection / "m.pt"), str(collection / fmt), picture=False, device="cpu",
                      locating=ONE_PASS, fmt=fmt)
    for ref, result in zip(reference, results):
        expected = json.loads(open(ref["landmarks"]).read())["landmarks"]
        assert result["landmarks"].endswith(f".landmarks{FORMATS[fmt]}")
        found = read_tps(result["landmarks"])[result["name"]] if fmt == "tps" else read_landmark_file(result["landmarks"])
        if fmt != "tps":
            assert found.names == list(expected)
        np.testing.assert_allclose(found.points, np.array(list(expected.values())), rtol=1e-6, atol=1e-4)
    if fmt == "tps":  # the whole collection in one file too, by ID
        assert list(read_tps(collection / fmt / "landmarks.tps")) == ["c", "d"]
