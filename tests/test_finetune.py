"""Fine-tuning to a user's landmarks: how new outputs start, kept landmarks that stay exactly the
base model's, and the command's checkpoint that predict reads as it records."""

import json

import numpy as np
import pytest
import torch
from helpers import write_obj

from se3unet.data.landmark_files import format_landmarks
from se3unet.finetune import finetune
from se3unet.inference import Checkpoint, Decoding, InferenceState, ReadSettings, ScanSettings, build_model
from se3unet.model import SE3Unet, preset
from se3unet.train.finetune_init import freeze_backbone, load_finetune_weights

BASE = preset("default", num_outputs=6, channels=(4, 4), neighbours=6, pool_neighbours=4, head_hidden=8,
              radial_hidden=8, head="offset", recompute=False)
NAMES = [f"p{i}" for i in range(6)]


def base_checkpoint(path):
    torch.manual_seed(0)
    model = SE3Unet(BASE)
    with torch.no_grad():  # offsets of a fresh head start near zero: make them differ per landmark
        for p in model.head.parameters():
            p.add_(0.3 * torch.randn_like(p))
    Checkpoint(InferenceState(BASE.to_dict(), model.state_dict(), NAMES, ScanSettings(samples=1024, points=96),
                              Decoding("softmax", "offset_vote"))).save(path)
    return model.eval()


def cloud(seed=0, n=96):
    g = torch.Generator().manual_seed(seed)
    points = torch.randn(1, n, 3, generator=g)
    normals = torch.nn.functional.normalize(torch.randn(1, n, 3, generator=g), dim=-1)
    return points, normals


def test_new_outputs_start_as_the_base_model_s_nearest_landmark(tmp_path):
    base = base_checkpoint(tmp_path / "base.pt")
    config = BASE.replace(num_outputs=3)
    model = SE3Unet(config)
    load_finetune_weights(model, base.state_dict(), NAMES, ["p2", "new", "fresh"], {"new": 4})
    points, normals = cloud()
    with torch.no_grad():
        logits, offsets = model(points, normals=normals, with_offsets=True)
        base_logits, base_offsets = base(points, normals=normals, with_offsets=True)
    assert torch.equal(logits[..., 0], base_logits[..., 2]) and torch.equal(logits[..., 1], base_logits[..., 4])
    assert torch.equal(offsets[..., 1, :], base_offsets[..., 4, :])
    assert not torch.allclose(logits[..., 2], base_logits[..., 4])  # "fresh": its own rows


def test_kept_landmarks_stay_exactly_the_base_model_s_when_the_backbone_is_frozen(tmp_path):
    base = base_checkpoint(tmp_path / "base.pt")
    model = SE3Unet(BASE.replace(num_outputs=8, added_outputs=2))
    load_finetune_weights(model, base.state_dict(), NAMES, NAMES + ["a", "b"], None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    frozen = freeze_backbone(model)
    assert frozen and all(not n.startswith("head.added") for n in frozen)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.1)
    points, normals = cloud(1)
    for _ in range(3):
        logits, offsets = model(points, normals=normals, with_offsets=True)
        (logits.square().mean() + offsets.square().mean()).backward()
        optimizer.step()
        optimizer.zero_grad()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("head.added.") for k in changed)  # every other weight bit for bit
    with torch.no_grad():
        logits, offsets = model(points, normals=normals, with_offsets=True)
        base_logits, base_offsets = base(points, normals=normals, with_offsets=True)
    # the same function of the same weights (the last bits may differ with the kernels' blocking)
    assert torch.allclose(logits[..., :6], base_logits, atol=1e-6) and torch.allclose(offsets[..., :6, :], base_offsets,
                                                                                    atol=1e-6)
    assert logits.shape[-1] == 8 and offsets.shape[-2] == 8


def face_folder(sfm_model, folder, count=4, names=("nasion", "ear")):
    rng = np.random.default_rng(0)
    for i in range(count):
        vertices = sfm_model.vertices(rng.standard_normal(sfm_model.num_components))
        write_obj(folder / f"face{i}.obj", vertices, sfm_model.triangles)
        marks = sfm_model.landmarks(vertices)[:len(names)]
        (folder / f"face{i}.fcsv").write_text(format_landmarks(list(names), marks, "fcsv"))


def test_finetune_writes_a_checkpoint_predict_reads_as_recorded(sfm_model, tmp_path):
    base_checkpoint(tmp_path / "base.pt")
    face_folder(sfm_model, tmp_path / "data")
    summary = finetune(str(tmp_path / "data"), str(tmp_path / "mine"), checkpoint=str(tmp_path / "base.pt"), keep=True,
                       steps=2, batch_size=2, reading=ReadSettings(crop=False), workers=1, progress=False)
    saved = Checkpoint.load(summary["checkpoint"])
    assert saved.resume is None and saved.inference.reading == ReadSettings(crop=False)
    assert saved.inference.landmark_names == NAMES + ["nasion", "ear"] and summary["added"] == ["nasion", "ear"]
    assert summary["steps"] == 2
    model, base = build_model(saved.inference), build_model(Checkpoint.load(tmp_path / "base.pt").inference)
    points, normals = cloud(2)
    with torch.no_grad():
        assert torch.allclose(model(points, normals=normals)[..., :6], base(points, normals=normals), atol=1e-6)
    from se3unet.cli import main

    assert main(["predict", str(tmp_path / "data" / "face0.obj"), "--checkpoint", summary["checkpoint"],
                 "--output", str(tmp_path / "out"), "--format", "json", "--no-picture", "--quiet"]) == 0
    record = json.loads((tmp_path / "out" / "face0.landmarks.json").read_text())
    assert list(record["landmarks"]) == NAMES + ["nasion", "ear"]


def test_finetune_refuses_unnamed_landmarks_for_a_named_model(sfm_model, tmp_path):
    base_checkpoint(tmp_path / "base.pt")
    (tmp_path / "data").mkdir()
    face_folder(sfm_model, tmp_path / "data", count=2)
    for i in range(2):
        (tmp_path / "data" / f"face{i}.fcsv").unlink()
        np.save(tmp_path / "data" / f"face{i}.landmarks.npy", np.zeros((3, 3)))
    with pytest.raises(ValueError, match="name them, or give prepare --landmark-names"):
        finetune(str(tmp_path / "data"), str(tmp_path / "mine"), checkpoint=str(tmp_path / "base.pt"), steps=1,
                 workers=1, progress=False)


def test_a_model_with_kept_landmarks_finds_the_face_by_them_alone(tmp_path):
    """predict's face search ranks crops by vote spread: the added landmarks must not move it."""
    from se3unet.data.preprocess import model_input
    from se3unet.locate import LandmarkReader

    base = base_checkpoint(tmp_path / "base.pt")
    inference = Checkpoint.load(tmp_path / "base.pt").inference
    model = SE3Unet(BASE.replace(num_outputs=8, added_outputs=2)).eval()
    load_finetune_weights(model, base.state_dict(), NAMES, NAMES + ["a", "b"], None)
    rng = np.random.default_rng(0)
    points = rng.normal(size=(500, 3))
    scans = [model_input(points + shift, None, 96) for shift in (0.0, 5.0)]
    theirs = LandmarkReader(base, inference, torch.device("cpu"))(scans)
    ours = LandmarkReader(model, inference, torch.device("cpu"))(scans)
    assert [r.spread for r in ours] == pytest.approx([r.spread for r in theirs], rel=1e-5)
