"""Norm-based nonlinearity."""

from __future__ import annotations

import torch
from torch import nn

from .fiber import Features, Fiber

# Added under the square root: keeps |v| and its gradient finite at v = 0.
_EPS = 1e-12


class GNormBias(nn.Module):
    """ReLU(|v| + b) v / |v| per channel and degree: scales each vector by an invariant.

    At v = 0 the output is 0 and gradients stay finite (the norm carries an epsilon).
    """

    def __init__(self, fiber: Fiber):
        super().__init__()
        self.fiber = fiber
        self.bias = nn.ParameterDict({str(d): nn.Parameter(torch.zeros(c, 1)) for d, c in fiber})

    def forward(self, features: Features) -> Features:
        out = {}
        for d, f in features.items():
            norm = (f.square().sum(-1, keepdim=True) + _EPS).sqrt()
            out[d] = torch.relu(norm + self.bias[str(d)]) * (f / norm)
        return out
