"""Losses on per-point landmark logits [B, N, K].

- ``bce``: BCE-with-logits on binary labels with a per-landmark pos_weight (the report's).
- ``focal``: sigmoid focal loss (alpha, gamma; 0.98 and 3 in the report).
- ``awing``: Adaptive Wing on heatmaps (the original's second version), prediction sigmoid(logits).
- ``offset_loss`` (with the offset head, added to any of the above): the distance between
  point + predicted offset and the landmark, over the points within a radius of it.
- ``heatmap_ce``: for each landmark, cross-entropy between the softmax of its logits over the
  points and the target heatmap normalised to a distribution. One landmark, one peak: the
  points compete, so there is no class imbalance to weigh against and no threshold to tune;
  the project's default.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

LOSSES = ("bce", "focal", "awing", "heatmap_ce")


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")


def positive_weights(labels: torch.Tensor) -> torch.Tensor:
    """pos_weight_j = (number of points) / (positive labels of landmark j), over a training set's
    labels [..., K]: the report's weighting. A landmark with no positive gets weight 1."""
    flat = labels.reshape(-1, labels.shape[-1])
    positives = flat.sum(0)
    return torch.where(positives > 0, flat.shape[0] / positives.clamp_min(1), torch.ones_like(positives))


def bce_loss(logits: torch.Tensor, labels: torch.Tensor, pos_weight: Optional[torch.Tensor] = None,
             reduction: str = "sum") -> torch.Tensor:
    loss = F.binary_cross_entropy_with_logits(logits, labels, pos_weight=pos_weight, reduction="none")
    return _reduce(loss, reduction)


def focal_loss(logits: torch.Tensor, labels: torch.Tensor, alpha: float = 0.98, gamma: float = 3.0,
               reduction: str = "sum") -> torch.Tensor:
    """-alpha (1-p)^gamma log p on positives, -(1-alpha) p^gamma log(1-p) on negatives."""
    p = torch.sigmoid(logits)
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    loss = -alpha * (1 - p) ** gamma * labels * log_p - (1 - alpha) * p**gamma * (1 - labels) * log_not_p
    return _reduce(loss, reduction)


def adaptive_wing_loss(logits: torch.Tensor, heatmaps: torch.Tensor, omega: float = 14.0, theta: float = 0.5,
                       epsilon: float = 1.0, alpha: float = 2.1, weight: float = 11.0,
                       weight_threshold: float = 0.2, reduction: str = "sum") -> torch.Tensor:
    """Adaptive Wing (Wang et al. 2019) between sigmoid(logits) and target heatmaps; points
    where the target is >= weight_threshold count ``weight`` times."""
    y = heatmaps
    diff = (torch.sigmoid(logits) - y).abs()
    power = alpha - y
    ratio = theta / epsilon
    a = omega * (1 / (1 + ratio**power)) * power * ratio ** (power - 1) / epsilon
    c = theta * a - omega * torch.log1p(ratio**power)
    loss = torch.where(diff < theta, omega * torch.log1p((diff / epsilon) ** power), a * diff - c)
    loss = loss * torch.where(y >= weight_threshold, weight, 1.0)
    return _reduce(loss, reduction)


def heatmap_cross_entropy(logits: torch.Tensor, heatmaps: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Per scan and landmark: -sum_n q_n log softmax_n(logits), q = heatmap / sum(heatmap).
    Landmarks whose heatmap is empty (missing) are skipped."""
    mass = heatmaps.sum(dim=1, keepdim=True)  # [B, 1, K]
    target = heatmaps / mass.clamp_min(1e-12)
    loss = -(target * torch.log_softmax(logits, dim=1)).sum(dim=1)  # [B, K]
    present = mass.squeeze(1) > 1e-12
    loss = loss[present]
    return _reduce(loss, reduction) if loss.numel() else logits.sum() * 0


def offset_loss(points: torch.Tensor, offsets: torch.Tensor, landmarks: torch.Tensor, radius: float,
                reduction: str = "mean") -> torch.Tensor:
    """points [B, N, 3], offsets [B, N, K, 3], landmarks [B, K, 3] (NaN: missing) -> the
    distance |point + offset - landmark| over the (point, landmark) pairs closer than
    ``radius``: the points whose votes decoding uses. Missing landmarks are skipped."""
    present = torch.isfinite(landmarks).all(dim=-1)  # [B, K]
    target = torch.nan_to_num(landmarks).unsqueeze(1)  # [B, 1, K, 3]; NaN would poison the gradients
    near = ((points.unsqueeze(2) - target).square().sum(-1) < radius ** 2) & present.unsqueeze(1)  # [B, N, K]
    error = ((points.unsqueeze(2) + offsets - target).square().sum(-1) + 1e-12).sqrt()
    error = error[near]
    return _reduce(error, reduction) if error.numel() else offsets.sum() * 0


def consistency_loss(landmarks: torch.Tensor, batch: dict, toward_twin: bool = False) -> torch.Tensor:
    """The mean distance in mm between the landmarks read on the first half of a batch and on the
    second (the twins: the same faces, posed and surrounded otherwise), over every landmark, those
    the data leaves without a truth too (a Surrey face's jawline). Each side is read from the mean
    of the true landmarks both twins define (the same point of the face in both), turned back
    into its scan's own frame and scaled to mm. ``toward_twin``: the twins' readings are the
    target, the term moves only the first half's (no gradient through the second)."""
    truth = batch["landmarks"]
    present = torch.isfinite(truth).all(dim=-1)  # [B, K]
    first_present, second_present = present.chunk(2)
    shared = (first_present & second_present).repeat(2, 1).to(landmarks)
    anchor = torch.einsum("bk,bkc->bc", shared / shared.sum(1, keepdim=True).clamp_min(1), torch.nan_to_num(truth))
    relative = torch.einsum("bkc,bcd->bkd", landmarks - anchor.unsqueeze(1), batch["rotation"].to(landmarks))
    relative = relative * batch["scale"].to(landmarks).view(-1, 1, 1)
    first, second = relative.chunk(2)
    if toward_twin:
        second = second.detach()
    return ((first - second).square().sum(-1) + 1e-12).sqrt().mean()  # the epsilon keeps the gradient finite at 0


def compute_loss(name: str, logits: torch.Tensor, batch: dict, pos_weight: Optional[torch.Tensor] = None,
                 reduction: str = "mean", focal_alpha: float = 0.98, focal_gamma: float = 3.0) -> torch.Tensor:
    if name == "bce":
        return bce_loss(logits, batch["labels"], pos_weight, reduction)
    if name == "focal":
        return focal_loss(logits, batch["labels"], focal_alpha, focal_gamma, reduction)
    if name == "awing":
        return adaptive_wing_loss(logits, batch["heatmaps"], reduction=reduction)
    if name == "heatmap_ce":
        return heatmap_cross_entropy(logits, batch["heatmaps"], reduction)
    raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")
