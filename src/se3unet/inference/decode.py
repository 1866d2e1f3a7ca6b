"""From per-point logits to heatmaps, and from heatmaps to landmark coordinates.

How logits become heatmaps depends on the loss the model was trained with (a sigmoid per point
for the per-point losses, a softmax over the points for heatmap cross-entropy); it is decided
at training time and stored in the checkpoint as a ``Decoding``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Literal, Optional, Tuple

import torch

from ..choices import check_choices


@dataclass(frozen=True)
class Decoding:
    # sigmoid: per point (bce, focal, awing); softmax: over the points, scaled to peak 1 (heatmap_ce)
    heatmap: Literal["sigmoid", "softmax"] = "sigmoid"
    # weighted_mean: a landmark is the heatmap-weighted mean of the points at least ``fraction``
    # of its peak; offset_vote: the same weights over (point + its predicted offset)
    landmarks: Literal["weighted_mean", "offset_vote"] = "weighted_mean"
    fraction: float = 0.5

    def __post_init__(self):
        check_choices(self, "decoding")
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"decoding.fraction must be in (0, 1], got {self.fraction}")

    @classmethod
    def for_training(cls, loss_name: str, head: str = "invariant") -> "Decoding":
        """How a model trained with this loss and head is read."""
        return cls(heatmap="softmax" if loss_name == "heatmap_ce" else "sigmoid",
                   landmarks="offset_vote" if head == "offset" else "weighted_mean")

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


def heatmaps_from_logits(logits: torch.Tensor, heatmap: str = "sigmoid") -> torch.Tensor:
    """Per-point heatmap values in [0, 1] from logits [B, N, K]."""
    if heatmap == "softmax":
        p = torch.softmax(logits, dim=1)
        return p / p.amax(dim=1, keepdim=True).clamp_min(1e-12)
    if heatmap == "sigmoid":
        return torch.sigmoid(logits)
    raise ValueError(f"heatmap must be 'sigmoid' or 'softmax', got {heatmap!r}")


def peak_weights(heatmaps: torch.Tensor, fraction: float = 0.5) -> torch.Tensor:
    """[B, N, K] weights summing to 1 over the points: the heatmap values of the points at
    least ``fraction`` of each landmark's peak, 0 elsewhere. They depend on heatmap values only."""
    peak = heatmaps.amax(dim=1, keepdim=True)
    weights = torch.where(heatmaps >= fraction * peak, heatmaps, torch.zeros_like(heatmaps))
    return weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)


def landmarks_from_heatmaps(points: torch.Tensor, heatmaps: torch.Tensor, fraction: float = 0.5) -> torch.Tensor:
    """points [B, N, 3], heatmaps [B, N, K] -> landmarks [B, K, 3]: the heatmap-weighted mean of
    the points near each peak (``peak_weights``). The landmarks move with the cloud, and the
    mean of several points is finer than the point spacing, but not finer than the heatmap:
    perfect Gaussian heatmaps give 1.1 mm at 2048 points."""
    return torch.einsum("bnk,bnc->bkc", peak_weights(heatmaps, fraction), points)


def landmarks_from_votes(points: torch.Tensor, heatmaps: torch.Tensor, offsets: torch.Tensor,
                         fraction: float = 0.5) -> torch.Tensor:
    """The offset vote: each point near a landmark's peak votes for point + its offset to that
    landmark, weighted as in ``landmarks_from_heatmaps``. offsets [B, N, K, 3] turn with the
    cloud, so the landmarks move exactly with it."""
    votes = points.unsqueeze(2) + offsets  # [B, N, K, 3]
    return torch.einsum("bnk,bnkc->bkc", peak_weights(heatmaps, fraction), votes)


def landmark_spreads(points: torch.Tensor, heatmaps: torch.Tensor, landmarks: torch.Tensor,
                     offsets: Optional[torch.Tensor] = None, fraction: float = 0.5) -> torch.Tensor:
    """[B, K]: how far the votes behind each landmark lie from it (the weighted RMS distance, in
    the cloud's units). Small where the points near a landmark's peak agree; the raw signal of
    a landmark's confidence (se3unet.inference.confidence). Without offsets the votes are the
    points themselves (the heatmap's own width)."""
    votes = points.unsqueeze(2) if offsets is None else points.unsqueeze(2) + offsets  # [B, N, 1|K, 3]
    squared = ((votes - landmarks.unsqueeze(1)) ** 2).sum(-1)  # [B, N, K]
    return (peak_weights(heatmaps, fraction) * squared).sum(1).sqrt()


def landmark_uncertainty(points: torch.Tensor, heatmaps: torch.Tensor, landmarks: torch.Tensor,
                         offsets: Optional[torch.Tensor] = None, fraction: float = 0.5) -> torch.Tensor:
    """[B, K]: a landmark's raw uncertainty (the cloud's units), the signal its confidence is
    calibrated from (se3unet.inference.confidence): the root of the summed squares of two
    disagreements the model shows without the truth, the spread of the votes over the whole
    heatmap (every point, weighted by its heatmap value) and the distance between the vote and
    the heatmap's own weighted mean near its peak (two readings of where the landmark is).
    With the shipped model on ICT faces and heads in random poses, its rank correlation with the
    error within each landmark was 0.28-0.40, the spread near the peak alone 0.17-0.31."""
    spread = landmark_spreads(points, heatmaps, landmarks, offsets, fraction=0.0)
    if offsets is None:
        return spread
    apart = (landmarks_from_heatmaps(points, heatmaps, fraction) - landmarks).norm(dim=-1)
    return (spread.square() + apart.square()).sqrt()


def vote_spread(points: torch.Tensor, heatmaps: torch.Tensor, landmarks: torch.Tensor,
                offsets: Optional[torch.Tensor] = None, fraction: float = 0.5) -> torch.Tensor:
    """[B]: ``landmark_spreads`` averaged over the landmarks. Small when the points near every
    peak agree, as they do on a face; large where the model finds no face (measured with the
    shipped model: 1.3-2.5 mm on face crops, 5-14 mm on crops of neck or skull)."""
    return landmark_spreads(points, heatmaps, landmarks, offsets, fraction).mean(1)


def decode(logits: torch.Tensor, points: torch.Tensor, decoding: Decoding = Decoding(),
           offsets: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """logits [B, N, K] and the points they belong to [B, N, 3] (and, for the offset vote, the
    offsets [B, N, K, 3]) -> (heatmaps [B, N, K], landmarks [B, K, 3])."""
    heatmaps = heatmaps_from_logits(logits, decoding.heatmap)
    if decoding.landmarks == "offset_vote":
        if offsets is None:
            raise ValueError("this decoding votes with offsets: pass the model's offsets (with_offsets=True)")
        return heatmaps, landmarks_from_votes(points, heatmaps, offsets, decoding.fraction)
    return heatmaps, landmarks_from_heatmaps(points, heatmaps, decoding.fraction)


def landmark_errors_mm(predicted: torch.Tensor, target: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Euclidean errors [B, K] in mm (scale: mm per unit, [B])."""
    return (predicted - target).norm(dim=-1) * scale.view(-1, 1).to(predicted)
