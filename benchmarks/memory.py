"""Peak-memory readings for the benchmark scripts.

On the CPU: resident memory of the process (Linux /proc and getrusage; elsewhere 0). Peak
resident memory only grows within a process, so each setting measured runs in its own. On a
GPU: torch's peak allocated memory since the reading started.
"""

from __future__ import annotations

import resource
import sys


def current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return 0.0


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


class PeakMemory:
    """The rise of peak memory on ``device`` above its level when this object was made."""

    def __init__(self, device: str = "cpu"):
        import torch

        self.cuda = device != "cpu"
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated() / 2**20
        else:
            self.base = current_rss_mb()

    def peak_mb(self) -> float:
        if self.cuda:
            import torch

            return torch.cuda.max_memory_allocated() / 2**20 - self.base
        return peak_rss_mb() - self.base
