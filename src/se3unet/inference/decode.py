"""From per-point logits to heatmaps, and from heatmaps to landmark coordinates.

How logits become heatmaps depends on the loss the model was trained with (a sigmoid per point
for the per-point losses, a softmax over the points for heatmap cross-entropy); it is decided
at training time and stored in the checkpoint as a ``Decoding``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Tuple

import torch

HEATMAP_FUNCTIONS = ("sigmoid", "softmax")


@dataclass(frozen=True)
class Decoding:
    # sigmoid: per point (bce, focal, awing); softmax: over the points, scaled to peak 1 (heatmap_ce)
    heatmap: str = "sigmoid"
    # a landmark is the heatmap-weighted mean of the points at least this fraction of its peak
    fraction: float = 0.5

    def __post_init__(self):
        if self.heatmap not in HEATMAP_FUNCTIONS:
            raise ValueError(f"decoding.heatmap must be one of {HEATMAP_FUNCTIONS}, got {self.heatmap!r}")
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"decoding.fraction must be in (0, 1], got {self.fraction}")

    @classmethod
    def for_loss(cls, loss_name: str) -> "Decoding":
        return cls(heatmap="softmax" if loss_name == "heatmap_ce" else "sigmoid")

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


def heatmaps_from_logits(logits: torch.Tensor, heatmap: str = "sigmoid") -> torch.Tensor:
    """Per-point heatmap values in [0, 1] from logits [B, N, K]."""
    if heatmap == "softmax":
        p = torch.softmax(logits, dim=1)
        return p / p.amax(dim=1, keepdim=True).clamp_min(1e-12)
    if heatmap == "sigmoid":
        return torch.sigmoid(logits)
    raise ValueError(f"heatmap must be one of {HEATMAP_FUNCTIONS}, got {heatmap!r}")


def landmarks_from_heatmaps(points: torch.Tensor, heatmaps: torch.Tensor, fraction: float = 0.5) -> torch.Tensor:
    """points [B, N, 3], heatmaps [B, N, K] -> landmarks [B, K, 3]: the heatmap-weighted mean of
    the points whose value is at least ``fraction`` of the landmark's peak. Weights depend on
    heatmap values only, so the landmarks move with the cloud, and the mean of several points is
    finer than the point spacing."""
    peak = heatmaps.amax(dim=1, keepdim=True)
    weights = torch.where(heatmaps >= fraction * peak, heatmaps, torch.zeros_like(heatmaps))
    weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)
    return torch.einsum("bnk,bnc->bkc", weights, points)


def decode(logits: torch.Tensor, points: torch.Tensor, decoding: Decoding = Decoding()) -> Tuple[torch.Tensor, torch.Tensor]:
    """logits [B, N, K] and the points they belong to [B, N, 3] -> (heatmaps [B, N, K], landmarks [B, K, 3])."""
    heatmaps = heatmaps_from_logits(logits, decoding.heatmap)
    return heatmaps, landmarks_from_heatmaps(points, heatmaps, decoding.fraction)


def landmark_errors_mm(predicted: torch.Tensor, target: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Euclidean errors [B, K] in mm (scale: mm per unit, [B])."""
    return (predicted - target).norm(dim=-1) * scale.view(-1, 1).to(predicted)
