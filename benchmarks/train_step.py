"""One training step of SE3Unet presets: forward, backward and an Adam update.

Batch 2 x 2048 points (the report's setting), random clouds and labels, BCE-with-logits loss.
The level hierarchy (FPS + kNN) is built once outside the step, as the data pipeline caches
it; its time is printed separately. Each preset runs in its own process; peak memory is the
rise of peak resident memory above the level once the model and inputs exist. Time is the
median of the timed steps after one warm-up step.

    python benchmarks/train_step.py                       # default and report-v1
    python benchmarks/train_step.py --presets original    # any presets
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from timing import median_step_seconds  # benchmarks/timing.py, beside this script


def worker(name: str, batch: int, points: int, repeats: int) -> dict:
    import torch

    from se3unet.model import SE3Unet, preset
    from se3unet.utils.memory import current_rss_mb, peak_rss_mb

    torch.manual_seed(0)
    config = preset(name)
    model = SE3Unet(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    positions = torch.randn(batch, points, 3)
    normals = torch.nn.functional.normalize(torch.randn(batch, points, 3), dim=-1) if config.normals else None
    labels = (torch.rand(batch, points, config.num_outputs) > 0.95).float()
    start = time.perf_counter()
    hierarchy = model.hierarchy(positions)
    hierarchy_seconds = time.perf_counter() - start
    base = current_rss_mb()

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(positions, hierarchy, normals), labels)
        loss.backward()
        optimizer.step()

    return {"step_seconds": median_step_seconds(step, repeats), "peak_mb": peak_rss_mb() - base,
            "params": sum(p.numel() for p in model.parameters()), "hierarchy_seconds": hierarchy_seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["report-v1", "default"])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--points", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.batch, args.points, args.repeats)))
        return

    results = {}
    print(f"one training step (forward + backward + Adam), batch {args.batch} x {args.points} points")
    print(f"{'preset':12} {'step s':>8} {'peak MB':>9} {'params':>9} {'hierarchy s':>12}")
    for name in args.presets:
        print(f"  running {name} ...", file=sys.stderr, flush=True)
        cmd = [sys.executable, __file__, "--worker", name, "--batch", str(args.batch),
               "--points", str(args.points), "--repeats", str(args.repeats)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
        r = json.loads(done.stdout.strip().splitlines()[-1])
        results[name] = {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
        print(f"{name:12} {r['step_seconds']:8.2f} {r['peak_mb']:9.0f} {r['params']:9d} {r['hierarchy_seconds']:12.3f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
