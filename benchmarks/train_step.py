"""One training step of SE3Unet presets (forward, backward, Adam), and the shipped model's
forward pass at predict's batch, each against this machine's matrix-multiply rate.

Shapes: report-v1 at batch 2 x 2,048 points (the report's setting), the default preset at
batch 4 x 1,024 (the shipped recipe's); random clouds and labels, BCE-with-logits loss. The
level hierarchy (FPS + kNN) is built once outside the step, as the data pipeline caches it;
its time is printed separately. Each preset runs with the convolutions' per-edge work
recomputed in the backward pass (model.recompute, the default) and without, each setting in
its own process (peak resident memory only grows within a process); peak memory is the rise of
peak resident memory (on a GPU: of peak allocated memory) above the level once the model and
inputs exist (the default route's first step). Time is the median of the timed steps after one
warm-up step.

Routes: the engine contracts edge terms with radial weights by whichever of two orders does less
work (equivariant/contraction.py); before issue 40 it had only the direct one. Every step here
is timed by the default choice and by the direct route alternately, step by step in the same
process, so ``speedup_over_direct`` holds on a noisy machine.

Work and rate: ``gflop`` is the step's matrix-multiply work counted by
torch.utils.flop_counter (the same for both settings of recompute but for the recomputed
forward), ``gflop_per_s`` that work over the step time, and ``gemm_gflop_per_s`` the rate of a
square 2,048 x 2,048 float32 matmul measured in the same process before and after the steps
(the better of the two): on a noisy machine the ratio of the two rates holds where seconds do
not. ``direct_gflop`` is the same step's work by the direct route and ``direct_gflop_per_s`` that
work over the default route's seconds: the rate issue 40's targets were set in. The last row is
the shipped model (face68.pt) reading 8 clouds of 1,024 points without
gradients, predict's batch: its seconds and the same rates.

One process per core (CPU): the same step of the same batch split across ``--processes``
processes (default: one per core), one intra-op thread each, gradients averaged by
DistributedDataParallel over gloo, as ``torchrun --nproc_per_node P ... optim.batch_size=B/P``
trains. Timed alternately with one process (all threads) on the same shapes, two rounds, so
``speedup_over_one_process`` holds on a noisy machine; its ``gflop_per_s`` is the one-process
step's counted work over the step's wall time, against the GEMM rate of all cores.

    python benchmarks/train_step.py                       # report-v1, default, predict forward
    python benchmarks/train_step.py --presets original    # any presets (at --batch x --points)
    python benchmarks/train_step.py --device cuda         # on a GPU (TF32 off)

The last line is JSON: {PRESET: {"step_seconds", "peak_mb", ..., "recompute_off": {"step_seconds",
"peak_mb", "gflop", "gflop_per_s", "gemm_gflop_per_s", "direct_gflop", "direct_gflop_per_s", "direct_route_seconds",
"speedup_over_direct"}, "data_parallel": {"processes", "step_seconds", "one_process_seconds",
"speedup_over_one_process", "gflop_per_s", "gemm_gflop_per_s"}}, "predict_forward": {...}}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager

# The shape each preset is measured at unless --batch/--points say otherwise.
SHAPES = {"report-v1": (2, 2048), "default": (4, 1024), "original": (2, 2048)}
PREDICT_BATCH, PREDICT_POINTS = 8, 1024
RATE_KEYS = ("gflop", "gflop_per_s", "gemm_gflop_per_s", "direct_gflop", "direct_gflop_per_s", "direct_route_seconds",
             "speedup_over_direct")


def gemm_rate(device: str, size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a square float32 matmul: the best of a few (the machine's rate when undisturbed)."""
    import torch

    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    best = float("inf")
    for _ in range(repeats + 1):
        start = time.perf_counter()
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


@contextmanager
def edge_route(route: str):
    """Run the engine's edge contractions by one route (equivariant/contraction.py)."""
    from se3unet.equivariant import contraction

    saved, contraction.ROUTE = contraction.ROUTE, route
    try:
        yield
    finally:
        contraction.ROUTE = saved


