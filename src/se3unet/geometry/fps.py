"""Exact farthest point sampling, started at an invariant point.

The first point is the one nearest the cloud's centroid, and every later choice depends only
on distances, so a rotated or moved cloud yields the same indices (up to genuine ties).
That is what keeps pooling, and so the whole network, invariant; approximate samplers that
split space along the coordinate axes do not have this property.
"""

from __future__ import annotations

import torch


def invariant_start(positions: torch.Tensor) -> torch.Tensor:
    """Index [B] of each cloud's point nearest its centroid."""
    centred = positions - positions.mean(dim=1, keepdim=True)
    return centred.square().sum(-1).argmin(dim=1)


@torch.no_grad()
def farthest_point_sample(positions: torch.Tensor, count: int) -> torch.Tensor:
    """Indices [B, count] of ``count`` points per cloud, each the farthest from those before.

    Distances are accumulated in float64 so near-ties resolve the same way in any pose.
    """
    if positions.dim() != 3 or positions.shape[-1] != 3:
        raise ValueError(f"positions must be [B, N, 3], got {tuple(positions.shape)}")
    b, n, _ = positions.shape
    if not 1 <= count <= n:
        raise ValueError(f"cannot sample {count} of {n} points")
    x = positions.to(torch.float64)
    chosen = torch.empty(b, count, dtype=torch.long, device=positions.device)
    chosen[:, 0] = invariant_start(x)
    nearest = torch.full((b, n), float("inf"), dtype=torch.float64, device=positions.device)
    batch = torch.arange(b, device=positions.device)
    for i in range(1, count):
        last = x[batch, chosen[:, i - 1]].unsqueeze(1)
        nearest = torch.minimum(nearest, (x - last).square().sum(-1))
        chosen[:, i] = nearest.argmax(dim=1)
    return chosen
