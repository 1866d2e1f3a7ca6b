"""The median time of a step: for `se3unet verify` and the benchmark scripts."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def median_step_seconds(step: Callable[[], None], repeats: int, warm_up: bool = True) -> float:
    """Median wall time of ``repeats`` calls, after one untimed call (caches, allocator)."""
    if warm_up:
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        if torch.cuda.is_available():
            torch.cuda.synchronize()  # a GPU's work is queued: wait for it before reading the clock
        times.append(time.perf_counter() - start)
    return statistics.median(times)
