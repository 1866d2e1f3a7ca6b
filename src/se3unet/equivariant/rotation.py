"""Rotations of features and clouds: what equivariance checks compare against."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

import torch
from e3nn import o3

from .fiber import Features


def random_rotation(dtype: torch.dtype = torch.float64, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """A rotation matrix drawn uniformly over SO(3) (normalised Gaussian quaternion)."""
    q = torch.randn(4, dtype=torch.float64, generator=generator)
    return o3.quaternion_to_matrix(q / q.norm()).to(dtype)


@contextmanager
def float64_default() -> Iterator[None]:
    """e3nn builds some constants (so(3) generators) in the default dtype; float64 here keeps
    them exact to 1e-15 instead of 1e-7."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def wigner_d(degree: int, rotation: torch.Tensor) -> torch.Tensor:
    """The (2l+1) x (2l+1) matrix by which a degree-l feature turns under ``rotation``."""
    with float64_default():  # on the CPU: e3nn builds its generators there
        d = o3.Irrep(degree, (-1) ** degree).D_from_matrix(rotation.detach().cpu().to(torch.float64))
    return d.to(rotation.device, rotation.dtype)


def rotate_features(features: Features, rotation: torch.Tensor) -> Features:
    return {d: f @ wigner_d(d, rotation).to(f).transpose(-1, -2) for d, f in features.items()}


def relative_error(actual: Features, expected: Features) -> float:
    """max |actual - expected| over all degrees, relative to max |expected|."""
    diff = max(float((actual[d] - expected[d]).detach().abs().max()) for d in expected)
    scale = max(float(expected[d].detach().abs().max()) for d in expected)
    return diff / max(scale, 1e-30)
