"""`se3unet prepare`, the cache, and the Dataset over it."""

import json

import numpy as np
import pytest
import torch

from se3unet.cli import main
from se3unet.data.dataset import LandmarkDataset, collate
from se3unet.data.prepare import MANIFEST, PrepareConfig, load_split, prepare, split_subjects
from se3unet.model import SE3Unet, UNetConfig


@pytest.fixture
def config(sfm_dir):
    return PrepareConfig(source="sfm", path=str(sfm_dir), subjects=8, expressions=2, samples=1024, points=192,
                         val=0.25, test=0.25, seed=7)


def _arrays(folder):
    return {split: load_split(folder, split) for split in ("train", "val", "test")}


def test_splits_are_by_subject_and_disjoint():
    subjects = [f"s{i // 3}" for i in range(30)]  # 10 subjects, 3 scans each
    splits = split_subjects(subjects, val=0.2, test=3, seed=1)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [5, 2, 3]
    assert not set(splits["train"]) & set(splits["test"]) and not set(splits["val"]) & set(splits["test"])
    assert split_subjects(subjects, 0.2, 3, seed=1) == splits != split_subjects(subjects, 0.2, 3, seed=2)
    with pytest.raises(ValueError, match="none for training"):
        split_subjects(subjects, 0.5, 0.5, 0)


def test_prepare_is_deterministic_reuses_and_rebuilds_on_change(config, tmp_path):
    first = prepare(config, tmp_path / "a", progress=False)
    assert first.sizes == {"train": 8, "val": 4, "test": 4} and not first.reused
    again = prepare(config, tmp_path / "a", progress=False)
    assert again.reused and again.path == first.path
    other = prepare(config, tmp_path / "b", workers=2, progress=False)  # parallel workers, same result
    a, b = _arrays(first.path), _arrays(other.path)
    for split in a:
        for key in a[split]:
            assert np.array_equal(a[split][key], b[split][key]), (split, key)
    train = a["train"]
    assert train["points"].shape == (8, 192, 3) and train["landmarks"].shape == (8, 50, 3)
    assert np.allclose(np.linalg.norm(train["points"], axis=2).max(1), 1.0, atol=1e-6)
    assert (train["scale"] > 50).all()  # mm per unit: about a face's radius
    changed = prepare(PrepareConfig(**{**config.__dict__, "seed": 8}), tmp_path / "a", progress=False)
    assert changed.path != first.path and not changed.reused


def test_interrupted_prepare_resumes_from_its_shards(config, tmp_path, monkeypatch):
    import se3unet.data.prepare as module

    monkeypatch.setattr(module, "SHARD_SIZE", 3)
    calls = []
    original = module.preprocess_entry

    def failing(*args):
        if len(calls) == 7:
            raise KeyboardInterrupt  # a kill mid-way
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(module, "preprocess_entry", failing)
    with pytest.raises(KeyboardInterrupt):
        prepare(config, tmp_path, progress=False)
    folder = module.cache_path(config, tmp_path)
    assert not (folder / MANIFEST).exists() and len(list(folder.glob("*.npz"))) == 2  # 6 scans in 2 shards
    assert not list(folder.glob("*.tmp"))
    counted = []
    monkeypatch.setattr(module, "preprocess_entry", lambda *a: counted.append(1) or original(*a))
    result = prepare(config, tmp_path, progress=False)
    assert len(counted) == 16 - 6 and sum(result.sizes.values()) == 16
    clean = prepare(config, tmp_path / "clean", progress=False)
    a, b = _arrays(result.path), _arrays(clean.path)
    assert all(np.array_equal(a[s]["points"], b[s]["points"]) for s in a)


