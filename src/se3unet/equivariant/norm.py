"""Norm-based nonlinearity."""

from __future__ import annotations

import torch
from torch import nn

from .fiber import Features, Fiber

# Added under the square root: keeps |v| and its gradient finite at v = 0.
_EPS = 1e-12


class GNormBias(nn.Module):
    """ReLU(|v| + b) v / |v| per channel and degree: scales each vector by an invariant.

    With ``normalise`` the norms are first divided by their root mean square over the channels
    of their degree and scaled by a learned gain (an RMS layer norm of the norms, as NVIDIA's
    NormSE3 normalises its norms with a layer norm): every block then hands on features of norm
    about 1, where without it the signal of a freshly initialised U-Net shrinks block by block
    (degree 0: 0.21 after the first block, 0.0075 before the head). Norms are invariant, so
    either way the layer stays equivariant. At v = 0 the output is 0 and gradients stay finite.
    """

    def __init__(self, fiber: Fiber, normalise: bool = False):
        super().__init__()
        self.fiber, self.normalise = fiber, normalise
        self.bias = nn.ParameterDict({str(d): nn.Parameter(torch.zeros(c, 1)) for d, c in fiber})
        if normalise:
            self.gain = nn.ParameterDict({str(d): nn.Parameter(torch.ones(c, 1)) for d, c in fiber})

    def forward(self, features: Features) -> Features:
        out = {}
        for d, f in features.items():
            norm = (f.square().sum(-1, keepdim=True) + _EPS).sqrt()
            scaled = norm
            if self.normalise:
                rms = (norm.square().mean(-2, keepdim=True) + _EPS).sqrt()
                scaled = norm / rms * self.gain[str(d)]
            out[d] = torch.relu(scaled + self.bias[str(d)]) * (f / norm)
        return out
