"""Self-interaction: channel mixing within each degree, point by point."""

from __future__ import annotations

import torch
from torch import nn

from .fiber import Features, Fiber


class LinearSE3(nn.Module):
    """1x1 linear map per degree: out_l = W_l f_l (no bias: a bias on degree l > 0 breaks
    equivariance, and GNormBias supplies the invariant ones)."""

    def __init__(self, fiber_in: Fiber, fiber_out: Fiber):
        super().__init__()
        missing = [d for d in fiber_out.degrees if d not in fiber_in]
        if missing:
            raise ValueError(f"LinearSE3 cannot create degrees {missing} absent from {fiber_in}")
        self.fiber_in, self.fiber_out = fiber_in, fiber_out
        self.weights = nn.ParameterDict({
            str(d): nn.Parameter(torch.randn(c, fiber_in[d]) / fiber_in[d] ** 0.5) for d, c in fiber_out
        })

    def forward(self, features: Features) -> Features:
        return {d: torch.matmul(self.weights[str(d)], features[d]) for d in self.fiber_out.degrees}


class AttentiveSelfInteraction(nn.Module):
    """Channel mixing whose weights depend on the point's own features.

    Per degree l, the Gram matrix G = f_l f_l^T of the input channels is invariant; an MLP
    maps it to mixing logits [C_out, C_in], softmax over the input channels, and the output
    is their weighted sum, so it stays equivariant.
    """

    def __init__(self, fiber_in: Fiber, fiber_out: Fiber, hidden: int = 32):
        super().__init__()
        missing = [d for d in fiber_out.degrees if d not in fiber_in]
        if missing:
            raise ValueError(f"AttentiveSelfInteraction cannot create degrees {missing} absent from {fiber_in}")
        self.fiber_in, self.fiber_out = fiber_in, fiber_out
        self.mlps = nn.ModuleDict({
            str(d): nn.Sequential(
                nn.Linear(fiber_in[d] ** 2, hidden), nn.SiLU(), nn.Linear(hidden, c * fiber_in[d])
            )
            for d, c in fiber_out
        })

    def forward(self, features: Features) -> Features:
        out = {}
        for d, c_out in self.fiber_out:
            f = features[d]  # [..., C_in, m]
            c_in = f.shape[-2]
            gram = torch.matmul(f, f.transpose(-1, -2)) / f.shape[-1]
            logits = self.mlps[str(d)](gram.flatten(-2)).unflatten(-1, (c_out, c_in))
            out[d] = torch.matmul(logits.softmax(dim=-1), f)
        return out