def counted_gflop(step) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / 1e9


def alternated_seconds(step, repeats: int) -> dict:
    """Median seconds of ``step`` by the default route and by the direct one (the engine's only
    route before issue 40), alternating step by step in one process so the ratio holds on a
    noisy machine; one untimed warm-up of each first."""
    import torch

    times = {"auto": [], "direct": []}
    for i in range(repeats + 1):
        for route in times:
            with edge_route(route):
                start = time.perf_counter()
                step()
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                if i:
                    times[route].append(time.perf_counter() - start)
    return {route: statistics.median(t) for route, t in times.items()}


def rates(step, seconds: dict, gemm: float) -> dict:
    """Counted work and rates; ``direct_gflop``: the same step's work by the direct route, and
    ``direct_gflop_per_s`` that work over the default route's seconds (the rate the engine
    would need by the direct route to be as fast)."""
    gflop = counted_gflop(step)
    with edge_route("direct"):
        direct_gflop = counted_gflop(step)
    return {"gflop": gflop, "gflop_per_s": gflop / seconds["auto"], "gemm_gflop_per_s": gemm,
            "direct_gflop": direct_gflop, "direct_gflop_per_s": direct_gflop / seconds["auto"],
            "direct_route_seconds": seconds["direct"], "speedup_over_direct": seconds["direct"] / seconds["auto"]}


def step_inputs(name: str, batch: int, points: int, recompute: bool, device: str) -> tuple:
    """The preset's model (seed 0) and one random batch: positions, normals (or None), labels."""
    import torch

    from se3unet.model import SE3Unet, preset

    torch.manual_seed(0)
    config = preset(name, recompute=recompute)
    model = SE3Unet(config).to(device)
    positions = torch.randn(batch, points, 3, device=device)
    normals = (torch.nn.functional.normalize(torch.randn(batch, points, 3, device=device), dim=-1)
               if config.normals else None)
    labels = (torch.rand(batch, points, config.num_outputs, device=device) > 0.95).float()
    return model, positions, normals, labels


