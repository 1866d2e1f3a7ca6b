"""Radial networks: invariant weights of an edge from its length embedding."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class RadialMLP(nn.Module):
    """Embedding [..., num_radial] -> hidden features; one linear output layer per requested size.

    The output layers are never applied to the edges one by one: a convolution reads them as
    matrices (ConvSE3.radial_weights) and contracts them with the hidden features in whichever
    order does less work (equivariant/contraction.py). One output layer per size keeps each
    output degree's weights a separate parameter.
    """

    def __init__(self, num_radial: int, sizes: Sequence[int], hidden: int = 32):
        super().__init__()
        self.hidden = nn.Sequential(
            nn.Linear(num_radial, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU()
        )
        self.outputs = nn.ModuleList(nn.Linear(hidden, size) for size in sizes)

    def features(self, embedding: torch.Tensor) -> torch.Tensor:
        """The hidden layers' output with a column of ones appended ([..., hidden + 1]): the
        output layers' biases ride in their matrix product."""
        h = self.hidden(embedding)
        return torch.cat([h, h.new_ones(*h.shape[:-1], 1)], dim=-1)
