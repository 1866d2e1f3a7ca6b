"""SE3Unet: an SE(3)-equivariant point-cloud U-Net with an invariant landmark head."""

from __future__ import annotations

from typing import List, Optional, Tuple, Union

import torch
from torch import nn

from ..equivariant import EquivariantGraph, Fiber, GNormBias, GSE3Res, LinearSE3
from ..equivariant.fiber import Features
from ..geometry.hierarchy import Level, build_hierarchy
from .config import UNetConfig
from .head import AddedHead, CartesianHead, InvariantHead, OffsetHead
from .pooling import Pooling3D
from .upsampling import Upsampling3D


class SE3ConvBlock(nn.Module):
    """GSE3Res -> GNormBias -> GSE3Res -> GNormBias, on one level's graph (as in the report)."""

    def __init__(self, fiber_in: Fiber, fiber_hidden: Fiber, fiber_out: Fiber, heads: int,
                 self_interaction: str, last_self_interaction: str, radial_hidden: int,
                 recompute: bool = True, normalise: bool = False):
        super().__init__()
        self.fiber_in, self.fiber_out = fiber_in, fiber_out
        self.attention1 = GSE3Res(fiber_in, fiber_hidden, heads=heads, self_interaction=self_interaction,
                                  radial_hidden=radial_hidden, recompute=recompute)
        self.norm1 = GNormBias(fiber_hidden, normalise)
        # Attention heads need hidden channels; a narrow output (one vector) projects from them.
        self.attention2 = GSE3Res(fiber_hidden, fiber_out, fiber_hidden=fiber_hidden, heads=heads,
                                  self_interaction=last_self_interaction, radial_hidden=radial_hidden,
                                  recompute=recompute)
        self.norm2 = GNormBias(fiber_out, normalise)

    def forward(self, features: Features, graph: EquivariantGraph) -> Features:
        return self.norm2(self.attention2(self.norm1(self.attention1(features, graph)), graph))


def input_features(positions: torch.Tensor, config: UNetConfig,
                   normals: Optional[torch.Tensor] = None) -> Features:
    """Degree 0: a constant; degree 1: the position relative to the centroid ('centred',
    translation invariant) or the absolute position ('absolute', the original's choice)."""
    b, n, _ = positions.shape
    vector = positions - positions.mean(dim=1, keepdim=True) if config.inputs == "centred" else positions
    vectors = [vector]
    if config.normals:
        if normals is None:
            raise ValueError("this model was configured with normals=True: pass normals [B, N, 3]")
        vectors.append(normals)
    return {0: positions.new_ones(b, n, 1, 1), 1: torch.stack(vectors, dim=2)}


def input_fiber(config: UNetConfig) -> Fiber:
    return Fiber({0: 1, 1: 2 if config.normals else 1})


