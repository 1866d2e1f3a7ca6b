"""GSE3Res: the SE(3)-Transformer's equivariant attention block with a residual skip."""

from __future__ import annotations

from typing import Literal, Optional

import torch
from torch import nn

from .basis import DEFAULT_NUM_RADIAL, EquivariantGraph
from .convolution import ConvSE3
from .fiber import Features, Fiber
from .linear import AttentiveSelfInteraction, LinearSE3

SelfInteraction = Literal["1x1", "att"]


def make_self_interaction(kind: SelfInteraction, fiber_in: Fiber, fiber_out: Fiber) -> nn.Module:
    if kind == "1x1":
        return LinearSE3(fiber_in, fiber_out)
    if kind == "att":
        return AttentiveSelfInteraction(fiber_in, fiber_out)
    raise ValueError(f"self-interaction must be '1x1' or 'att', got {kind!r}")


class GSE3Res(nn.Module):
    """Equivariant multi-head attention over each point's k neighbours, plus skip.

    Keys and values are the messages of one fused TFN convolution (key channels and value
    channels side by side); queries a 1x1 map of the point's features. The attention logit
    of a head is the inner product of query and key over that head's channels of every degree:
    invariant, because Wigner-D matrices are orthogonal. A softmax over the k neighbours
    weighs the values; the result is concatenated with the input (skip) and projected to
    fiber_out by a 1x1 or an attentive self-interaction.
    """

    def __init__(self, fiber_in: Fiber, fiber_out: Fiber, fiber_hidden: Optional[Fiber] = None,
                 heads: int = 1, self_interaction: SelfInteraction = "1x1",
                 num_radial: int = DEFAULT_NUM_RADIAL, radial_hidden: int = 32, recompute: bool = True):
        super().__init__()
        fiber_hidden = fiber_hidden or fiber_out
        for d, c in fiber_hidden:
            if c % heads:
                raise ValueError(f"{heads} heads do not divide the {c} channels of degree {d}")
        self.fiber_in, self.fiber_out, self.fiber_value = fiber_in, fiber_out, fiber_hidden
        # A query needs the degree in the input; keys exist only where queries do.
        self.fiber_key = Fiber({d: c for d, c in fiber_hidden if d in fiber_in})
        self.heads = heads
        self.key_value = ConvSE3(fiber_in, self.fiber_key + fiber_hidden, num_radial, radial_hidden,
                                 self_interaction=False, recompute=recompute)
        self.query = LinearSE3(fiber_in, self.fiber_key)
        self.key_dimension = self.fiber_key.dimension
        skip = fiber_hidden + Fiber({d: c for d, c in fiber_in if d in fiber_hidden})
        self.project = make_self_interaction(self_interaction, skip, fiber_out)

    def _attend(self, kv: Features, query: Features) -> Features:
        h = self.heads
        logits = 0
        for d, c in self.fiber_key:
            key = kv[d][:, :, :c]  # [n, k, C_key, m]
            q = query[d]  # [n, C_key, m]
            n, k = key.shape[:2]
            logits = logits + torch.einsum(
                "nhcm,nkhcm->nkh", q.view(n, h, c // h, -1), key.reshape(n, k, h, c // h, -1)
            )
        weights = torch.softmax(logits * (self.key_dimension / h) ** -0.5, dim=1)  # over neighbours
        out = {}
        for d, c in self.fiber_value:
            value = kv[d][:, :, self.fiber_key[d]:]  # [n, k, C_value, m]
            n, k = value.shape[:2]
            out[d] = torch.einsum(
                "nkh,nkhcm->nhcm", weights, value.reshape(n, k, h, c // h, -1)
            ).reshape(n, c, 2 * d + 1)
        return out

    def forward(self, features: Features, graph: EquivariantGraph) -> Features:
        self.fiber_in.check(features, "GSE3Res input")
        flat = graph.flatten(features)
        step = self.key_value.block_size(graph)
        query_degrees = self.fiber_key.degrees
        queries = self.query(flat)

        def attend(block: slice, hidden: Optional[torch.Tensor], *query: torch.Tensor) -> Features:
            return self._attend(self.key_value.messages(flat, graph, block, hidden), dict(zip(query_degrees, query)))

        attended = self.key_value.map_blocks(graph, attend, [queries[d].split(step) for d in query_degrees])
        joined = {
            d: torch.cat([attended[d], flat[d]], dim=1) if d in flat else attended[d]
            for d in self.fiber_value.degrees
        }
        return graph.unflatten(self.project(joined))
