"""GSE3Res: the SE(3)-Transformer's equivariant attention block with a residual skip."""

from __future__ import annotations

from typing import Dict, Literal, Optional

import torch
from torch import nn

from .basis import DEFAULT_NUM_RADIAL, EquivariantGraph
from .contraction import inner_products, weighted_sum
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
    channels side by side), never built edge by edge where summing over the neighbours first
    is cheaper (equivariant/contraction.py); queries a 1x1 map of the point's features. The
    attention logit of a head is the inner product of query and key over that head's channels
    of every degree: invariant, because Wigner-D matrices are orthogonal. A softmax over the k
    neighbours weighs the values; the result is concatenated with the input (skip) and projected to
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
                                 self_interaction=False, recompute=recompute, groups=heads)
        self.query = LinearSE3(fiber_in, self.fiber_key)
        self.key_dimension = self.fiber_key.dimension
        skip = fiber_hidden + Fiber({d: c for d, c in fiber_in if d in fiber_hidden})
        self.project = make_self_interaction(self_interaction, skip, fiber_out)

    def _attend(self, terms: Dict[int, torch.Tensor], hidden: torch.Tensor, weights: Dict[int, torch.Tensor],
                query: Features) -> Features:
        """One block of points: terms {d: [n, k, 2d + 1, Q]}, hidden [n, k, R], weights the
        key-value convolution's radial weights {d: [C_key + C_value, Q, R]}."""
        logits = sum(inner_products(terms[d], hidden, weights[d][:c], query[d], self.heads)
                     for d, c in self.fiber_key)
        attention = torch.softmax(logits * (self.key_dimension / self.heads) ** -0.5, dim=1)  # over neighbours
        return {d: weighted_sum(terms[d], hidden, weights[d][self.fiber_key[d]:], attention)
                for d in self.fiber_value.degrees}

    def forward(self, features: Features, graph: EquivariantGraph) -> Features:
        self.fiber_in.check(features, "GSE3Res input")
        flat = graph.flatten(features)
        conv = self.key_value
        step = conv.block_size(graph)
        query_degrees = self.fiber_key.degrees
        queries = self.query(flat)
        weights = conv.radial_weights()

        def attend(block: slice, hidden: Optional[torch.Tensor], *query: torch.Tensor) -> Features:
            terms = conv.edge_terms(flat, graph, block)
            h = conv.block_hidden(graph, block, hidden).view(block.stop - block.start, graph.k, -1)
            return self._attend(terms, h, weights, dict(zip(query_degrees, query)))

        attended = conv.map_blocks(graph, attend, [queries[d].split(step) for d in query_degrees])
        joined = {
            d: torch.cat([attended[d], flat[d]], dim=1) if d in flat else attended[d]
            for d in self.fiber_value.degrees
        }
        return graph.unflatten(self.project(joined))
