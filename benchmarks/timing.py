"""Shared by the benchmark scripts: the median time of a step."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def median_step_seconds(step: Callable[[], None], repeats: int, warm_up: bool = True) -> float:
    """Median wall time of ``repeats`` calls, after one untimed call (caches, allocator)."""
    if warm_up:
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
