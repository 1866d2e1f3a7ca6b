"""The report's metrics and landmark error statistics.

Precision, recall and F1 at a threshold t count, within one scan, every (point, landmark) pair
with prediction >= t against the binary labels (micro), then average over scans (macro). IoU
per landmark compares {prediction >= t} with {target heatmap >= t}, the original's later metric.
"""

from __future__ import annotations

import warnings
from typing import Dict, Sequence

import numpy as np
import torch

THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(11))  # 0, 0.1, ..., 1
IOU_THRESHOLDS = tuple(round(0.1 + 0.05 * i, 2) for i in range(18))  # 0.1, 0.15, ..., 0.95
SUCCESS_MM = (2.0, 2.5, 5.0, 10.0)


def precision_recall_f1(predicted: torch.Tensor, labels: torch.Tensor,
                        thresholds: Sequence[float] = THRESHOLDS) -> Dict[str, np.ndarray]:
    """predicted, labels [S, N, K] -> per threshold [T]: precision, recall, f1 (macro over scans).
    A scan with no predicted positives has precision 1; with no true positives, recall 1."""
    truth = labels > 0.5
    out = {"precision": [], "recall": [], "f1": []}
    for t in thresholds:
        positive = predicted >= t
        tp = (positive & truth).sum(dim=(1, 2)).double()
        fp = (positive & ~truth).sum(dim=(1, 2)).double()
        fn = (~positive & truth).sum(dim=(1, 2)).double()
        precision = torch.where(tp + fp > 0, tp / (tp + fp).clamp_min(1), torch.ones_like(tp))
        recall = torch.where(tp + fn > 0, tp / (tp + fn).clamp_min(1), torch.ones_like(tp))
        f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp_min(1e-12),
                         torch.zeros_like(tp))
        for name, value in (("precision", precision), ("recall", recall), ("f1", f1)):
            out[name].append(float(value.mean()))
    return {k: np.array(v) for k, v in out.items()}


def iou_per_landmark(predicted: torch.Tensor, heatmaps: torch.Tensor,
                     thresholds: Sequence[float] = IOU_THRESHOLDS) -> np.ndarray:
    """[T, K]: IoU of {pred >= t} and {target >= t} per landmark, averaged over scans where the
    union is not empty (NaN if it always is)."""
    result = []
    for t in thresholds:
        a, b = predicted >= t, heatmaps >= t
        inter = (a & b).sum(dim=1).double()
        union = (a | b).sum(dim=1).double()
        iou = torch.where(union > 0, inter / union.clamp_min(1), torch.full_like(union, float("nan")))
        with warnings.catch_warnings():  # a landmark whose union is always empty is NaN, on purpose
            warnings.simplefilter("ignore", RuntimeWarning)
            result.append(np.nanmean(iou.numpy(), axis=0))
    return np.array(result)


def error_statistics(errors_mm: np.ndarray) -> Dict[str, object]:
    """errors [S, K] in mm (NaN: missing landmark) -> mean, std, median, per landmark, success
    rates and the cumulative error distribution."""
    valid = errors_mm[np.isfinite(errors_mm)]
    ced_x = np.linspace(0, 20, 81)
    return {
        "mean_mm": float(valid.mean()) if valid.size else float("nan"),
        "std_mm": float(valid.std()) if valid.size else float("nan"),
        "median_mm": float(np.median(valid)) if valid.size else float("nan"),
        "per_landmark_mm": np.nanmean(errors_mm, axis=0).tolist(),
        "per_scan_mm": np.nanmean(errors_mm, axis=1).tolist(),
        "success_rate": {f"{t:g}mm": float((valid <= t).mean()) if valid.size else float("nan") for t in SUCCESS_MM},
        "ced": {"mm": ced_x.tolist(), "fraction": [float((valid <= x).mean()) if valid.size else 0.0 for x in ced_x]},
    }


def confidence_statistics(confidence_mm: np.ndarray, errors_mm: np.ndarray, keep: float = 0.9) -> Dict[str, object]:
    """How well landmark confidences (likely errors) [scans, K] predict the errors [scans, K]:
    Spearman's rank correlation over all landmark instances and within each landmark (their
    mean), the calibration by decile of confidence (mean confidence against mean error), and
    the mean error of the ``keep`` most confident instances against all."""
    from scipy.stats import spearmanr

    confidence_mm, errors_mm = np.asarray(confidence_mm, np.float64), np.asarray(errors_mm, np.float64)
    usable = np.isfinite(confidence_mm) & np.isfinite(errors_mm)
    c, e = confidence_mm[usable], errors_mm[usable]
    within = []
    for k in range(confidence_mm.shape[1]):
        column = usable[:, k]
        if column.sum() > 2 and np.ptp(confidence_mm[column, k]) > 0:
            within.append(spearmanr(confidence_mm[column, k], errors_mm[column, k])[0])
    order = np.argsort(c)
    deciles = [{"confidence_mm": float(c[g].mean()), "error_mm": float(e[g].mean())} for g in np.array_split(order, 10)]
    kept = order[: int(round(keep * len(order)))]
    return {"spearman": float(spearmanr(c, e)[0]), "spearman_within_landmarks": float(np.mean(within)),
            "deciles": deciles, f"error_most_confident_{int(keep * 100)}_mm": float(e[kept].mean()),
            "error_all_mm": float(e.mean())}
