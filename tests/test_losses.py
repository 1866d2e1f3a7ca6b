"""Losses against values computed by hand."""

import math

import pytest
import torch

from se3unet.inference import heatmaps_from_logits
from se3unet.train.losses import adaptive_wing_loss, bce_loss, focal_loss, heatmap_cross_entropy, positive_weights


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_bce_with_pos_weight_by_hand():
    logits = torch.tensor([[[2.0, -1.0], [0.5, 0.0]]])  # [B=1, N=2, K=2]
    labels = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    w = torch.tensor([3.0, 5.0])
    expected = (-3 * math.log(sigmoid(2.0)) - math.log(1 - sigmoid(-1.0)) - math.log(1 - sigmoid(0.5))
                - 5 * math.log(sigmoid(0.0)))
    assert float(bce_loss(logits, labels, w, "sum")) == pytest.approx(expected, rel=1e-6)
    assert float(bce_loss(logits, labels, w, "mean")) == pytest.approx(expected / 4, rel=1e-6)


def test_pos_weight_is_points_over_positives():
    labels = torch.zeros(2, 10, 3)
    labels[0, :2, 0] = 1  # 2 positives of 20 points
    labels[1, :5, 1] = 1  # 5 positives
    assert torch.allclose(positive_weights(labels), torch.tensor([10.0, 4.0, 1.0]))


def test_focal_loss_by_hand():
    logits, labels = torch.tensor([[[1.0], [-2.0]]]), torch.tensor([[[1.0], [0.0]]])
    a, g = 0.98, 3.0
    p1, p2 = sigmoid(1.0), sigmoid(-2.0)
    expected = -a * (1 - p1) ** g * math.log(p1) - (1 - a) * p2**g * math.log(1 - p2)
    assert float(focal_loss(logits, labels, a, g, "sum")) == pytest.approx(expected, rel=1e-6)


def test_adaptive_wing_by_hand_on_both_branches():
    omega, theta, eps, alpha = 14.0, 0.5, 1.0, 2.1
    y = 0.3
    logits = torch.tensor([[[math.log(0.4 / 0.6)], [math.log(0.95 / 0.05)]]])  # predictions 0.4 and 0.95
    heat = torch.tensor([[[y], [0.0]]])
    small = omega * math.log(1 + (0.1 / eps) ** (alpha - y))  # |0.4 - 0.3| < theta
    power = alpha - 0.0
    a = omega * (1 / (1 + (theta / eps) ** power)) * power * (theta / eps) ** (power - 1) / eps
    c = theta * a - omega * math.log(1 + (theta / eps) ** power)
    large = a * 0.95 - c  # |0.95 - 0| >= theta
    expected = 11 * small + large  # target 0.3 >= 0.2 counts 11 times
    assert float(adaptive_wing_loss(logits, heat, reduction="sum")) == pytest.approx(expected, rel=1e-5)


def test_heatmap_cross_entropy_by_hand_and_minimised_at_the_target():
    logits = torch.tensor([[[0.0], [1.0], [2.0]]])
    heat = torch.tensor([[[0.0], [1.0], [1.0]]])
    log_z = math.log(1 + math.e + math.e**2)
    expected = -0.5 * (1 - log_z) - 0.5 * (2 - log_z)
    assert float(heatmap_cross_entropy(logits, heat)) == pytest.approx(expected, rel=1e-6)
    target = torch.tensor([[[0.1], [0.6], [0.3]]])
    at_target = heatmap_cross_entropy(target.log(), target)
    assert float(at_target) < float(heatmap_cross_entropy(torch.zeros_like(target), target))


def test_missing_landmarks_are_skipped():
    logits = torch.randn(2, 5, 3)
    heat = torch.rand(2, 5, 3)
    heat[1, :, 2] = 0  # missing landmark
    per_landmark = [float(heatmap_cross_entropy(logits[b:b + 1, :, k:k + 1], heat[b:b + 1, :, k:k + 1]))
                    for b in range(2) for k in range(3) if not (b == 1 and k == 2)]
    # The mean over the five present (scan, landmark) pairs: the missing one adds nothing, not even to the count.
    assert float(heatmap_cross_entropy(logits, heat)) == pytest.approx(sum(per_landmark) / 5, rel=1e-6)
    logits_changed = logits.clone()
    logits_changed[1, :, 2] = 100 * torch.randn(5)
    assert float(heatmap_cross_entropy(logits_changed, heat)) == pytest.approx(float(heatmap_cross_entropy(logits, heat)))


