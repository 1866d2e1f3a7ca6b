"""Heads: per-point features -> K landmark logits."""

from __future__ import annotations

import torch
from torch import nn

from ..equivariant.fiber import Features, Fiber

_EPS = 1e-12


def invariants(features: Features) -> torch.Tensor:
    """[B, N, D]: the degree-0 channels and the norm of every channel of degree > 0."""
    parts = []
    for d in sorted(features):
        f = features[d]
        parts.append(f.squeeze(-1) if d == 0 else (f.square().sum(-1) + _EPS).sqrt())
    return torch.cat(parts, dim=-1)


class InvariantHead(nn.Module):
    """MLP on invariants only, so the logits cannot change when the cloud turns."""

    def __init__(self, fiber: Fiber, num_outputs: int, hidden: int = 64):
        super().__init__()
        width = sum(c for _, c in fiber)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.SiLU(), nn.Linear(hidden, num_outputs))

    def forward(self, features: Features) -> torch.Tensor:
        return self.mlp(invariants(features))


class CartesianHead(nn.Module):
    """The original code's head: an MLP on the raw components of every feature, degree-1
    Cartesian coordinates included. NOT invariant; kept for the `original` preset."""

    def __init__(self, fiber: Fiber, num_outputs: int, hidden: int = 64):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(fiber.dimension, hidden), nn.SiLU(), nn.Linear(hidden, num_outputs))

    def forward(self, features: Features) -> torch.Tensor:
        return self.mlp(torch.cat([features[d].flatten(-2) for d in sorted(features)], dim=-1))
