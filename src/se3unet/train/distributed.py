"""Distributed data parallel set-up: the same training command alone or under torchrun.

torchrun sets WORLD_SIZE, RANK and LOCAL_RANK; then each process joins the group (gloo on
CPU, nccl on GPU), trains on its shard of every epoch and averages gradients through
DistributedDataParallel. Only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..inference import choose_device


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def any_rank(self, flag: bool) -> bool:
        """True on every rank when any rank passes True: ranks must leave a loop together, or
        the ones still in it wait forever on the others' gradients."""
        if not self.enabled:
            return flag
        value = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())


def setup(device_name: str = "auto") -> Distributed:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = choose_device(device_name, local_rank)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world_size)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return Distributed(rank, world_size, device)


def teardown(state: Distributed) -> None:
    if state.enabled and dist.is_initialized():
        dist.destroy_process_group()
