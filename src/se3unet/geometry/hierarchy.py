"""The level hierarchy of a point cloud: what pooling, convolution and upsampling need.

Level 0 is the input cloud; level i+1 keeps a fraction of level i's points by farthest point
sampling. Computed once per cloud without gradients (the data pipeline can cache it); every
index is relative to the level it refers to, and everything is chosen from distances only,
so the hierarchy of a rotated cloud is the same hierarchy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Dict, List, Optional, Sequence

import torch

from .fps import farthest_point_sample
from .knn import check_enough_points, gather_points, knn_graph, knn_query


@dataclass
class Level:
    """One level. For level 0 the pooling and upsampling fields are None.

    positions:  [B, N_i, 3]
    neighbours: [B, N_i, k_i]   kNN graph within the level (self excluded)
    kept:       [B, N_i]        indices of these points among level i-1's points
    pool_index: [B, N_i, p]     each point's pooling neighbourhood among level i-1's points
    up_index:   [B, N_{i-1}, u] each level i-1 point's nearest points of this level
    up_weights: [B, N_{i-1}, u] their inverse-distance weights 1/d^power, summing to 1
    """

    positions: torch.Tensor
    neighbours: torch.Tensor
    kept: Optional[torch.Tensor] = None
    pool_index: Optional[torch.Tensor] = None
    up_index: Optional[torch.Tensor] = None
    up_weights: Optional[torch.Tensor] = None

    @property
    def num_points(self) -> int:
        return self.positions.shape[1]

    def to(self, *args, **kwargs) -> "Level":
        """Moves tensors; index tensors keep their integer dtype."""
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                moved[f.name] = None
            elif value.is_floating_point():
                moved[f.name] = value.to(*args, **kwargs)
            else:
                device = kwargs.get("device", next((a for a in args if isinstance(a, (str, torch.device))), None))
                moved[f.name] = value.to(device) if device is not None else value
        return Level(**moved)

    def state(self) -> Dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def level_sizes(num_points: int, levels: int, keep: float) -> List[int]:
    """Points per level: N, then ceil(keep * previous) at each pooling."""
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"pooling keeps a fraction in (0, 1], got {keep}")
    sizes = [num_points]
    for _ in range(levels):
        sizes.append(max(1, math.ceil(keep * sizes[-1])))
    return sizes


def inverse_distance_weights(queries: torch.Tensor, points: torch.Tensor, index: torch.Tensor,
                             power: float) -> torch.Tensor:
    """Normalised 1/d^power weights of each query's indexed points; a coincident point gets
    (almost) all the weight instead of an infinity."""
    d = (gather_points(points, index) - queries.unsqueeze(2)).norm(dim=-1)
    w = d.clamp_min(1e-8).pow(-power)
    return w / w.sum(dim=-1, keepdim=True)


@torch.no_grad()
def build_hierarchy(positions: torch.Tensor, levels: int, keep: float, neighbours: Sequence[int] | int,
                    pool_neighbours: int = 16, up_neighbours: int = 3, up_power: float = 2.0) -> List[Level]:
    """Levels 0..levels of a batch of clouds [B, N, 3].

    keep: fraction of points kept by each pooling; neighbours: k per level (one int for all).
    """
    ks = [neighbours] * (levels + 1) if isinstance(neighbours, int) else list(neighbours)
    if len(ks) != levels + 1:
        raise ValueError(f"need {levels + 1} neighbour counts (one per level), got {len(ks)}")
    sizes = level_sizes(positions.shape[1], levels, keep)
    for i, (size, k) in enumerate(zip(sizes, ks)):
        check_enough_points(size, k, what=f"level {i} ({positions.shape[1]} input points, keep {keep})")

    result = [Level(positions, knn_graph(positions, ks[0]))]
    for i in range(1, levels + 1):
        finer = result[-1].positions
        kept = farthest_point_sample(finer, sizes[i])
        coarse = gather_points(finer, kept)
        pool_index = knn_query(coarse, finer, min(pool_neighbours, finer.shape[1]))
        up_index = knn_query(finer, coarse, min(up_neighbours, sizes[i]))
        result.append(Level(
            positions=coarse, neighbours=knn_graph(coarse, ks[i]), kept=kept, pool_index=pool_index,
            up_index=up_index, up_weights=inverse_distance_weights(finer, coarse, up_index, up_power),
        ))
    return result


def repose(levels: List[Level], positions: torch.Tensor) -> List[Level]:
    """The same hierarchy for the same cloud in another pose: indices and weights are
    invariant, so only each level's positions are gathered anew from ``positions``."""
    result = [Level(positions, levels[0].neighbours)]
    for level in levels[1:]:
        result.append(Level(gather_points(result[-1].positions, level.kept), level.neighbours, level.kept,
                            level.pool_index, level.up_index, level.up_weights))
    return result


def stack_levels(hierarchies: List[List[Level]]) -> List[Level]:
    """Batches per-cloud hierarchies (each with batch size 1) along the batch axis."""
    stacked = []
    for parts in zip(*hierarchies):
        names = parts[0].state().keys()
        stacked.append(Level(**{name: torch.cat([p.state()[name] for p in parts]) for name in names}))
    return stacked
