"""One training step of SE3Unet presets: forward, backward and an Adam update.

Batch 2 x 2048 points (the report's setting), random clouds and labels, BCE-with-logits loss.
The level hierarchy (FPS + kNN) is built once outside the step, as the data pipeline caches
it; its time is printed separately. Each preset runs twice, with the convolutions' per-edge
work recomputed in the backward pass (model.recompute, the default) and without, each setting
in its own process (peak resident memory only grows within a process); peak memory is the rise
of peak resident memory (on a GPU: of peak allocated memory) above the level once the model
and inputs exist. Time is the median of the timed steps after one warm-up step.

    python benchmarks/train_step.py                       # default and report-v1
    python benchmarks/train_step.py --presets original    # any presets
    python benchmarks/train_step.py --device cuda         # on a GPU (TF32 off)

The last line is JSON: {PRESET: {"step_seconds", "peak_mb", ..., "recompute_off": {...}}}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from se3unet.timing import median_step_seconds


def worker(name: str, batch: int, points: int, repeats: int, recompute: bool, device: str) -> dict:
    import torch

    from memory import PeakMemory  # benchmarks/memory.py, beside this script
    from se3unet.model import SE3Unet, preset
    from se3unet.train.memory import release_freed_memory

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    config = preset(name, recompute=recompute)
    model = SE3Unet(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    positions = torch.randn(batch, points, 3, device=device)
    normals = (torch.nn.functional.normalize(torch.randn(batch, points, 3, device=device), dim=-1)
               if config.normals else None)
    labels = (torch.rand(batch, points, config.num_outputs, device=device) > 0.95).float()
    start = time.perf_counter()
    hierarchy = model.hierarchy(positions)
    hierarchy_seconds = time.perf_counter() - start
    memory = PeakMemory(device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(positions, hierarchy, normals), labels)
        loss.backward()
        optimizer.step()
        if device != "cpu":
            torch.cuda.synchronize()
        elif recompute:
            release_freed_memory()  # as the trainer does after each step when recomputing

    return {"step_seconds": median_step_seconds(step, repeats), "peak_mb": memory.peak_mb(),
            "params": sum(p.numel() for p in model.parameters()), "hierarchy_seconds": hierarchy_seconds}


def run_worker(name: str, args: argparse.Namespace, recompute: bool) -> dict:
    cmd = [sys.executable, __file__, "--worker", name, "--batch", str(args.batch), "--points", str(args.points),
           "--repeats", str(args.repeats), "--device", args.device]
    if not recompute:
        cmd.append("--no-recompute")
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{name} (recompute {'on' if recompute else 'off'}) failed:\n{done.stderr[-3000:]}")
    r = json.loads(done.stdout.strip().splitlines()[-1])
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["report-v1", "default"])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--points", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--no-recompute", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.batch, args.points, args.repeats, not args.no_recompute,
                                args.device)))
        return

    results = {}
    print(f"one training step (forward + backward + Adam), batch {args.batch} x {args.points} points, {args.device}")
    print(f"{'preset':12} {'recompute':>9} {'step s':>8} {'peak MB':>9} {'params':>9} {'hierarchy s':>12}")
    for name in args.presets:
        runs = {}
        for recompute in (True, False):
            print(f"  running {name}, recompute {'on' if recompute else 'off'} ...", file=sys.stderr, flush=True)
            r = runs[recompute] = run_worker(name, args, recompute)
            print(f"{name:12} {'on' if recompute else 'off':>9} {r['step_seconds']:8.2f} {r['peak_mb']:9.0f} "
                  f"{r['params']:9d} {r['hierarchy_seconds']:12.3f}")
        on, off = runs[True], runs[False]
        print(f"{'':12} {'on/off':>9} {on['step_seconds'] / off['step_seconds']:7.2f}x "
              f"{on['peak_mb'] / max(off['peak_mb'], 1e-9):8.2f}x")
        results[name] = {**on, "recompute_off": {"step_seconds": off["step_seconds"], "peak_mb": off["peak_mb"]}}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