def test_prepare_command_prints_json_last(sfm_dir, tmp_path, capsys):
    code = main(["prepare", "--sfm-dir", str(sfm_dir), "--subjects", "5", "--samples", "512", "--points", "128",
                 "--val", "1", "--test", "1", "--cache-dir", str(tmp_path), "--workers", "1", "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["splits"] == {"train": 3, "val": 1, "test": 1} and summary["scans_per_second"] > 0
    assert (tmp_path / summary["cache"].split("/")[-1] / MANIFEST).is_file()


def test_prepare_command_names_a_missing_model_folder(tmp_path, capsys):
    assert main(["prepare", "--sfm-dir", str(tmp_path), "--quiet"]) == 2
    assert "lacks sfm_shape_3448.bin" in capsys.readouterr().err


@pytest.fixture
def cache(config, tmp_path):
    return prepare(config, tmp_path, progress=False).path


def test_dataset_draws_a_new_pose_each_epoch_and_targets_follow(cache):
    ds = LandmarkDataset(cache, "train", sigma=0.08, threshold=0.5, translation=0.5)
    a = ds[0]
    ds.set_epoch(1)
    b = ds[0]
    assert not torch.allclose(a["points"], b["points"])
    # heatmaps depend on distances only: the same in every pose
    assert torch.allclose(a["heatmaps"], b["heatmaps"], atol=1e-5)
    canonical = torch.from_numpy(ds.data["points"][0])
    assert torch.allclose(canonical @ a["rotation"].T + a["translation"], a["points"], atol=1e-5)
    assert torch.equal(a["labels"], (a["heatmaps"] > 0.5).float())
    fixed = LandmarkDataset(cache, "train", fixed_pose=True)
    first = fixed[0]["points"]
    fixed.set_epoch(5)
    assert torch.equal(fixed[0]["points"], first)


def test_dataset_realigns_by_icp_without_landmarks(cache):
    ds = LandmarkDataset(cache, "test", realign=True, translation=1.0)
    item = ds[0]
    # after realignment the scan is back near the canonical frame: landmarks close to where
    # they are in the unposed scan (a different identity from the reference, so not exact)
    canonical = torch.from_numpy(ds.data["landmarks"][0])
    assert (item["landmarks"] - canonical).norm(dim=1).mean() < 0.1


def test_dataset_hierarchy_is_reposed_not_recomputed(cache):
    model = SE3Unet(UNetConfig(channels=(4, 4), neighbours=8, heads=2, pool_neighbours=4))
    ds = LandmarkDataset(cache, "train", hierarchy=model.hierarchy)
    batch = collate([ds[0], ds[1]])
    with torch.no_grad():
        a = model(batch["points"], batch["hierarchy"], normals=batch["normals"])
        assert torch.allclose(a, model(batch["points"], normals=batch["normals"]), atol=1e-6)
    assert batch["hierarchy"][1].kept.shape == (2, 48)


def test_evaluation_datasets_rebuild_the_hierarchy_in_each_pose(cache, monkeypatch):
    model = SE3Unet(UNetConfig(channels=(4, 4), neighbours=8, heads=2, pool_neighbours=4))
    built_from = []

    def recording_hierarchy(positions):
        built_from.append(positions.clone())
        return model.hierarchy(positions)

    ds = LandmarkDataset(cache, "test", rotate=True, translation=0.5, hierarchy=recording_hierarchy, seed=3,
                         fixed_pose=True, rebuild_hierarchy=True)
    item = ds[0]
    # Built from the posed scan itself, as a user's scan would be: not from the canonical one.
    assert torch.equal(built_from[-1][0], item["points"])
    assert not torch.allclose(item["points"], torch.from_numpy(ds.data["points"][0]))
    assert torch.equal(item["hierarchy"][0].positions[0], item["points"])


def test_a_scan_error_in_a_worker_process_reaches_the_parent_with_its_file(config, tmp_path):
    import dataclasses

    from se3unet.data.errors import DataError
    from se3unet.data.preprocess import ScannerEffects

    # A field of view of 1 mm leaves too few points however densely sampled: the error names the scan.
    tight = dataclasses.replace(config, scanner=ScannerEffects(fov=1.0, fov_min=1.0, fov_max=1.0))
    with pytest.raises(DataError, match="SFM subject .* only .* points after sampling"):
        prepare(tight, tmp_path, workers=2, progress=False)


def test_caches_made_before_the_surround_settings_keep_their_names(config):
    import dataclasses

    # The name the default configuration had before `surround` and `face_crop` existed: caches on
    # disk (the study's, the shipped model's) must not be rebuilt because a setting was added.
    assert PrepareConfig().digest() == "f727510c403e"
    assert dataclasses.replace(config, surround=0.5).digest() != config.digest()
    assert dataclasses.replace(config, face_crop=120.0).digest() != config.digest()


def test_a_cache_whose_manifest_predates_the_added_settings_is_reused(config, tmp_path):
    from se3unet.data.prepare import ADDED_SETTINGS

    folder = prepare(config, tmp_path, progress=False).path
    manifest = json.loads((folder / MANIFEST).read_text())
    for name in ADDED_SETTINGS:
        del manifest["config"][name]
    (folder / MANIFEST).write_text(json.dumps(manifest))
    assert prepare(config, tmp_path, progress=False).reused


def _in_mm(scan, raw_landmarks):
    """A prepared scan's points back in the source's millimetres (prepare centres and scales them)."""
    centre = raw_landmarks[0] - scan.landmarks[0] * scan.scale
    return scan.points * scan.scale + centre


def test_surround_and_face_crop_give_what_predict_crops_from_a_whole_head(config, sfm_model):
    import dataclasses

    from scipy.spatial import cKDTree

    from se3unet.data.prepare import CROP_JITTER_MM, make_source, preprocess_entry
    from se3unet.data.preprocess import crop_centre

    source = make_source(config)
    entry = source.entries()[0]
    raw = source.load(entry.key)
    nose = crop_centre(raw.landmarks, source.landmark_names)
    face = cKDTree(raw.surface.vertices)

    def off_face(settings):  # share of points farther than 12 mm from every face vertex, farthest from the nose
        points = _in_mm(preprocess_entry(source, settings, entry, 0), raw.landmarks)
        return (face.query(points)[0] > 12).mean(), np.linalg.norm(points - nose, axis=1).max()

    alone, alone_reach = off_face(config)
    surrounded, reach = off_face(dataclasses.replace(config, surround=1.0, face_crop=120.0))
    assert alone == 0 and surrounded > 0.05  # the cap and neck inside the crop take points (9% here)
    assert reach <= 120 + 5 * CROP_JITTER_MM < alone_reach + 60  # a sphere around the nose tip (jittered)
    # The whole synthetic head without the crop reaches far past it.
    assert off_face(dataclasses.replace(config, surround=1.0))[1] > 150


def test_whole_heads_are_never_given_a_synthetic_head(ict_model, sfm_model):
    from se3unet.data.sources import IctFaceSource, MixedSource, SurreyFaceSource

    mixed = MixedSource([SurreyFaceSource(sfm_model, 1), IctFaceSource(ict_model, 1, region="head")])
    flags = [mixed.load(e.key).whole_head for e in mixed.entries()]
    assert flags == [False, True]
    assert not IctFaceSource(ict_model, 1, region="face").load((0, 0)).whole_head


def test_face_crop_share_leaves_the_other_scans_whole(config):
    import dataclasses

    from se3unet.data.prepare import make_source, preprocess_entry

    settings = dataclasses.replace(config, surround=1.0, face_crop=120.0, face_crop_share=0.5)
    source = make_source(settings)
    reaches = []
    for number, entry in enumerate(source.entries()[:10]):
        raw = source.load(entry.key)
        points = _in_mm(preprocess_entry(source, settings, entry, number), raw.landmarks)
        reaches.append(np.linalg.norm(points - raw.landmarks.mean(axis=0), axis=1).max())
    cropped = sum(r < 140 for r in reaches)  # a whole synthetic head reaches past 150 mm
    assert 2 <= cropped <= 8 and all(r < 140 or r > 150 for r in reaches)


def test_a_surround_twin_draws_as_its_surround_cache_and_keeps_the_face_alone(config, monkeypatch):
    import dataclasses

    import se3unet.data.prepare as prepare_module
    from se3unet.data.prepare import make_source, preprocess_entry

    settings = dataclasses.replace(config, surround=0.5, face_crop=120.0)
    twin = dataclasses.replace(settings, surround_twin=True)
    assert twin.digest() != settings.digest()
    with pytest.raises(ValueError, match="--surround"):
        dataclasses.replace(config, surround_twin=True)
    crops = []  # (centre, vertices of the surface cropped) per call
    real = prepare_module.sample_sphere

    def recorded(surface, centre, *args):
        crops.append((centre.copy(), len(surface.vertices)))
        return real(surface, centre, *args)

    monkeypatch.setattr(prepare_module, "sample_sphere", recorded)
    source = make_source(settings)
    surrounded = same = 0
    for number, entry in enumerate(source.entries()[:8]):
        scans, first_crops = [], []
        for each in (settings, twin):
            crops.clear()
            scans.append(preprocess_entry(source, each, entry, number))
            first_crops.append(crops[0])
        (first, second), ((centre, size), (twin_centre, twin_size)) = scans, first_crops
        assert np.array_equal(centre, twin_centre)  # the same sphere around the same (jittered) nose tip
        if size > twin_size:  # a head was drawn: the twin samples the face alone
            surrounded += 1
        else:  # no head: every draw the same, the same scan
            same += np.array_equal(first.points, second.points)
    assert surrounded >= 2 and same == 8 - surrounded
