"""Radial networks: invariant weights of an edge from its length embedding."""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import nn


class RadialMLP(nn.Module):
    """Embedding [..., num_radial] -> one weight tensor [..., size] per requested size.

    The hidden part is separate from the output layers so a convolution can run the (wide,
    costly) output layers block by block while the cheap hidden part runs once for all edges.
    One output layer per size, rather than one wide layer split afterwards: the backward of
    a split re-concatenates its gradients, a full extra copy of the widest tensor here.
    """

    def __init__(self, num_radial: int, sizes: Sequence[int], hidden: int = 32):
        super().__init__()
        self.hidden = nn.Sequential(
            nn.Linear(num_radial, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU()
        )
        self.outputs = nn.ModuleList(nn.Linear(hidden, size) for size in sizes)

    def features(self, embedding: torch.Tensor) -> torch.Tensor:
        """The hidden layers' output with a column of ones appended ([..., hidden + 1]), the
        input ``last`` expects: the output layers' biases ride in their matrix product."""
        h = self.hidden(embedding)
        return torch.cat([h, h.new_ones(*h.shape[:-1], 1)], dim=-1)

    def last(self, features: torch.Tensor, scales: Optional[Sequence[float]] = None) -> List[torch.Tensor]:
        """The output layers; ``scales``: a factor per output, applied to the (small) weight
        matrices rather than to the (edges x size) outputs, which saves a pass over them."""
        scales = scales or [1.0] * len(self.outputs)
        # [W | b] against [h | 1]: one plain matrix product per output. addmm would first copy
        # the broadcast bias into every row of its wide output, 40% of its time on a CPU.
        return [features @ (torch.cat([layer.weight, layer.bias.unsqueeze(1)], dim=1) * scale).t()
                for layer, scale in zip(self.outputs, scales)]

    def forward(self, embedding: torch.Tensor) -> List[torch.Tensor]:
        return self.last(self.features(embedding))
