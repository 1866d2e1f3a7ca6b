"""bfloat16 autocast against float32 on one training step of the default preset (batch 4 x 1,024,
recompute off), alternating step by step in one process, and what it costs in invariance: the
relative change of the logits under a random rotation and translation (issue 40,
docs/engine.md; training with it: `optim.precision=bfloat16`, docs/training.md).

    python benchmarks/bfloat16.py
"""

import statistics
import time

import torch

from se3unet.equivariant.rotation import random_rotation
from se3unet.model import SE3Unet, preset


def main(repeats: int = 5) -> None:
    torch.manual_seed(0)
    config = preset("default", recompute=False)
    model = SE3Unet(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    positions = torch.randn(4, 1024, 3)
    normals = torch.nn.functional.normalize(torch.randn(4, 1024, 3), dim=-1)
    labels = (torch.rand(4, 1024, config.num_outputs) > 0.95).float()
    hierarchy = model.hierarchy(positions)

    def step(bfloat16: bool) -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
            logits = model(positions, hierarchy, normals)
        torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), labels).backward()
        optimizer.step()

    times = {False: [], True: []}
    for i in range(2 * (repeats + 1)):
        bfloat16 = bool(i % 2)
        start = time.perf_counter()
        step(bfloat16)
        if i >= 2:  # one warm-up step of each
            times[bfloat16].append(time.perf_counter() - start)

    model.eval()
    rotation, shift = random_rotation(torch.float32), torch.randn(3) * 5
    moved = positions @ rotation.T + shift
    for bfloat16 in (False, True):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
            before = model(positions, model.hierarchy(positions), normals).float()
            after = model(moved, model.hierarchy(moved), normals @ rotation.T).float()
        error = ((before - after).abs().max() / before.abs().max()).item()
        print(f"{'bfloat16' if bfloat16 else 'float32':9s} step {statistics.median(times[bfloat16]):.3f} s, "
              f"relative invariance error {error:.1e}")


if __name__ == "__main__":
    main()
