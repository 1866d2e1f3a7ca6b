"""One GSE3Res layer against se3-transformer-pytorch 0.9.0: forward + backward time and memory.

Settings (both sides): 1 cloud of 2048 points, k = 40 neighbours, 5 channels per degree,
degrees {0,1} and {0,1,2}, one attention head, the same random cloud and features (seed 0).
Reference rows:
- "reference": SE3Transformer(dim=5, depth=1, heads=1, num_degrees=2|3, num_neighbors=40),
  everything else at its defaults (so dim_head = 24: 24 key/value channels per degree). These
  are the settings the project's targets and the figures in reference/NOTES.md refer to.
- "reference, dim_head=5": the same with 5 key/value channels per degree, as many as ours: the
  like-for-like amount of work.

Each side runs in its own process; its peak memory is the rise of peak resident memory above
the level once imports and inputs are made. Time is the median of the timed steps after one
warm-up step. Needs `pip install -e .[bench]` (the reference is a benchmark-only dependency).

    python benchmarks/engine.py               # both settings, table + JSON last line
    python benchmarks/engine.py --degrees 01  # one setting
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from se3unet.timing import median_step_seconds

POINTS, NEIGHBOURS, CHANNELS = 2048, 40, 5
TARGETS = {"01": {"speedup": 30, "memory_ratio": 0.1}, "012": {"speedup": 50}}


def _inputs(degrees):
    import torch

    torch.manual_seed(0)
    positions = torch.randn(1, POINTS, 3)
    features = {d: torch.randn(1, POINTS, CHANNELS, 2 * d + 1) for d in degrees}
    return positions, features


def worker_ours(degrees, repeats):
    from se3unet.equivariant import EquivariantGraph, Fiber, GSE3Res
    from se3unet.geometry.knn import knn_graph
    from memory import current_rss_mb, peak_rss_mb  # benchmarks/memory.py

    positions, features = _inputs(degrees)
    for f in features.values():
        f.requires_grad_(True)
    fiber = Fiber.uniform(degrees, CHANNELS)
    # Measured without recomputing the edge work (figures comparable with earlier runs; the
    # default recomputes it, trading time for memory: benchmarks/train_step.py measures both).
    layer = GSE3Res(fiber, fiber, heads=1, recompute=False)
    base = current_rss_mb()

    def step():
        # The graph (kNN + basis) is part of the step: the reference builds its own too.
        graph = EquivariantGraph(positions, knn_graph(positions, NEIGHBOURS), max(degrees))
        out = layer(features, graph)
        sum(o.square().sum() for o in out.values()).backward()

    seconds = median_step_seconds(step, repeats)
    params = sum(p.numel() for p in layer.parameters())
    return {"seconds": seconds, "peak_mb": peak_rss_mb() - base, "params": params}


def worker_reference(degrees, repeats, dim_head=None):
    import torch
    from se3_transformer_pytorch import SE3Transformer

    from memory import current_rss_mb, peak_rss_mb  # benchmarks/memory.py

    positions, features = _inputs(degrees)
    feats = features[0].squeeze(-1).requires_grad_(True)  # [1, N, C] degree-0 input
    options = {} if dim_head is None else {"dim_head": dim_head}
    model = SE3Transformer(dim=CHANNELS, depth=1, heads=1, num_degrees=len(degrees),
                           num_neighbors=NEIGHBOURS, **options)
    with torch.no_grad():  # warm-up: builds and caches the reference's basis
        model(feats, positions)
    base = current_rss_mb()

    def step():
        model(feats, positions).square().sum().backward()

    seconds = median_step_seconds(step, repeats, warm_up=False)  # a step takes seconds to a minute
    params = sum(p.numel() for p in model.parameters())
    return {"seconds": seconds, "peak_mb": peak_rss_mb() - base, "params": params}


WORKERS = {
    "ours": worker_ours,
    "reference": worker_reference,
    "reference-matched": lambda degrees, repeats: worker_reference(degrees, repeats, dim_head=CHANNELS),
}


def run_worker(side, degrees, repeats):
    cmd = [sys.executable, __file__, "--worker", side, "--degrees", degrees, "--repeats", str(repeats)]
    print(f"  running {side} {{{','.join(degrees)}}} ...", file=sys.stderr, flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{side} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--degrees", nargs="*", default=["01", "012"])
    parser.add_argument("--repeats", type=int, default=3, help="timed steps for se3unet")
    parser.add_argument("--reference-repeats", type=int, default=1, help="timed steps for the reference")
    parser.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        degrees = [int(c) for c in args.degrees[0]]
        print(json.dumps(WORKERS[args.worker](degrees, args.repeats)))
        return

    summary = {}
    print(f"GSE3Res forward + backward, {POINTS} points, k = {NEIGHBOURS}, {CHANNELS} channels per degree")
    print(f"{'degrees':8} {'side':24} {'seconds':>9} {'peak MB':>9} {'params':>8}")
    for degrees in args.degrees:
        ours = run_worker("ours", degrees, args.repeats)
        ref = run_worker("reference", degrees, args.reference_repeats)
        matched = run_worker("reference-matched", degrees, args.reference_repeats)
        rows = (("se3unet", ours), ("reference", ref), ("reference, dim_head=5", matched))
        for name, r in rows:
            print(f"{{{','.join(degrees)}}}".ljust(8), f"{name:24} {r['seconds']:9.3f} {r['peak_mb']:9.0f} {r['params']:8d}")
        key = "deg" + degrees
        summary[key] = {
            "speedup": round(ref["seconds"] / ours["seconds"], 1),
            "memory_ratio": round(ours["peak_mb"] / max(ref["peak_mb"], 1e-9), 4),
            "speedup_matched": round(matched["seconds"] / ours["seconds"], 1),
            "memory_ratio_matched": round(ours["peak_mb"] / max(matched["peak_mb"], 1e-9), 4),
            "seconds": round(ours["seconds"], 4), "reference_seconds": round(ref["seconds"], 3),
            "peak_mb": round(ours["peak_mb"], 1), "reference_peak_mb": round(ref["peak_mb"], 1),
        }
        target = TARGETS.get(degrees, {})
        verdicts = [f"speedup {summary[key]['speedup']}x (target >= {target.get('speedup', '-')}x; "
                    f"{summary[key]['speedup_matched']}x against dim_head=5)"]
        if "memory_ratio" in target:
            verdicts.append(f"memory ratio {summary[key]['memory_ratio']} (target <= {target['memory_ratio']})")
        print("   ", "; ".join(verdicts))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
