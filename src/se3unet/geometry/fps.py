"""Exact farthest point sampling, started at an invariant point.

The first point is the one nearest the cloud's centroid, and every later choice depends only
on distances, so a rotated or moved cloud yields the same indices (up to genuine ties).
That is what keeps pooling, and so the whole network, invariant; approximate samplers that
split space along the coordinate axes do not have this property.

Two kernels of the same algorithm: on the CPU a NumPy loop with in-place updates of one
coordinate array at a time (about 35 ms for 8192 -> 2048 points, 10x the torch loop, whose
per-operation overhead dominates at this size); on other devices a batched torch loop.
Both accumulate squared distances in float64 so near-ties resolve alike in any pose.
"""

from __future__ import annotations

import numpy as np
import torch


def invariant_start(positions: torch.Tensor) -> torch.Tensor:
    """Index [B] of each cloud's point nearest its centroid."""
    centred = positions - positions.mean(dim=1, keepdim=True)
    return centred.square().sum(-1).argmin(dim=1)


def _fps_numpy(points: np.ndarray, start: int, count: int) -> np.ndarray:
    coords = [np.ascontiguousarray(points[:, i], dtype=np.float64) for i in range(3)]
    nearest = np.full(len(points), np.inf)
    total, term = np.empty(len(points)), np.empty(len(points))
    chosen = np.empty(count, dtype=np.int64)
    j = start
    for i in range(count):
        chosen[i] = j
        np.subtract(coords[0], coords[0][j], out=total)
        np.multiply(total, total, out=total)
        for c in coords[1:]:
            np.subtract(c, c[j], out=term)
            np.multiply(term, term, out=term)
            np.add(total, term, out=total)
        np.minimum(nearest, total, out=nearest)
        j = int(nearest.argmax())
    return chosen


def _fps_torch(x: torch.Tensor, start: torch.Tensor, count: int) -> torch.Tensor:
    b, n, _ = x.shape
    chosen = torch.empty(b, count, dtype=torch.long, device=x.device)
    chosen[:, 0] = start
    nearest = torch.full((b, n), float("inf"), dtype=torch.float64, device=x.device)
    batch = torch.arange(b, device=x.device)
    for i in range(1, count):
        last = x[batch, chosen[:, i - 1]].unsqueeze(1)
        nearest = torch.minimum(nearest, (x - last).square().sum(-1))
        chosen[:, i] = nearest.argmax(dim=1)
    return chosen


@torch.no_grad()
def farthest_point_sample(positions: torch.Tensor, count: int) -> torch.Tensor:
    """Indices [B, count] of ``count`` points per cloud, each the farthest from those before."""
    if positions.dim() != 3 or positions.shape[-1] != 3:
        raise ValueError(f"positions must be [B, N, 3], got {tuple(positions.shape)}")
    b, n, _ = positions.shape
    if not 1 <= count <= n:
        raise ValueError(f"cannot sample {count} of {n} points")
    x = positions.to(torch.float64)
    start = invariant_start(x)
    if positions.device.type != "cpu":
        return _fps_torch(x, start, count)
    clouds = x.numpy()
    return torch.from_numpy(np.stack([_fps_numpy(clouds[i], int(start[i]), count) for i in range(b)]))
