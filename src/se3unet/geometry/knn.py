"""k-nearest-neighbour graphs as dense index tensors.

Every point gets exactly k neighbours (itself excluded), so the graph is a plain
[B, N, k] tensor: layers gather with it and reduce over the last axis, no scatter needed.
Distances are computed from coordinate differences (not the |a|^2 - 2ab + |b|^2 trick),
so a rotated cloud gets the same neighbours up to genuine ties.
"""

from __future__ import annotations

import torch

# Queries per block: bounds the [B, block, M] distance matrix for large clouds.
_QUERY_BLOCK = 2048


def check_enough_points(num_points: int, k: int, what: str = "cloud") -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if num_points < k + 1:
        raise ValueError(
            f"{what} has {num_points} points but k = {k} neighbours need at least {k + 1}; "
            f"use a smaller k or a larger cloud"
        )


def _squared_distances(queries: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    return torch.cdist(queries, points, compute_mode="donot_use_mm_for_euclid_dist").square()


@torch.no_grad()
def knn_graph(positions: torch.Tensor, k: int) -> torch.Tensor:
    """Indices [B, N, k] of each point's k nearest other points, nearest first."""
    if positions.dim() != 3 or positions.shape[-1] != 3:
        raise ValueError(f"positions must be [B, N, 3], got {tuple(positions.shape)}")
    _, n, _ = positions.shape
    check_enough_points(n, k)
    blocks = []
    for start in range(0, n, _QUERY_BLOCK):
        stop = min(start + _QUERY_BLOCK, n)
        d2 = _squared_distances(positions[:, start:stop], positions)
        own = torch.arange(start, stop, device=positions.device)
        d2[:, own - start, own] = float("inf")
        blocks.append(d2.topk(k, dim=-1, largest=False, sorted=True).indices)
    return torch.cat(blocks, dim=1)


@torch.no_grad()
def knn_query(queries: torch.Tensor, points: torch.Tensor, k: int) -> torch.Tensor:
    """Indices [B, M, k] of the k points of ``points`` nearest each query (self not excluded)."""
    if points.shape[1] < k:
        raise ValueError(f"cannot take {k} neighbours among {points.shape[1]} points")
    blocks = []
    for start in range(0, queries.shape[1], _QUERY_BLOCK):
        d2 = _squared_distances(queries[:, start:start + _QUERY_BLOCK], points)
        blocks.append(d2.topk(k, dim=-1, largest=False, sorted=True).indices)
    return torch.cat(blocks, dim=1)


def gather_points(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values [B, N, *F] gathered by index [B, *I] (indices into N) -> [B, *I, *F].

    index_select, not values[batch, index]: the latter's backward (index_put_ with
    accumulation) adds in a thread-dependent order on CPU, so gradients differ run to run."""
    b, n = values.shape[:2]
    offsets = torch.arange(b, device=values.device).view(b, *([1] * (index.dim() - 1))) * n
    flat = values.reshape(b * n, *values.shape[2:]).index_select(0, (index + offsets).reshape(-1))
    return flat.view(*index.shape, *values.shape[2:])