def test_heatmaps_from_logits_peak_at_one_for_softmax_and_are_sigmoids_otherwise():
    logits = torch.randn(2, 5, 3)
    p = heatmaps_from_logits(logits, "softmax")
    assert torch.allclose(p.amax(dim=1), torch.ones(2, 3))
    assert torch.allclose(heatmaps_from_logits(logits, "sigmoid"), torch.sigmoid(logits))


def test_offset_loss_is_the_vote_error_near_each_landmark_and_skips_missing_ones():
    from se3unet.train.losses import offset_loss

    points = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0], [5.0, 0, 0]]])
    landmarks = torch.tensor([[[0.5, 0, 0], [float("nan")] * 3]])
    offsets = torch.zeros(1, 3, 2, 3, requires_grad=True)
    # Points 0 and 1 lie within radius 1 of landmark 0 (0.5 away each), point 2 does not.
    assert float(offset_loss(points, offsets.detach(), landmarks, radius=1.0)) == pytest.approx(0.5)
    perfect = torch.zeros(1, 3, 2, 3)
    perfect[0, 0, 0, 0], perfect[0, 1, 0, 0] = 0.5, -0.5
    assert float(offset_loss(points, perfect, landmarks, radius=1.0)) < 1e-5
    offset_loss(points, offsets, landmarks, radius=1.0).backward()
    assert torch.isfinite(offsets.grad).all() and float(offsets.grad[0, :, 1].abs().sum()) == 0  # missing: no pull


def test_consistency_is_the_mm_distance_between_twins_read_in_their_own_frames():
    from scipy.spatial.transform import Rotation

    from se3unet.train.losses import consistency_loss

    truth_mm = torch.tensor([[0.0, 0.0, 10.0], [20.0, 0.0, 0.0], [10.0, -30.0, 0.0]])  # the third: no truth in the data
    turns = torch.from_numpy(Rotation.random(2, random_state=4).as_matrix()).float()
    shifts = torch.tensor([[0.1, 0.0, 0.0], [0.0, -0.2, 0.1]])
    centres, scale = torch.tensor([[0.0, 0.0, 0.0], [5.0, -3.0, 1.0]]), torch.tensor([100.0, 50.0])  # each twin its own

    def batch_reading(errors_mm):  # each scan in its own units and pose; read = truth + error
        units = lambda mm, b: ((mm - centres[b]) / scale[b]) @ turns[b].T + shifts[b]
        posed = torch.stack([units(truth_mm, b) for b in range(2)])
        posed[:, 2] = float("nan")
        read = torch.stack([units(truth_mm + errors_mm[b], b) for b in range(2)])
        return read.requires_grad_(), {"landmarks": posed, "rotation": turns, "scale": scale}

    errors_mm = torch.tensor([[[1.0, 0, 0], [0, 2.0, 0], [0, 0, 3.0]], [[1.0, 0, 0], [0, 0, 2.0], [0, 0, 0]]])
    read, batch = batch_reading(errors_mm)
    value = consistency_loss(read, batch)
    # landmark 1 agrees, 2 is 2.83 mm off, 3 (no truth, still compared) 3 mm
    assert value.item() == pytest.approx((0.0 + 8 ** 0.5 + 3.0) / 3, abs=1e-3)
    value.backward()
    assert torch.isfinite(read.grad).all()  # the missing truth poisons nothing
    read, batch = batch_reading(errors_mm[[0, 0]])
    assert consistency_loss(read, batch).item() == pytest.approx(0.0, abs=1e-3)


def test_consistency_toward_the_twin_moves_only_the_first_reading():
    from se3unet.train.losses import consistency_loss

    truth = torch.tensor([[[0.0, 0.0, 0.1], [0.2, 0.0, 0.0]]]).repeat(2, 1, 1)
    batch = {"landmarks": truth, "rotation": torch.eye(3).repeat(2, 1, 1), "scale": torch.tensor([100.0, 100.0])}
    read = (truth + torch.tensor([[[0.01, 0, 0], [0, 0, 0]], [[0, 0.02, 0], [0, 0, 0]]])).requires_grad_()
    both = consistency_loss(read, batch)
    toward = consistency_loss(read, batch, toward_twin=True)
    # the same distance either way: 2.24 mm at one landmark, 0 at the other
    assert toward.item() == pytest.approx(both.item()) == pytest.approx(5 ** 0.5 / 2, abs=1e-3)
    toward.backward()
    assert read.grad[0].abs().sum() > 0 and read.grad[1].abs().sum() == 0
