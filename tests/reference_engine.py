"""A frozen copy of the engine's edge layers as they were before issue 40 (commit 0809c50).

The engine's per-edge work was reworked for speed; these classes keep the old code so tests can
check that the new layers compute the same function on the same weights (tests/test_engine_reference.py).
Do not edit: this is the reference, not the implementation.
"""

from __future__ import annotations

from typing import Callable, Iterator, List, Optional, Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from se3unet.equivariant.attention import make_self_interaction
from se3unet.equivariant.basis import DEFAULT_NUM_RADIAL, EquivariantGraph, num_frequencies
from se3unet.equivariant.fiber import Features, Fiber
from se3unet.equivariant.linear import LinearSE3

class ReferenceRadialMLP(nn.Module):
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

    def last(self, features: torch.Tensor) -> List[torch.Tensor]:
        # [W | b] against [h | 1]: one plain matrix product per output. addmm would first copy
        # the broadcast bias into every row of its wide output, 40% of its time on a CPU.
        return [features @ torch.cat([layer.weight, layer.bias.unsqueeze(1)], dim=1).t() for layer in self.outputs]

    def forward(self, embedding: torch.Tensor) -> List[torch.Tensor]:
        return self.last(self.features(embedding))


# Edges per block: large enough to amortise per-operation overhead, small enough that a
# block's radial weights stay in cache (8,192 measured best on 2 cores, see
# benchmarks/engine.py). Overridable for experiments.
EDGES_PER_BLOCK = 8192


