"""Landmark coordinates from per-point heatmaps.

A landmark is the heatmap-weighted mean of the points whose value is at least ``fraction`` of
that landmark's maximum. Weights depend on heatmap values only, so the coordinates move with
the cloud (equivariant), and the mean of several points is finer than the point spacing.
"""

from __future__ import annotations

import torch


def landmarks_from_heatmaps(points: torch.Tensor, heatmaps: torch.Tensor, fraction: float = 0.5) -> torch.Tensor:
    """points [B, N, 3], heatmaps [B, N, K] -> landmarks [B, K, 3]."""
    peak = heatmaps.amax(dim=1, keepdim=True)
    weights = torch.where(heatmaps >= fraction * peak, heatmaps, torch.zeros_like(heatmaps))
    weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)
    return torch.einsum("bnk,bnc->bkc", weights, points)


def landmark_errors_mm(predicted: torch.Tensor, target: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Euclidean errors [B, K] in mm (scale: mm per unit, [B])."""
    return (predicted - target).norm(dim=-1) * scale.view(-1, 1).to(predicted)
