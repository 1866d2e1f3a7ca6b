"""Upsampling3D: features of a coarser level -> every point of the finer level."""

from __future__ import annotations

from torch import nn

from ..equivariant.fiber import Features
from ..geometry.hierarchy import Level
from ..geometry.knn import gather_points


class Upsampling3D(nn.Module):
    """Inverse-distance weighting over each finer point's nearest coarser points (PointNet++
    feature propagation). The weights are invariant and sum to 1, so the map is equivariant
    degree by degree and reproduces a constant field exactly.

    neighbours and power describe the weights the hierarchy was built with
    (Level.up_index / Level.up_weights); the module checks that they agree.
    """

    def __init__(self, neighbours: int = 3, power: float = 2.0):
        super().__init__()
        self.neighbours, self.power = neighbours, power

    def forward(self, features: Features, coarse: Level) -> Features:
        if coarse.up_index is None:
            raise ValueError("Upsampling3D needs a level with up_index (level 1 or coarser)")
        if coarse.up_index.shape[-1] != min(self.neighbours, coarse.num_points):
            raise ValueError(
                f"hierarchy was built with {coarse.up_index.shape[-1]} upsampling neighbours, "
                f"module expects {self.neighbours}"
            )
        w = coarse.up_weights.to(next(iter(features.values())).dtype)[..., None, None]
        return {d: (gather_points(f, coarse.up_index) * w).sum(dim=2) for d, f in features.items()}

    def extra_repr(self) -> str:
        return f"neighbours={self.neighbours}, power={self.power}"