def block_size(graph: EquivariantGraph) -> int:
    return max(1, EDGES_PER_BLOCK // graph.k)


def point_blocks(graph: EquivariantGraph) -> Iterator[slice]:
    """Consecutive blocks of flattened points, each holding about EDGES_PER_BLOCK edges."""
    total = graph.batch_size * graph.num_points
    step = block_size(graph)
    for start in range(0, total, step):
        yield slice(start, min(start + step, total))


class ReferenceConvSE3(nn.Module):
    """Equivariant edge messages from fiber_in to fiber_out (full radial parametrization:
    one radial profile per input channel, output channel and frequency J).

    ``forward`` is the TFN layer: the mean of the messages over the k neighbours plus a 1x1
    self-interaction of the point's own features. ``messages`` gives the raw per-edge
    messages of one block of points, for layers (attention) that weigh them differently.
    """

    def __init__(self, fiber_in: Fiber, fiber_out: Fiber, num_radial: int = DEFAULT_NUM_RADIAL,
                 radial_hidden: int = 32, self_interaction: bool = True, recompute: bool = True):
        super().__init__()
        self.fiber_in, self.fiber_out = fiber_in, fiber_out
        self.recompute = recompute
        # Q[l_out]: how many (l_in, c_in, J) terms feed one output channel of degree l_out.
        self.terms = {lo: sum(c * num_frequencies(li, lo) for li, c in fiber_in) for lo in fiber_out.degrees}
        self.radial = ReferenceRadialMLP(num_radial, [c * self.terms[lo] for lo, c in fiber_out], radial_hidden)
        shared = Fiber({d: c for d, c in fiber_out if d in fiber_in}) if any(
            d in fiber_in for d in fiber_out.degrees) else None
        self.self_interaction = (
            LinearSE3(Fiber({d: fiber_in[d] for d in shared.degrees}), shared)
            if self_interaction and shared is not None else None
        )

    def map_blocks(self, graph: EquivariantGraph, fn: Callable[..., Features],
                   pieces: Sequence[Sequence[torch.Tensor]] = ()) -> Features:
        """``fn(block, hidden, *pieces_of_block)`` for every block of points, concatenated.

        ``hidden`` is the block's output of the radial MLP's hidden layers. Without
        recomputation it is computed once for all edges and split (not sliced per block: the
        backward of a split is one concatenation, each slice's backward would fill a zero
        tensor the size of the whole input). With it, each block runs under activation
        checkpointing and computes its own ``hidden`` (None is passed), so nothing per edge
        outlives the block's forward pass.
        """
        needed = max(self.fiber_in.max_degree, self.fiber_out.max_degree)
        if graph.max_degree < needed:
            raise ValueError(f"graph basis has max degree {graph.max_degree}, layer needs {needed}")
        blocks = list(point_blocks(graph))
        if self.recompute and torch.is_grad_enabled():
            results = [
                checkpoint(fn, block, None, *(p[i] for p in pieces), use_reentrant=False,
                           preserve_rng_state=False)  # nothing random inside
                for i, block in enumerate(blocks)
            ]
        else:
            hidden = self.radial.features(graph.radial_features).split(block_size(graph))
            results = [fn(block, hidden[i], *(p[i] for p in pieces)) for i, block in enumerate(blocks)]
        return {d: torch.cat([r[d] for r in results], dim=0) for d in results[0]}

    def messages(self, flat_features: Features, graph: EquivariantGraph, block: slice,
                 hidden: Optional[torch.Tensor] = None) -> Features:
        """Messages [n, k, C_out, 2 l_out + 1] of the edges into the points of ``block``;
        ``hidden`` is that block's output of the radial MLP's hidden layers (computed here
        when None)."""
        index = graph.neighbours[block]
        n, k = index.shape
        edges = n * k
        flat_index = index.reshape(-1)
        if hidden is None:
            hidden = self.radial.features(graph.radial_features[block])
        weights = self.radial.last(hidden.reshape(edges, -1))

        terms = {lo: [] for lo in self.fiber_out.degrees}
        for li, c_in in self.fiber_in:
            f = flat_features[li].index_select(0, flat_index)  # [E, C_in, 2 l_in + 1]
            for lo in self.fiber_out.degrees:
                basis = graph.basis[(li, lo)][block].reshape(edges, 2 * li + 1, -1)
                t = f * basis if li == 0 else torch.bmm(f, basis)  # [E, C_in, num_J (2 l_out + 1)]
                terms[lo].append(t.view(edges, c_in * num_frequencies(li, lo), 2 * lo + 1))

        out = {}
        for (lo, c_out), radial in zip(self.fiber_out, weights):
            q = self.terms[lo]
            stacked = torch.cat(terms[lo], dim=1) if len(terms[lo]) > 1 else terms[lo][0]
            radial = radial.view(edges, c_out, q)
            if lo == 0:  # matrix-vector: a broadcast beats a batch of tiny matmuls, backward too
                message = (radial * stacked.transpose(1, 2)).sum(-1, keepdim=True)
            else:
                message = torch.bmm(radial, stacked)
            out[lo] = (message * q ** -0.5).view(n, k, c_out, 2 * lo + 1)
        return out

    def forward(self, features: Features, graph: EquivariantGraph) -> Features:
        self.fiber_in.check(features, "ConvSE3 input")
        flat = graph.flatten(features)

        def mean_message(block: slice, hidden: Optional[torch.Tensor]) -> Features:
            return {d: m.mean(dim=1) for d, m in self.messages(flat, graph, block, hidden).items()}

        out = self.map_blocks(graph, mean_message)
        if self.self_interaction is not None:
            own = self.self_interaction({d: flat[d] for d in self.self_interaction.fiber_in.degrees})
            out = {d: out[d] + own[d] if d in own else out[d] for d in out}
        return graph.unflatten(out)


class ReferenceGSE3Res(nn.Module):
    """Equivariant multi-head attention over each point's k neighbours, plus skip.

    Keys and values are the messages of one fused TFN convolution (key channels and value
    channels side by side); queries a 1x1 map of the point's features. The attention logit
    of a head is the inner product of query and key over that head's channels of every degree:
    invariant, because Wigner-D matrices are orthogonal. A softmax over the k neighbours
    weighs the values; the result is concatenated with the input (skip) and projected to
    fiber_out by a 1x1 or an attentive self-interaction.
    """

    def __init__(self, fiber_in: Fiber, fiber_out: Fiber, fiber_hidden: Optional[Fiber] = None,
                 heads: int = 1, self_interaction: str = "1x1",
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
        self.key_value = ReferenceConvSE3(fiber_in, self.fiber_key + fiber_hidden, num_radial, radial_hidden,
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
        step = block_size(graph)
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
