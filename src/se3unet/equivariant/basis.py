"""The equivariant edge basis of a graph, computed once and shared by every layer on it.

A TFN kernel from degree l_in to degree l_out is sum_J R_J(|x|) Q_J Y_J(x / |x|), with
J = |l_in - l_out| .. l_in + l_out, Y_J the real spherical harmonics and Q_J the
Clebsch-Gordan (wigner_3j) coefficients. Here the products Q_J Y_J are evaluated per edge for
every pair of degrees, stacked over (J, m_out):

    basis[(l_in, l_out)]: [B * N, k, 2 l_in + 1, num_J * (2 l_out + 1)]

A layer contracts features with it first (cheap, radial weights not involved) and then with
its own radial weights, so the per-edge kernel matrix is never built.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Dict, Tuple

import torch
from e3nn import o3
from e3nn.math import soft_one_hot_linspace

from ..geometry.knn import check_enough_points
from .rotation import float64_default

# Edge lengths are measured in units of the cloud's mean neighbour distance; the Gaussian
# radial embedding covers [0, RADIAL_END] of those units.
RADIAL_END = 3.0
DEFAULT_NUM_RADIAL = 16
# Keeps directions and length scales finite for zero-length edges (coincident points).
_EPS = 1e-12


def num_frequencies(l_in: int, l_out: int) -> int:
    """How many J couple l_in to l_out: 2 min(l_in, l_out) + 1."""
    return 2 * min(l_in, l_out) + 1


@lru_cache(maxsize=None)
def _coupling_matrices(max_degree: int) -> Dict[Tuple[int, int], torch.Tensor]:
    with float64_default():
        return _build_coupling_matrices(max_degree)


def _build_coupling_matrices(max_degree: int) -> Dict[Tuple[int, int], torch.Tensor]:
    """Per (l_in, l_out), the float64 map from stacked Y_0..Y_{2 max_degree} to the block
    [2 l_in + 1, num_J * (2 l_out + 1)] of that pair's basis."""
    num_sh = (2 * max_degree + 1) ** 2
    result = {}
    for l_in in range(max_degree + 1):
        for l_out in range(max_degree + 1):
            width = 2 * l_out + 1
            m = torch.zeros(num_sh, 2 * l_in + 1, num_frequencies(l_in, l_out) * width, dtype=torch.float64)
            for i, j in enumerate(range(abs(l_in - l_out), l_in + l_out + 1)):
                # wigner_3j(l_out, l_in, J)[m_out, m_in, m_J] has unit Frobenius norm; the factor
                # gives each coupled kernel unit norm per component of Y_J.
                q = o3.wigner_3j(l_out, l_in, j, dtype=torch.float64) * width ** 0.5
                m[j * j:(j + 1) * (j + 1), :, i * width:(i + 1) * width] = q.permute(2, 1, 0)
            result[(l_in, l_out)] = m
    return result


def coupling_matrices(max_degree: int, dtype: torch.dtype,
                      device: torch.device) -> Dict[Tuple[int, int], torch.Tensor]:
    return {pair: m.to(dtype=dtype, device=device) for pair, m in _coupling_matrices(max_degree).items()}


class EquivariantGraph:
    """A batch of point clouds, their dense kNN graphs, and what every layer needs per edge.

    Points of all clouds are flattened to B * N rows; ``neighbours`` holds row indices, so
    a gather needs no batch index. Everything here is invariant or equivariant by
    construction: relative vectors, lengths scaled by each cloud's mean neighbour distance,
    their Gaussian embedding and the spherical-harmonic basis.
    """

    def __init__(self, positions: torch.Tensor, neighbours: torch.Tensor, max_degree: int,
                 num_radial: int = DEFAULT_NUM_RADIAL):
        if positions.dim() != 3 or positions.shape[-1] != 3:
            raise ValueError(f"positions must be [B, N, 3], got {tuple(positions.shape)}")
        if neighbours.shape[:2] != positions.shape[:2] or neighbours.dim() != 3:
            raise ValueError(
                f"neighbours {tuple(neighbours.shape)} do not match positions {tuple(positions.shape)}"
            )
        b, n, k = neighbours.shape
        check_enough_points(n, k)
        self.batch_size, self.num_points, self.k = b, n, k
        self.max_degree = max_degree

        offsets = (torch.arange(b, device=neighbours.device) * n).view(b, 1, 1)
        self.neighbours = (neighbours + offsets).reshape(b * n, k)
        flat = positions.reshape(b * n, 3)
        self.vectors = flat[self.neighbours] - flat.unsqueeze(1)  # [BN, k, 3], x_j - x_i
        lengths = (self.vectors.square().sum(-1) + _EPS).sqrt()
        self.lengths = lengths
        scale = lengths.detach().view(b, n * k).mean(dim=1).clamp_min(1e-6)
        self.scaled_lengths = lengths / scale.repeat_interleave(n).unsqueeze(1)
        self.radial_features = soft_one_hot_linspace(
            self.scaled_lengths, 0.0, RADIAL_END, num_radial, basis="gaussian", cutoff=False
        )
        self.basis = self._spherical_basis(positions.dtype)
        self._output_major: Dict[Tuple[int, int], torch.Tensor] = {}

    def output_major_basis(self, l_in: int, l_out: int) -> torch.Tensor:
        """basis[(l_in, l_out)] reordered to [B * N, k, (2 l_out + 1) num_J, 2 l_in + 1] ((m_out, J)
        major): contracting features with it gives the terms in the layout the layers'
        contractions read (equivariant/contraction.py). Made once per graph, on first use."""
        if (l_in, l_out) not in self._output_major:
            bn, k = self.neighbours.shape
            basis = self.basis[(l_in, l_out)].view(bn, k, 2 * l_in + 1, -1, 2 * l_out + 1)
            self._output_major[(l_in, l_out)] = basis.permute(0, 1, 4, 3, 2).reshape(bn, k, -1, 2 * l_in + 1)
        return self._output_major[(l_in, l_out)]

    def _spherical_basis(self, dtype: torch.dtype) -> Dict[Tuple[int, int], torch.Tensor]:
        # lengths carry an epsilon, so a zero-length edge (coincident points) gets direction 0:
        # Y_J(0) = 0 for J > 0 and only the isotropic J = 0 part couples. No NaN, still equivariant.
        directions = self.vectors / self.lengths.unsqueeze(-1)
        sh = o3.spherical_harmonics(
            list(range(2 * self.max_degree + 1)), directions, normalize=False, normalization="component"
        )  # [BN, k, (2L+1)^2]
        bn, k = self.neighbours.shape
        sh = sh.reshape(bn * k, -1)
        # One contiguous block per (l_in, l_out): a layer contracts each without slicing.
        return {
            (l_in, l_out): (sh @ m.reshape(m.shape[0], -1)).view(bn, k, 2 * l_in + 1, -1)
            for (l_in, l_out), m in coupling_matrices(self.max_degree, dtype, sh.device).items()
        }

    def flatten(self, features: Dict[int, torch.Tensor]) -> Dict[int, torch.Tensor]:
        """[B, N, C, m] -> [B * N, C, m] per degree."""
        return {d: t.reshape(self.batch_size * self.num_points, *t.shape[2:]) for d, t in features.items()}

    def unflatten(self, features: Dict[int, torch.Tensor]) -> Dict[int, torch.Tensor]:
        return {d: t.reshape(self.batch_size, self.num_points, *t.shape[1:]) for d, t in features.items()}
