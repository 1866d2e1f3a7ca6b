"""TFN convolution, computed in blocks of points without building per-edge kernels.

For each output degree l_out the message along edge (i <- j) is

    m_{l_out}[c_out, m] = sum_{l_in, J, c_in} R[c_out, (l_in, J, c_in)] T[m, (l_in, J, c_in)]
    T = basis[l_in -> l_out] f_j[l_in]

(features contracted with the shared basis first, then with this layer's radial weights R, a
linear function of the radial network's last hidden layer; the order of NVIDIA's
SE(3)-Transformer). Layers only ever need sums of messages over a point's k neighbours, and
equivariant/contraction.py computes those by whichever of two orders does less work: building
each edge's radial weights, or summing over the neighbours first so that they are never built.

Edges are processed for a block of destination points at a time, so the per-edge tensors of a
block fit in cache (see docs/engine.md); a block holds all k edges of its points, so a softmax
or mean over neighbours needs nothing from other blocks.

With ``recompute`` (the default) each block runs under activation checkpointing: its per-edge
intermediates (gathered features, basis products, radial weights) are freed after the forward
pass and computed again, block by block, in the backward pass: one more forward pass of the
edge work for a fraction of the memory.
"""

from __future__ import annotations

import os
from typing import Callable, Dict, Iterator, Optional, Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .basis import DEFAULT_NUM_RADIAL, EquivariantGraph, num_frequencies
from .contraction import route_width, weighted_sum
from .fiber import Features, Fiber
from .linear import LinearSE3
from .radial import RadialMLP

# Edges per block: large enough to amortise per-operation overhead, small enough that a
# block's widest tensors (contraction.route_width: the radial weights, edges x C_out x Q, or the
# per-point sums of the summed route) stay well below glibc's
# 32 MB mmap threshold: larger tensors are mapped fresh on every call and each page is faulted
# in again, which made a 67 MB block's products 20-40x slower than the same work in 8 MB pieces
# (docs/engine.md). Both overridable for experiments.
EDGES_PER_BLOCK = int(os.environ.get("SE3UNET_EDGES_PER_BLOCK", "8192"))
FLOATS_PER_BLOCK = int(os.environ.get("SE3UNET_FLOATS_PER_BLOCK", str(2 ** 21)))


