"""Fibers: how many channels a feature has at each rotation degree.

Features are dicts ``{degree: Tensor[..., channels, 2 * degree + 1]}``; a Fiber describes
their shape without holding data, so layers can be built before any input exists.
"""

from __future__ import annotations

from typing import Dict, Iterable, Iterator, Mapping, Tuple

import torch

Features = Dict[int, torch.Tensor]


class Fiber:
    """An immutable mapping degree -> channels, with degrees sorted ascending."""

    def __init__(self, channels: Mapping[int, int]):
        items = sorted((int(d), int(c)) for d, c in channels.items() if int(c) > 0)
        for degree, _ in items:
            if degree < 0:
                raise ValueError(f"degrees must be >= 0, got {degree}")
        if not items:
            raise ValueError("a fiber needs at least one degree with channels > 0")
        self._channels: Dict[int, int] = dict(items)

    @classmethod
    def uniform(cls, degrees: Iterable[int], channels: int) -> "Fiber":
        return cls({d: channels for d in degrees})

    @classmethod
    def of(cls, features: Features) -> "Fiber":
        return cls({d: t.shape[-2] for d, t in features.items()})

    @property
    def degrees(self) -> Tuple[int, ...]:
        return tuple(self._channels)

    @property
    def max_degree(self) -> int:
        return self.degrees[-1]

    @property
    def dimension(self) -> int:
        """Numbers per point: sum over degrees of channels * (2l + 1)."""
        return sum(c * (2 * d + 1) for d, c in self._channels.items())

    def __getitem__(self, degree: int) -> int:
        return self._channels.get(degree, 0)

    def __contains__(self, degree: int) -> bool:
        return degree in self._channels

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        return iter(self._channels.items())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fiber) and self._channels == other._channels

    def __hash__(self) -> int:
        return hash(tuple(self._channels.items()))

    def __add__(self, other: "Fiber") -> "Fiber":
        """Channel-wise sum: the fiber of two features concatenated along channels."""
        degrees = set(self.degrees) | set(other.degrees)
        return Fiber({d: self[d] + other[d] for d in degrees})

    def __repr__(self) -> str:
        return "Fiber(" + ", ".join(f"{d}:{c}" for d, c in self) + ")"

    def check(self, features: Features, name: str = "features") -> None:
        """Refuse features whose degrees or channel counts differ from this fiber."""
        if set(features) != set(self.degrees):
            raise ValueError(f"{name}: degrees {sorted(features)} != expected {list(self.degrees)}")
        for d, c in self:
            t = features[d]
            if t.shape[-2:] != (c, 2 * d + 1):
                raise ValueError(
                    f"{name}: degree {d} has shape {tuple(t.shape)}, expected [..., {c}, {2 * d + 1}]"
                )
