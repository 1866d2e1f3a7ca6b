"""Pooling3D: features of a finer level -> features of the kept points of the next level."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..equivariant.fiber import Features, Fiber
from ..geometry.hierarchy import Level
from ..geometry.knn import gather_points

Aggregation = Literal["mean", "sum", "max", "multi", "componentwise_max"]
AGGREGATIONS = ("mean", "sum", "max", "multi", "componentwise_max")


def mean_pool(neighbourhood: torch.Tensor) -> torch.Tensor:
    return neighbourhood.mean(dim=2)


def equivariant_max_pool(neighbourhood: torch.Tensor) -> torch.Tensor:
    """[B, M, p, C, m] -> [B, M, C, m]: per channel, the neighbour whose feature has the
    largest norm. For m = 1 this is the ordinary max of the scalars."""
    if neighbourhood.shape[-1] == 1:
        return neighbourhood.amax(dim=2)
    best = neighbourhood.square().sum(-1).argmax(dim=2, keepdim=True)  # [B, M, 1, C]
    index = best.unsqueeze(-1).expand(*best.shape, neighbourhood.shape[-1])
    return neighbourhood.gather(2, index).squeeze(2)


def componentwise_max_pool(neighbourhood: torch.Tensor) -> torch.Tensor:
    """The original code's max of each Cartesian component: NOT equivariant for m > 1
    (the max of rotated components is not the rotated max). Kept for the `original` preset."""
    return neighbourhood.amax(dim=2)


class Pooling3D(nn.Module):
    """Aggregates each kept point's neighbourhood (Level.pool_index) at every degree.

    keep: the fraction of points the pooling keeps (the hierarchy is built with it).
    aggregation: 'mean', 'sum' (the original's v2) and 'max' keep the fiber; 'multi' concatenates mean and max (twice
    the channels); 'componentwise_max' breaks equivariance and exists only to reproduce the
    original.
    """

    def __init__(self, keep: float, aggregation: Aggregation = "max"):
        super().__init__()
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"pooling aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
        if not 0.0 < keep <= 1.0:
            raise ValueError(f"pooling keeps a fraction in (0, 1], got {keep}")
        self.keep, self.aggregation = keep, aggregation

    def output_fiber(self, fiber: Fiber) -> Fiber:
        return fiber + fiber if self.aggregation == "multi" else fiber

    def forward(self, features: Features, level: Level) -> Features:
        if level.pool_index is None:
            raise ValueError("Pooling3D needs a level with pool_index (level 1 or coarser)")
        out = {}
        for d, f in features.items():
            neighbourhood = gather_points(f, level.pool_index)  # [B, M, p, C, m]
            if self.aggregation == "mean":
                out[d] = mean_pool(neighbourhood)
            elif self.aggregation == "sum":
                out[d] = neighbourhood.sum(dim=2)
            elif self.aggregation == "max":
                out[d] = equivariant_max_pool(neighbourhood)
            elif self.aggregation == "multi":
                out[d] = torch.cat([mean_pool(neighbourhood), equivariant_max_pool(neighbourhood)], dim=-2)
            else:
                out[d] = componentwise_max_pool(neighbourhood)
        return out

    def extra_repr(self) -> str:
        return f"keep={self.keep}, aggregation={self.aggregation}"
