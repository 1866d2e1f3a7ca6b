"""TFN convolution, computed in chunks of points without building per-edge kernels.

For each output degree l_out the message along edge (i <- j) is

    m_{l_out}[c_out] = sum_{l_in, c_in, J} R[c_out, (l_in, c_in, J)] T[(l_in, c_in, J)]
    T = f_j[l_in][c_in] @ basis[l_in][:, (l_out, J)]

(features contracted with the shared basis first, then with this layer's radial weights; the
order of NVIDIA's SE(3)-Transformer). Edges are processed for a block of destination points at
a time: the radial weights of a block fit in cache, which is where the speed on a CPU comes
from (see docs/engine.md), and a block holds all k edges of its points so a softmax or mean
over neighbours needs nothing from other blocks.

With ``recompute`` (the default) each block runs under activation checkpointing: its per-edge
intermediates (gathered features, basis products, radial weights: E x channels x basis terms,
almost all of a training step's memory) are freed after the forward pass and computed again,
block by block, in the backward pass: one more forward pass of the edge work for a fraction of
the memory.
"""

from __future__ import annotations

import os
from typing import Callable, Iterator, Optional, Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .basis import DEFAULT_NUM_RADIAL, EquivariantGraph, num_frequencies
from .fiber import Features, Fiber
from .linear import LinearSE3
from .radial import RadialMLP

# Edges per block: large enough to amortise per-operation overhead, small enough that a
# block's widest per-edge tensor (the radial weights, edges x C_out x Q) stays well below glibc's
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
        self.radial = RadialMLP(num_radial, [c * self.terms[lo] for lo, c in fiber_out], radial_hidden)
        # The widest per-edge tensor: one degree's radial weights.
        self.edge_width = max(c * self.terms[lo] for lo, c in fiber_out)
        shared = Fiber({d: c for d, c in fiber_out if d in fiber_in}) if any(
            d in fiber_in for d in fiber_out.degrees) else None
        self.self_interaction = (
            LinearSE3(Fiber({d: fiber_in[d] for d in shared.degrees}), shared)
            if self_interaction and shared is not None else None
        )

    def block_size(self, graph: EquivariantGraph) -> int:
        return block_size(graph, self.edge_width)

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
        blocks = list(point_blocks(graph, self.edge_width))
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
        # Each message is normalised by 1 / sqrt(its number of terms): folded into the weights.
        weights = self.radial.last(hidden.reshape(edges, -1), [self.terms[lo] ** -0.5 for lo in self.fiber_out.degrees])

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
            out[lo] = message.view(n, k, c_out, 2 * lo + 1)
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
