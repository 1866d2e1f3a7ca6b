"""Metrics and landmark extraction against hand-computed values."""

import numpy as np
import pytest
import torch

from se3unet.equivariant.rotation import random_rotation
from se3unet.inference import landmark_errors_mm, landmarks_from_heatmaps
from se3unet.evaluate.metrics import error_statistics, iou_per_landmark, precision_recall_f1


def test_landmark_is_the_weighted_mean_above_half_the_peak_and_moves_with_the_cloud():
    points = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0], [0.0, 2, 0], [5.0, 5, 5]]])
    heat = torch.tensor([[[1.0], [0.5], [0.25], [0.49]]])  # only the first two count
    expected = (1.0 * points[0, 0] + 0.5 * points[0, 1]) / 1.5
    assert torch.allclose(landmarks_from_heatmaps(points, heat)[0, 0], expected)
    r, t = random_rotation(torch.float32), torch.randn(3)
    moved = landmarks_from_heatmaps(points @ r.T + t, heat)
    assert torch.allclose(moved[0, 0], expected @ r.T + t, atol=1e-5)


def test_errors_in_mm_use_the_scale():
    p, q = torch.zeros(2, 1, 3), torch.tensor([[[0.0, 0.03, 0.04]], [[0.1, 0, 0]]])
    assert torch.allclose(landmark_errors_mm(p, q, torch.tensor([100.0, 20.0])), torch.tensor([[5.0], [2.0]]))


def test_precision_recall_f1_micro_per_scan_then_macro():
    labels = torch.tensor([[[1.0, 0], [1, 0], [0, 0]], [[0.0, 1], [0, 0], [0, 0]]])  # [2 scans, 3 points, 2 lm]
    pred = torch.tensor([[[0.9, 0.6], [0.2, 0], [0, 0]], [[0.0, 0.7], [0, 0.8], [0, 0]]])
    r = precision_recall_f1(pred, labels, [0.5])
    # scan 0: TP 1, FP 1, FN 1 -> P 0.5, R 0.5, F1 0.5; scan 1: TP 1, FP 1, FN 0 -> P 0.5, R 1, F1 2/3
    assert r["precision"][0] == pytest.approx(0.5)
    assert r["recall"][0] == pytest.approx(0.75)
    assert r["f1"][0] == pytest.approx((0.5 + 2 / 3) / 2)
    none = precision_recall_f1(pred, labels, [1.0])  # nothing predicted: precision 1, recall 0
    assert none["precision"][0] == 1.0 and none["recall"][0] == 0.0 and none["f1"][0] == 0.0


def test_iou_per_landmark():
    pred = torch.tensor([[[0.9, 0.0], [0.3, 0.0], [0.5, 0.0]]])
    heat = torch.tensor([[[0.8, 0.0], [0.6, 0.0], [0.1, 0.0]]])
    iou = iou_per_landmark(pred, heat, [0.4])
    assert iou[0, 0] == pytest.approx(1 / 3)  # pred {0, 2}, target {0, 1}
    assert np.isnan(iou[0, 1])  # empty union


def test_error_statistics_success_rates_and_ced():
    errors = np.array([[1.0, 2.0, 3.0, np.nan], [6.0, 11.0, 2.5, 4.0]])
    s = error_statistics(errors)
    assert s["mean_mm"] == pytest.approx(np.mean([1, 2, 3, 6, 11, 2.5, 4]))
    assert s["success_rate"]["2.5mm"] == pytest.approx(3 / 7)
    assert s["success_rate"]["10mm"] == pytest.approx(6 / 7)
    assert s["per_landmark_mm"][3] == 4.0
    fractions = s["ced"]["fraction"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