class SE3Unet(nn.Module):
    """Per-point landmark logits [B, N, K] from a batch of clouds [B, N, 3].

    Contracting path: an SE3ConvBlock per level, each followed by Pooling3D; a bottleneck
    block on the coarsest level; expanding path: Upsampling3D, joined with the contracting
    path's features of that level (sum or concatenation), then an SE3ConvBlock. All graphs,
    bases and pooling/upsampling maps come from a level hierarchy that depends on distances
    only; the head reads invariants. With the default settings the logits are therefore
    unchanged by any rotation and translation of the input.
    """

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = config
        c = config
        fibers = [Fiber.uniform(c.degrees, ch) for ch in c.channels]
        vector = Fiber({1: 1})
        outputs = [vector if c.block_output == "single_vector" else f for f in fibers]
        hidden_si, final_si = c.hidden_self_interaction, c.final_self_interaction

        def block(fiber_in, level, last_si=hidden_si):
            return SE3ConvBlock(fiber_in, fibers[level], outputs[level], c.heads, hidden_si, last_si, c.radial_hidden,
                                c.recompute, c.norm == "rms")

        self.pools = nn.ModuleList(Pooling3D(c.pool_keep, c.pooling) for _ in range(c.levels))
        self.down = nn.ModuleList()
        fiber = input_fiber(c)
        for level in range(c.levels):
            self.down.append(block(fiber, level))
            fiber = self.pools[level].output_fiber(outputs[level])
        self.bottleneck = block(fiber, c.levels, final_si if c.levels == 0 else hidden_si)

        self.upsample = Upsampling3D(c.up_neighbours, c.up_power)
        self.align = nn.ModuleList()  # sum-join: upsampled features mapped to the skip's fiber
        self.up = nn.ModuleList()
        fiber = outputs[c.levels]
        for level in reversed(range(c.levels)):
            skip = outputs[level]
            if c.join == "sum":
                self.align.append(LinearSE3(fiber, skip) if fiber != skip else nn.Identity())
                joined = skip
            else:
                self.align.append(nn.Identity())
                joined = fiber + skip
            self.up.append(block(joined, level, final_si if level == 0 else hidden_si))
            fiber = outputs[level]

        head = {"cartesian": CartesianHead, "offset": OffsetHead}.get(c.head, InvariantHead)
        if c.added_outputs:
            kept = c.num_outputs - c.added_outputs
            self.head = AddedHead(head(fiber, kept, c.head_hidden), head(fiber, c.added_outputs, c.head_hidden))
        else:
            self.head = head(fiber, c.num_outputs, c.head_hidden)

    def hierarchy(self, positions: torch.Tensor) -> List[Level]:
        c = self.config
        return build_hierarchy(positions, c.levels, c.pool_keep, c.neighbours, c.pool_neighbours,
                               c.up_neighbours, c.up_power)

    def forward(self, positions: torch.Tensor, hierarchy: Optional[List[Level]] = None,
                normals: Optional[torch.Tensor] = None, with_offsets: bool = False
                ) -> Union[torch.Tensor, Tuple[torch.Tensor, Optional[torch.Tensor]]]:
        """positions [B, N, 3] -> logits [B, N, K]. ``hierarchy`` (from ``self.hierarchy``) may
        be precomputed and cached; its level-0 positions must be ``positions``.
        ``with_offsets``: (logits, offsets [B, N, K, 3] from each point to each landmark, or
        None when the head predicts heatmaps only). An argument, not a second method, so a
        DistributedDataParallel wrapper sees the call."""
        features = self.features(positions, hierarchy, normals)
        if not with_offsets:
            return self.head(features)
        if hasattr(self.head, "forward_with_offsets"):
            return self.head.forward_with_offsets(features)
        return self.head(features), None

    def features(self, positions: torch.Tensor, hierarchy: Optional[List[Level]] = None,
                 normals: Optional[torch.Tensor] = None) -> Features:
        """The last block's per-point features, what the head reads."""
        c = self.config
        levels = hierarchy if hierarchy is not None else self.hierarchy(positions)
        if len(levels) != c.levels + 1:
            raise ValueError(f"hierarchy has {len(levels)} levels, model needs {c.levels + 1}")
        max_degree = max(c.degrees)
        graphs = [EquivariantGraph(level.positions.to(positions.dtype), level.neighbours, max_degree)
                  for level in levels]

        features = input_features(positions, c, normals)
        skips = []
        for i in range(c.levels):
            features = self.down[i](features, graphs[i])
            skips.append(features)
            features = self.pools[i](features, levels[i + 1])
        features = self.bottleneck(features, graphs[c.levels])
        for j, i in enumerate(reversed(range(c.levels))):
            features = self.align[j](self.upsample(features, levels[i + 1]))
            skip = skips[i]
            if c.join == "sum":
                features = {d: features[d] + skip[d] for d in skip}
            else:
                features = {d: torch.cat([features[d], skip[d]], dim=-2) if d in features else skip[d]
                            for d in sorted(set(features) | set(skip))}
            features = self.up[j](features, graphs[i])
        return features