def block_size(graph: EquivariantGraph, width: int = 1) -> int:
    """Points per block for per-edge tensors of ``width`` numbers per edge."""
    edges = min(EDGES_PER_BLOCK, max(graph.k, FLOATS_PER_BLOCK // max(width, 1)))
    return max(1, edges // graph.k)


def point_blocks(graph: EquivariantGraph, width: int = 1) -> Iterator[slice]:
    """Consecutive blocks of flattened points (see block_size)."""
    total = graph.batch_size * graph.num_points
    step = block_size(graph, width)
    for start in range(0, total, step):
        yield slice(start, min(start + step, total))


class ConvSE3(nn.Module):
    """Equivariant edge messages from fiber_in to fiber_out (full radial parametrization:
    one radial profile per input channel, output channel and frequency J).

    ``forward`` is the TFN layer: the mean of the messages over the k neighbours plus a 1x1
    self-interaction of the point's own features. Layers that weigh the messages otherwise
    (attention) use ``map_blocks``, ``edge_terms`` and ``radial_weights`` with the
    functions of equivariant/contraction.py; ``groups`` is how many groups of channels they
    weigh separately (attention heads), which decides the cheaper contraction.
    """

    def __init__(self, fiber_in: Fiber, fiber_out: Fiber, num_radial: int = DEFAULT_NUM_RADIAL,
                 radial_hidden: int = 32, self_interaction: bool = True, recompute: bool = True,
                 groups: int = 1):
        super().__init__()
        self.fiber_in, self.fiber_out = fiber_in, fiber_out
        self.recompute = recompute
        self.groups = groups
        # Q[l_out]: how many (l_in, J, c_in) terms feed one output channel of degree l_out.
        self.terms = {lo: sum(c * num_frequencies(li, lo) for li, c in fiber_in) for lo in fiber_out.degrees}
        self.radial = RadialMLP(num_radial, [c * self.terms[lo] for lo, c in fiber_out], radial_hidden)
        self.radial_size = radial_hidden + 1
        shared = Fiber({d: c for d, c in fiber_out if d in fiber_in}) if any(
            d in fiber_in for d in fiber_out.degrees) else None
        self.self_interaction = (
            LinearSE3(Fiber({d: fiber_in[d] for d in shared.degrees}), shared)
            if self_interaction and shared is not None else None
        )

    def edge_width(self, graph: EquivariantGraph) -> int:
        """Floats per edge of the widest per-edge tensor (sizes the blocks); estimated with all
        output channels of a degree as one part, where attention splits them into keys and values."""
        return max(route_width(c, self.groups, 2 * lo + 1, self.terms[lo], graph.k, self.radial_size)
                   for lo, c in self.fiber_out)

    def block_size(self, graph: EquivariantGraph) -> int:
        return block_size(graph, self.edge_width(graph))

    def map_blocks(self, graph: EquivariantGraph, fn: Callable[..., Features],
                   pieces: Sequence[Sequence[torch.Tensor]] = ()) -> Features:
        """``fn(block, hidden, *pieces_of_block)`` for every block of points, concatenated.

        ``hidden`` is the block's output of the radial MLP's hidden layers ([n, k, R], see
        ``block_hidden``). Without recomputation it is computed once for all edges and split
        (not sliced per block: the backward of a split is one concatenation, each slice's
        backward would fill a zero tensor the size of the whole input). With it, each block
        runs under activation checkpointing and computes its own ``hidden`` (None is passed),
        so nothing per edge outlives the block's forward pass.
        """
        needed = max(self.fiber_in.max_degree, self.fiber_out.max_degree)
        if graph.max_degree < needed:
            raise ValueError(f"graph basis has max degree {graph.max_degree}, layer needs {needed}")
        blocks = list(point_blocks(graph, self.edge_width(graph)))
        if self.recompute and torch.is_grad_enabled():
            results = [
                checkpoint(fn, block, None, *(p[i] for p in pieces), use_reentrant=False,
                           preserve_rng_state=False)  # nothing random inside
                for i, block in enumerate(blocks)
            ]
        else:
            hidden = self.radial.features(graph.radial_features).split(self.block_size(graph))
            results = [fn(block, hidden[i], *(p[i] for p in pieces)) for i, block in enumerate(blocks)]
        return {d: torch.cat([r[d] for r in results], dim=0) for d in results[0]}

    def block_hidden(self, graph: EquivariantGraph, block: slice, hidden: Optional[torch.Tensor]) -> torch.Tensor:
        """The radial MLP's hidden output for the edges of ``block`` (computed when None)."""
        return self.radial.features(graph.radial_features[block]) if hidden is None else hidden

    def radial_weights(self) -> Dict[int, torch.Tensor]:
        """{l_out: W [C_out, Q, R]}: the radial output layers as contraction.py reads them: bias
        as the last column, terms reordered to (l_in, J, c_in), each message's 1 / sqrt(Q)
        normalisation folded in (a pass over small matrices, not over every message)."""
        out = {}
        for (lo, c_out), layer in zip(self.fiber_out, self.radial.outputs):
            w = torch.cat([layer.weight, layer.bias.unsqueeze(1)], dim=1) * self.terms[lo] ** -0.5
            w = w.view(c_out, self.terms[lo], self.radial_size)
            parts, start = [], 0
            for li, c_in in self.fiber_in:  # the layer's rows are ordered (l_in, c_in, J)
                nj = num_frequencies(li, lo)
                part = w[:, start:start + c_in * nj].unflatten(1, (c_in, nj))
                parts.append(part.transpose(1, 2).flatten(1, 2))
                start += c_in * nj
            out[lo] = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        return out

    def edge_terms(self, flat_features: Features, graph: EquivariantGraph, block: slice) -> Dict[int, torch.Tensor]:
        """{l_out: T [n, k, 2 l_out + 1, Q]}: the neighbours' features of the edges into the
        points of ``block`` contracted with the basis, terms ordered (l_in, J, c_in)."""
        index = graph.neighbours[block]
        n, k = index.shape
        edges = n * k
        flat_index = index.reshape(-1)
        terms = {lo: [] for lo in self.fiber_out.degrees}
        for li, c_in in self.fiber_in:
            f = flat_features[li].index_select(0, flat_index).transpose(1, 2)  # [E, 2 l_in + 1, C_in]
            for lo in self.fiber_out.degrees:
                basis = graph.output_major_basis(li, lo)[block].reshape(edges, -1, 2 * li + 1)
                t = basis * f if li == 0 else torch.bmm(basis, f)  # [E, (2 l_out + 1) num_J, C_in]
                terms[lo].append(t.view(edges, 2 * lo + 1, num_frequencies(li, lo) * c_in))
        return {lo: (torch.cat(t, dim=2) if len(t) > 1 else t[0]).view(n, k, 2 * lo + 1, self.terms[lo])
                for lo, t in terms.items()}

    def forward(self, features: Features, graph: EquivariantGraph) -> Features:
        self.fiber_in.check(features, "ConvSE3 input")
        flat = graph.flatten(features)
        weights = self.radial_weights()

        def mean_message(block: slice, hidden: Optional[torch.Tensor]) -> Features:
            terms = self.edge_terms(flat, graph, block)
            n, k = terms[self.fiber_out.degrees[0]].shape[:2]
            h = self.block_hidden(graph, block, hidden).view(n, k, -1)
            mean = h.new_full((n, k, 1), 1.0 / k)
            return {d: weighted_sum(terms[d], h, weights[d], mean) for d in self.fiber_out.degrees}

        out = self.map_blocks(graph, mean_message)
        if self.self_interaction is not None:
            own = self.self_interaction({d: flat[d] for d in self.self_interaction.fiber_in.degrees})
            out = {d: out[d] + own[d] if d in own else out[d] for d in out}
        return graph.unflatten(out)
