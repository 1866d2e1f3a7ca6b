"""The whole SE3Unet: invariance of its logits, the original's lack of it, shapes, refusals."""

import pytest
import torch

from se3unet.equivariant.rotation import random_rotation
from se3unet.model import SE3Unet, UNetConfig, preset
from se3unet.verify import tolerance

TINY = UNetConfig(num_outputs=5, degrees=(0, 1, 2), channels=(4, 4, 4), heads=2, neighbours=6,
                  pool_keep=0.5, pool_neighbours=4, normals=False)


def _normals_for(model, positions):
    if not model.config.normals:
        return None
    return torch.nn.functional.normalize(torch.randn_like(positions), dim=-1)


def _invariance_error(model, positions, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    rotation = random_rotation(dtype, g).to(positions.device)
    translation = torch.randn(3, dtype=torch.float64, generator=g).to(positions.device, dtype) * 3
    normals = _normals_for(model, positions)
    with torch.no_grad():
        a = model(positions, normals=normals)
        b = model(positions @ rotation.T + translation, normals=None if normals is None else normals @ rotation.T)
    return float((a - b).abs().max() / a.abs().max())


@pytest.mark.parametrize("name,points", [("default", 384), ("report-v1", 512)])
def test_preset_logits_are_invariant_to_rotation_and_translation(name, points, dtype, device):
    model = SE3Unet(preset(name)).to(device, dtype)
    positions = torch.randn(2, points, 3, dtype=dtype).to(device)
    assert _invariance_error(model, positions, dtype) < tolerance(dtype)


@pytest.mark.parametrize("join,pooling,norm", [("sum", "mean", "bias"), ("concat", "multi", "rms")])
def test_other_settings_stay_invariant(join, pooling, norm):
    model = SE3Unet(TINY.replace(join=join, pooling=pooling, norm=norm, normals=False)).double()
    positions = torch.randn(1, 60, 3, dtype=torch.float64)
    assert _invariance_error(model, positions, torch.float64) < 1e-9


def test_normals_as_input_keep_invariance():
    model = SE3Unet(TINY.replace(normals=True)).double()
    x = torch.randn(1, 60, 3, dtype=torch.float64)
    n = torch.nn.functional.normalize(torch.randn(1, 60, 3, dtype=torch.float64), dim=-1)
    r = random_rotation()
    with torch.no_grad():
        a = model(x, normals=n)
        b = model(x @ r.T + 1.0, normals=n @ r.T)
    assert float((a - b).abs().max() / a.abs().max()) < 1e-9


def test_original_preset_is_not_invariant():
    model = SE3Unet(preset("original")).double()
    positions = torch.randn(1, 512, 3, dtype=torch.float64)
    assert _invariance_error(model, positions, torch.float64) > 1e-3


@pytest.mark.parametrize("name,outputs", [("default", 50), ("report-v1", 68), ("original", 68)])
def test_preset_shapes_and_parameter_counts(name, outputs):
    model = SE3Unet(preset(name))
    # Regression guard on the architecture: a change here must be deliberate (docs/model.md).
    expected_params = {"default": 694402, "report-v1": 190240, "original": 118386}[name]
    assert sum(p.numel() for p in model.parameters()) == expected_params
    x = torch.randn(1, 512, 3)
    out = model(x, normals=_normals_for(model, x))
    assert out.shape == (1, 512, outputs)


def test_report_v1_builds_the_reports_network():
    # The report (reference/): 2048 points, kNN 40, one pooling to 10% of the points, degrees
    # up to 2 with 5 channels, 68 heatmaps. Checked on what the model builds, not its settings.
    model = SE3Unet(preset("report-v1"))
    levels = model.hierarchy(torch.randn(1, 2048, 3))
    assert [tuple(level.neighbours.shape) for level in levels] == [(1, 2048, 40), (1, 205, 40)]
    first = model.down[0].attention1
    assert first.fiber_out.degrees == (0, 1, 2) and first.fiber_out[2] == 5
    assert model(torch.randn(1, 420, 3)).shape == (1, 420, 68)


def test_precomputed_hierarchy_gives_the_same_logits():
    model = SE3Unet(TINY)
    x = torch.randn(2, 50, 3)
    with torch.no_grad():
        assert torch.equal(model(x), model(x, model.hierarchy(x)))


def test_gradients_reach_every_parameter_and_coincident_points_stay_finite():
    model = SE3Unet(TINY)
    x = torch.randn(1, 40, 3)
    x = torch.cat([x, x[:, :10]], dim=1)  # duplicated points
    logits = model(x)
    (logits * torch.randn_like(logits)).sum().backward()
    assert torch.isfinite(logits).all()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_too_small_clouds_are_refused_with_a_clear_message():
    with pytest.raises(ValueError, match=r"level 0 .*needs? at least 13"):
        SE3Unet(preset("default"))(torch.randn(1, 10, 3), normals=torch.randn(1, 10, 3))


def test_a_model_that_reads_normals_asks_for_them():
    with pytest.raises(ValueError, match="normals=True: pass normals"):
        SE3Unet(preset("default"))(torch.randn(1, 300, 3))


def test_unknown_presets_and_settings_are_refused():
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")
    with pytest.raises(ValueError, match="unknown model settings"):
        UNetConfig.from_dict({"chanels": [4]})


def test_offset_head_landmarks_move_exactly_with_the_scan():
    from se3unet.inference import Decoding, decode

    model = SE3Unet(TINY.replace(head="offset")).double()
    for p in model.parameters():  # offsets start near zero: make them count
        p.data.add_(0.3 * torch.randn_like(p))
    positions = torch.randn(2, 60, 3, dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    rotation = random_rotation(torch.float64, g)
    translation = torch.randn(3, dtype=torch.float64, generator=g) * 3
    decoding = Decoding(heatmap="softmax", landmarks="offset_vote")
    with torch.no_grad():
        logits, offsets = model(positions, with_offsets=True)
        moved_points = positions @ rotation.T + translation
        moved_logits, moved_offsets = model(moved_points, with_offsets=True)
    assert offsets.shape == (2, 60, 5, 3) and float(offsets.abs().max()) > 1e-3
    assert torch.allclose(moved_offsets, offsets @ rotation.T, atol=1e-12)  # a degree-1 output turns
    _, landmarks = decode(logits, positions, decoding, offsets)
    _, moved = decode(moved_logits, moved_points, decoding, moved_offsets)
    assert float((moved - (landmarks @ rotation.T + translation)).abs().max()) < 1e-9
    # The vote is not the heatmap mean: the offsets move the landmarks off the points' mean.
    _, mean_only = decode(logits, positions, Decoding(heatmap="softmax"))
    assert float((landmarks - mean_only).abs().max()) > 1e-3


def test_heads_without_offsets_say_so():
    model = SE3Unet(TINY)
    logits, offsets = model(torch.randn(1, 40, 3), with_offsets=True)
    assert offsets is None and logits.shape == (1, 40, 5)


def test_rms_norms_keep_the_signal_through_depth():
    sizes = {}
    for norm in ("bias", "rms"):
        torch.manual_seed(0)
        model = SE3Unet(preset("default", norm=norm))
        last = []
        model.up[-1].register_forward_hook(lambda module, inputs, output: last.append(output[0]))
        x = torch.randn(1, 512, 3)
        with torch.no_grad():
            model(x / x.norm(dim=-1).max(), normals=torch.nn.functional.normalize(torch.randn(1, 512, 3), dim=-1))
        sizes[norm] = float(last[0].abs().mean())
    assert sizes["rms"] > 0.3 and sizes["bias"] < 0.05  # degree 0 before the head (measured 0.95 and 0.0075)
