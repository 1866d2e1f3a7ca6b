"""EdgeConvUnet: the non-equivariant baseline, what most practitioners would try first.

A DGCNN-style U-Net (EdgeConv: each point's feature is the max over its kNN edges of an MLP of
[h_i, h_j - h_i, x_j - x_i]) on the same level hierarchy, pooling, upsampling and kind of head
as SE3Unet, so that the comparison isolates equivariance. Its inputs are the centred
Cartesian coordinates and normals as plain numbers: it is translation invariant (centred
inputs, relative edge vectors) but learns rotations only from what it is shown.
``config.channels`` are scalar channels per level; degrees, heads, norms and self-interaction
settings do not apply.
"""

from __future__ import annotations

from typing import List, Optional, Tuple, Union

import torch
from torch import nn

from ..geometry.hierarchy import Level, build_hierarchy
from ..geometry.knn import gather_points
from .config import UNetConfig
from .pooling import Pooling3D
from .upsampling import Upsampling3D


def mlp(sizes: List[int]) -> nn.Sequential:
    layers: List[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.LayerNorm(b), nn.GELU()]
    return nn.Sequential(*layers)


class EdgeConv(nn.Module):
    """h_i' = max_j MLP([h_i, h_j - h_i, x_j - x_i]) over the level's kNN graph, plus a linear
    skip of h_i (residual)."""

    def __init__(self, channels_in: int, channels_out: int):
        super().__init__()
        self.edge = mlp([2 * channels_in + 3, channels_out, channels_out])
        self.skip = nn.Linear(channels_in, channels_out)

    def forward(self, h: torch.Tensor, level: Level) -> torch.Tensor:  # h [B, N, C]
        neighbours = gather_points(h, level.neighbours)  # [B, N, k, C]
        offsets = gather_points(level.positions.to(h.dtype), level.neighbours) - level.positions.to(h.dtype).unsqueeze(2)
        centre = h.unsqueeze(2).expand_as(neighbours)
        edges = self.edge(torch.cat([centre, neighbours - centre, offsets], dim=-1))
        return edges.amax(dim=2) + self.skip(h)


class EdgeConvUnet(nn.Module):
    """Per-point landmark logits [B, N, K] (and, with the offset head, Cartesian offsets
    [B, N, K, 3]) from clouds [B, N, 3]; the interface of SE3Unet."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        if config.head not in ("invariant", "offset"):
            raise ValueError(f"EdgeConvUnet has the heatmap ('invariant') or the offset head, not {config.head!r}")
        if config.pooling == "componentwise_max":
            raise ValueError("EdgeConvUnet pools scalars: use mean, sum, max or multi")
        self.config = c = config
        width = list(c.channels)
        self.pools = nn.ModuleList(Pooling3D(c.pool_keep, c.pooling) for _ in range(c.levels))
        factor = 2 if c.pooling == "multi" else 1
        self.down = nn.ModuleList()
        channels = 6 if c.normals else 3
        for level in range(c.levels):
            self.down.append(EdgeConv(channels, width[level]))
            channels = factor * width[level]
        self.bottleneck = EdgeConv(channels, width[c.levels])
        self.upsample = Upsampling3D(c.up_neighbours, c.up_power)
        self.up = nn.ModuleList()
        channels = width[c.levels]
        for level in reversed(range(c.levels)):
            self.up.append(EdgeConv(channels + width[level], width[level]))  # concatenated skip
            channels = width[level]
        self.outputs = 4 if c.head == "offset" else 1
        self.head = nn.Sequential(mlp([channels, c.head_hidden]), nn.Linear(c.head_hidden, c.num_outputs * self.outputs))

    def hierarchy(self, positions: torch.Tensor) -> List[Level]:
        c = self.config
        return build_hierarchy(positions, c.levels, c.pool_keep, c.neighbours, c.pool_neighbours, c.up_neighbours,
                               c.up_power)

    def forward(self, positions: torch.Tensor, hierarchy: Optional[List[Level]] = None,
                normals: Optional[torch.Tensor] = None, with_offsets: bool = False
                ) -> Union[torch.Tensor, Tuple[torch.Tensor, Optional[torch.Tensor]]]:
        c = self.config
        levels = hierarchy if hierarchy is not None else self.hierarchy(positions)
        if len(levels) != c.levels + 1:
            raise ValueError(f"hierarchy has {len(levels)} levels, model needs {c.levels + 1}")
        if c.normals and normals is None:
            raise ValueError("this model reads normals: pass normals=[B, N, 3]")
        h = positions - positions.mean(dim=1, keepdim=True)
        if c.normals:
            h = torch.cat([h, normals.to(h.dtype)], dim=-1)
        skips = []
        for i in range(c.levels):
            h = self.down[i](h, levels[i])
            skips.append(h)
            h = self.pools[i]({0: h.unsqueeze(-1)}, levels[i + 1])[0].squeeze(-1)
        h = self.bottleneck(h, levels[c.levels])
        for j, i in enumerate(reversed(range(c.levels))):
            h = self.upsample({0: h.unsqueeze(-1)}, levels[i + 1])[0].squeeze(-1)
            h = self.up[j](torch.cat([h, skips[i]], dim=-1), levels[i])
        out = self.head(h).view(*h.shape[:2], c.num_outputs, self.outputs)  # [B, N, K, 1 | 4]
        logits = out[..., 0]
        if not with_offsets:
            return logits
        return logits, (out[..., 1:] if self.outputs == 4 else None)