def worker(name: str, batch: int, points: int, repeats: int, recompute: bool, device: str) -> dict:
    import torch

    from memory import PeakMemory  # benchmarks/memory.py, beside this script
    from se3unet.train.memory import release_freed_memory

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    model, positions, normals, labels = step_inputs(name, batch, points, recompute, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
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

    gemm = gemm_rate(device)
    step()  # the default route first: peak memory is its own
    peak = memory.peak_mb()
    seconds = alternated_seconds(step, repeats)
    gemm = max(gemm, gemm_rate(device))
    return {"step_seconds": seconds["auto"], "peak_mb": peak, "params": sum(p.numel() for p in model.parameters()),
            "hierarchy_seconds": hierarchy_seconds, **rates(step, seconds, gemm)}


def parallel_worker(name: str, batch: int, points: int, repeats: int, rank: int, world: int, port: int) -> dict:
    """Seconds per training step (recompute off) of ``batch`` clouds split across ``world``
    processes, this one ``rank`` (world 1: one process, all threads). Ranks start each timed
    step together (a barrier), so the slowest rank sets the time, as in training."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    if world > 1:
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    model, positions, normals, labels = step_inputs(name, batch, points, False, "cpu")
    shard = slice(rank * batch // world, (rank + 1) * batch // world)
    positions, labels = positions[shard], labels[shard]
    normals = normals[shard] if normals is not None else None
    hierarchy = model.hierarchy(positions)
    network = DistributedDataParallel(model) if world > 1 else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        optimizer.zero_grad(set_to_none=True)
        logits = network(positions, hierarchy, normals)
        torch.nn.functional.binary_cross_entropy_with_logits(logits, labels).backward()
        optimizer.step()

    times = []
    for i in range(repeats + 1):
        if world > 1:
            dist.barrier()
        start = time.perf_counter()
        step()
        if world > 1:
            dist.barrier()
        if i:
            times.append(time.perf_counter() - start)
    if world > 1:
        dist.destroy_process_group()
    return {"step_seconds": statistics.median(times)}


def predict_worker(repeats: int, device: str) -> dict:
    """The shipped model's forward pass at predict's batch, hierarchy prebuilt."""
    import torch

    from se3unet.pretrained import load_pretrained

    torch.manual_seed(0)
    model, _ = load_pretrained(device)
    positions = torch.randn(PREDICT_BATCH, PREDICT_POINTS, 3, device=device)
    normals = torch.nn.functional.normalize(torch.randn(PREDICT_BATCH, PREDICT_POINTS, 3, device=device), dim=-1)
    start = time.perf_counter()
    hierarchy = model.hierarchy(positions)
    hierarchy_seconds = time.perf_counter() - start

    @torch.no_grad()
    def forward():
        model(positions, hierarchy, normals, with_offsets=True)

    gemm = gemm_rate(device)
    seconds = alternated_seconds(forward, repeats)
    gemm = max(gemm, gemm_rate(device))
    return {"forward_seconds": seconds["auto"], "hierarchy_seconds": hierarchy_seconds, **rates(forward, seconds, gemm)}


def run_worker(args: argparse.Namespace, *extra: str) -> dict:
    cmd = [sys.executable, __file__, "--repeats", str(args.repeats), "--device", args.device, *extra]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(extra)} failed:\n{done.stderr[-3000:]}")
    r = json.loads(done.stdout.strip().splitlines()[-1])
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_parallel(args: argparse.Namespace, name: str, batch: int, points: int, world: int) -> float:
    """Seconds per step of ``world`` processes on shards of one batch (rank 0's report)."""
    port = free_port()
    procs = [subprocess.Popen([sys.executable, __file__, "--parallel-worker", name, "--batch", str(batch),
                               "--points", str(points), "--repeats", str(args.repeats), "--rank", str(rank),
                               "--world", str(world), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank in range(world)]
    outputs = [p.communicate() for p in procs]
    for p, (_, err) in zip(procs, outputs):
        if p.returncode != 0:
            raise RuntimeError(f"parallel worker of {name} failed:\n{err[-3000:]}")
    return json.loads(outputs[0][0].strip().splitlines()[-1])["step_seconds"]


def data_parallel(args: argparse.Namespace, name: str, batch: int, points: int, gflop: float) -> dict:
    """One process per core against one process, alternated over two rounds (medians)."""
    median = statistics.median
    if batch % args.processes:
        raise SystemExit(f"--processes {args.processes} does not divide {name}'s batch of {batch}")
    one, many = [], []
    gemm = gemm_rate("cpu")
    for _ in range(2):
        one.append(run_parallel(args, name, batch, points, 1))
        many.append(run_parallel(args, name, batch, points, args.processes))
    gemm = max(gemm, gemm_rate("cpu"))
    return {"processes": args.processes, "step_seconds": median(many), "one_process_seconds": median(one),
            "speedup_over_one_process": median(one) / median(many), "gflop_per_s": gflop / median(many),
            "gemm_gflop_per_s": gemm}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["report-v1", "default"])
    parser.add_argument("--batch", type=int, help="clouds per step (default: the preset's shape, SHAPES)")
    parser.add_argument("--points", type=int, help="points per cloud (default: the preset's shape)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--no-predict", action="store_true", help="skip the shipped model's forward pass")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                        help="processes of the data-parallel row (default: one per core; 1 skips it; CPU only)")
    parser.add_argument("--parallel-worker", help=argparse.SUPPRESS)
    parser.add_argument("--rank", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--world", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--predict-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-recompute", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.parallel_worker:
        print(json.dumps(parallel_worker(args.parallel_worker, args.batch, args.points, args.repeats, args.rank,
                                         args.world, args.port)))
        return
    if args.predict_worker:
        print(json.dumps(predict_worker(args.repeats, args.device)))
        return
    if args.worker:
        print(json.dumps(worker(args.worker, args.batch, args.points, args.repeats, not args.no_recompute,
                                args.device)))
        return

    results = {}
    print(f"one training step (forward + backward + Adam), {args.device}; GFLOP/s and GEMM rate measured in "
          f"each process")
    print(f"{'preset':12} {'shape':>10} {'recompute':>9} {'step s':>8} {'peak MB':>9} {'GFLOP':>7} {'GFLOP/s':>8} "
          f"{'GEMM/s':>7} {'of GEMM':>8} {'direct s':>9} {'speed-up':>9} {'direct GFLOP':>13} {'of GEMM':>8} "
          f"{'hierarchy s':>12}")
    for name in args.presets:
        batch, points = args.batch or SHAPES.get(name, (2, 2048))[0], args.points or SHAPES.get(name, (2, 2048))[1]
        runs = {}
        for recompute in (True, False):
            print(f"  running {name}, recompute {'on' if recompute else 'off'} ...", file=sys.stderr, flush=True)
            extra = ["--worker", name, "--batch", str(batch), "--points", str(points)]
            r = runs[recompute] = run_worker(args, *extra, *([] if recompute else ["--no-recompute"]))
            print(f"{name:12} {f'{batch}x{points}':>10} {'on' if recompute else 'off':>9} {r['step_seconds']:8.2f} "
                  f"{r['peak_mb']:9.0f} {r['gflop']:7.1f} {r['gflop_per_s']:8.1f} {r['gemm_gflop_per_s']:7.0f} "
                  f"{r['gflop_per_s'] / r['gemm_gflop_per_s']:8.0%} {r['direct_route_seconds']:9.2f} "
                  f"{r['speedup_over_direct']:8.2f}x {r['direct_gflop']:13.1f} "
                  f"{r['direct_gflop_per_s'] / r['gemm_gflop_per_s']:8.0%} {r['hierarchy_seconds']:12.3f}")
        on, off = runs[True], runs[False]
        print(f"{'':12} {'':>10} {'on/off':>9} {on['step_seconds'] / off['step_seconds']:7.2f}x "
              f"{on['peak_mb'] / max(off['peak_mb'], 1e-9):8.2f}x")
        results[name] = {**on, "shape": [batch, points],
                         "recompute_off": {k: off[k] for k in ("step_seconds", "peak_mb", *RATE_KEYS)}}
        if args.device == "cpu" and args.processes > 1:
            print(f"  running {name} in {args.processes} processes, one thread each ...", file=sys.stderr, flush=True)
            d = results[name]["data_parallel"] = data_parallel(args, name, batch, points, off["gflop"])
            print(f"{name:12} {f'{batch}x{points}':>10} {'off':>9} {d['step_seconds']:8.2f} {'':>9} {'':>7} "
                  f"{d['gflop_per_s']:8.1f} {d['gemm_gflop_per_s']:7.0f} "
                  f"{d['gflop_per_s'] / d['gemm_gflop_per_s']:8.0%}  <- {d['processes']} processes x 1 thread, "
                  f"{d['speedup_over_one_process']:.2f}x one process ({d['one_process_seconds']:.2f} s) alternated")
    if not args.no_predict:
        print(f"  running the shipped model's forward pass ...", file=sys.stderr, flush=True)
        r = results["predict_forward"] = run_worker(args, "--predict-worker")
        print(f"shipped model forward, no gradients, {PREDICT_BATCH}x{PREDICT_POINTS}: {r['forward_seconds']:.3f} s, "
              f"{r['gflop']:.1f} GFLOP, {r['gflop_per_s']:.1f} GFLOP/s of {r['gemm_gflop_per_s']:.0f} "
              f"({r['gflop_per_s'] / r['gemm_gflop_per_s']:.0%}); direct route {r['direct_route_seconds']:.3f} s "
              f"({r['speedup_over_direct']:.2f}x), {r['direct_gflop']:.1f} GFLOP; hierarchy {r['hierarchy_seconds']:.3f} s")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
