"""Heads: per-point features -> K landmark logits (and, for the offset head, K offsets)."""

from __future__ import annotations

from typing import Tuple

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


class OffsetHead(nn.Module):
    """Logits and, per point and landmark, the vector from the point to the landmark.

    The logits are the invariant head's. An offset is a combination of the point's degree-1
    channels with weights an MLP reads off the invariants: o_k = sum_c a_kc(|f|) f_c. The
    weights do not turn with the cloud and the channels turn as vectors, so the offsets rotate
    exactly with the scan (a degree-1 output, not Cartesian components of an MLP) and ignore
    translations. The weights start small, so training starts from offsets near zero.
    """

    def __init__(self, fiber: Fiber, num_outputs: int, hidden: int = 64):
        super().__init__()
        if 1 not in fiber:
            raise ValueError(f"the offset head needs degree-1 features, got {fiber}")
        self.logits = InvariantHead(fiber, num_outputs, hidden)
        self.vectors, self.outputs = fiber[1], num_outputs
        width = sum(c for _, c in fiber)
        self.weights = nn.Sequential(nn.Linear(width, hidden), nn.SiLU(), nn.Linear(hidden, num_outputs * fiber[1]))
        with torch.no_grad():
            self.weights[-1].weight.mul_(0.1)
            self.weights[-1].bias.zero_()

    def forward_with_offsets(self, features: Features) -> Tuple[torch.Tensor, torch.Tensor]:
        """-> logits [B, N, K], offsets [B, N, K, 3]."""
        invariant = invariants(features)
        a = self.weights(invariant).unflatten(-1, (self.outputs, self.vectors))  # [B, N, K, C1]
        return self.logits.mlp(invariant), torch.matmul(a, features[1])  # [B, N, K, C1] @ [B, N, C1, 3]

    def forward(self, features: Features) -> torch.Tensor:
        return self.forward_with_offsets(features)[0]


class AddedHead(nn.Module):
    """The outputs of a fine-tuned model that kept its landmarks and added others: ``kept``, the
    original head (trained on its landmarks, left as it was), and ``added``, a head of the same
    kind for the new ones; their outputs side by side, kept first. Training only ``added`` (and
    not the backbone) leaves every kept landmark exactly where the original model put it."""

    def __init__(self, kept: nn.Module, added: nn.Module):
        super().__init__()
        self.kept, self.added = kept, added

    def forward(self, features: Features) -> torch.Tensor:
        return torch.cat([self.kept(features), self.added(features)], dim=-1)

    def forward_with_offsets(self, features: Features) -> Tuple[torch.Tensor, torch.Tensor]:
        (logits, offsets), (new_logits, new_offsets) = (h.forward_with_offsets(features) for h in (self.kept, self.added))
        return torch.cat([logits, new_logits], dim=-1), torch.cat([offsets, new_offsets], dim=-2)
