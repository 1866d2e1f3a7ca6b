"""The `se3unet` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

# Pass marks for `verify`: relative equivariance error per dtype.
TOLERANCE = {"float32": 1e-4, "float64": 1e-9}


def _verify(args: argparse.Namespace) -> int:
    from .model import preset
    from .verify import VerifyConfig, verify_layers, verify_model

    model_config = preset(args.preset) if args.preset else None
    degrees = args.degrees or (list(model_config.degrees) if model_config else [0, 1, 2])
    config = VerifyConfig(degrees=sorted(set(degrees)), channels=args.channels, points=args.points,
                          neighbours=args.neighbours, heads=args.heads, batch=args.batch, seed=args.seed)
    print(f"se3unet verify: degrees {config.degrees}, {config.channels} channels, {config.batch} x "
          f"{config.points} points, k = {config.neighbours}, {config.heads} heads", file=sys.stderr)
    layers = verify_layers(config, progress=lambda name: print(f"  checking {name} ...", file=sys.stderr))
    rows = dict(layers)
    if model_config is not None:
        print(f"  checking the {args.preset} model on {args.model_points} points ...", file=sys.stderr)
        rows[f"model ({args.preset})"] = verify_model(model_config, args.model_points, seed=args.seed)
    ok = all(r[d] <= TOLERANCE[d] for r in rows.values() for d in TOLERANCE)
    print(f"{'layer':26} {'float32 err':>12} {'float64 err':>12} {'seconds':>9}  ok")
    for name, r in rows.items():
        passed = all(r[d] <= TOLERANCE[d] for d in TOLERANCE)
        print(f"{name:26} {r['float32']:12.2e} {r['float64']:12.2e} {r['seconds']:9.4f}  {'yes' if passed else 'NO'}")
    print(f"relative error of f(Rx + t, D(R)h) vs D(R)f(x, h); pass marks {TOLERANCE}; "
          f"seconds: float32 forward + backward (model: forward only)")
    if args.json:
        report = {"layers": layers}
        if model_config is not None:
            report["model"] = {d: rows[f"model ({args.preset})"][d] for d in TOLERANCE}
        print(json.dumps(report))
    return 0 if ok else 1


def _prepare(args: argparse.Namespace) -> int:
    from .data.prepare import PrepareConfig, prepare
    from .data.preprocess import ScannerEffects
    from .data.sfm import resolve_sfm_dir

    path = args.path
    if args.source == "sfm":
        path = str(resolve_sfm_dir(args.path).resolve())
    config = PrepareConfig(
        source=args.source, path=path, landmark_indices=args.landmark_indices, subjects=args.subjects,
        expressions=args.expressions, facescape_expressions=tuple(args.facescape_expressions),
        crop_radius=args.crop_radius, mm_per_unit=args.mm_per_unit, samples=args.samples, points=args.points,
        val=args.val, test=args.test, seed=args.seed,
        scanner=ScannerEffects(noise=args.noise, holes=args.holes, hole_radius=args.hole_radius, crop=args.crop,
                               outliers=args.outliers),
    )
    result = prepare(config, args.cache_dir, workers=args.workers, progress=not args.quiet)
    summary = result.summary()
    verb = "reused" if result.reused else f"built at {summary['scans_per_second']} scans/s"
    print(f"{result.path}: train {result.sizes['train']}, val {result.sizes['val']}, "
          f"test {result.sizes['test']} scans ({verb})")
    print(json.dumps(summary))
    return 0


def _train(args: argparse.Namespace) -> int:
    from .train.config import load_config
    from .train.trainer import train

    config = load_config(args.config, args.set)
    summary = train(config, resume=args.resume, progress=not args.quiet)
    print(json.dumps(summary))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluate.report import evaluate

    result = evaluate(args.checkpoint, args.cache, args.output, split=args.split, preprocessing=args.preprocessing,
                      perturbations=args.perturbations, translation=args.translation, batch_size=args.batch_size,
                      baseline=args.baseline, seed=args.seed, limit=args.limit, progress=not args.quiet,
                      device=args.device)
    print(result["table"])
    summary = {name: {"f1@0.5": r["f1"][5], "error_mm": r["error"]["mean_mm"],
                      **({"baseline_error_mm": r["baseline_error"]["mean_mm"]} if "baseline_error" in r else {})}
               for name, r in result["conditions"].items()}
    print(json.dumps({"report": result["report"], "conditions": summary}))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from .evaluate.predict import predict

    results = predict(args.scans, args.checkpoint, args.output, fmt=args.format, picture=not args.no_picture,
                      device=args.device)
    failed = [r for r in results if "error" in r]
    for r in results:
        print(f"{r['scan']}: error: {r['error']}" if "error" in r else f"{r['scan']}: {r['landmarks']}")
    print(json.dumps({"predicted": len(results) - len(failed), "failed": len(failed), "results": results}))
    return 1 if failed else 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    summary = run_demo(args.output, sfm_dir=args.sfm_dir, subjects=args.subjects, points=args.points,
                       epochs=args.epochs, minutes=args.minutes, progress=not args.quiet, overrides=args.set)
    print(json.dumps(summary))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="se3unet", description="Facial landmarks on 3D face scans in any pose, "
                                     "with an SE(3)-equivariant point-cloud U-Net. README.md shows the workflow.")
    parser.add_argument("--version", action="version", version=f"se3unet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    verify = commands.add_parser("verify", help="check every layer's SE(3) equivariance and time it")
    verify.add_argument("--preset", help="also check the whole model of this preset "
                        "(default, report-v1, original; the original is expected to fail)")
    verify.add_argument("--model-points", type=int, default=1024, help="points of the model check's cloud")
    verify.add_argument("--degrees", type=int, nargs="+", help="feature degrees (default: the preset's, or 0 1 2)")
    verify.add_argument("--channels", type=int, default=8, help="channels per degree")
    verify.add_argument("--points", type=int, default=256, help="points per cloud")
    verify.add_argument("--neighbours", "-k", type=int, default=16, help="kNN neighbours")
    verify.add_argument("--heads", type=int, default=2, help="attention heads")
    verify.add_argument("--batch", type=int, default=2, help="clouds per batch")
    verify.add_argument("--seed", type=int, default=0)
    verify.add_argument("--json", action="store_true", help="end with one JSON line of every figure")
    verify.set_defaults(run=_verify)

    prep = commands.add_parser("prepare", help="preprocess a data source into cached train/val/test splits")
    prep.add_argument("--source", choices=["sfm", "facescape", "archive", "folder"], default="sfm")
    prep.add_argument("--path", "--sfm-dir", dest="path",
                      help="SFM folder (default $SE3UNET_SFM_DIR), FaceScape root, archive file or scan folder")
    prep.add_argument("--landmark-indices", help="FaceScape: the toolkit's landmark_indices.npz")
    prep.add_argument("--subjects", type=int, default=200, help="SFM: random identities")
    prep.add_argument("--expressions", type=int, default=1, help="SFM: scans per identity (first neutral)")
    prep.add_argument("--facescape-expressions", nargs="+", default=["neutral"])
    prep.add_argument("--crop-radius", type=float, default=100.0, help="FaceScape: crop around the nose tip, mm")
    prep.add_argument("--mm-per-unit", type=float, default=1.0, help="folder: millimetres per file unit")
    prep.add_argument("--samples", type=int, default=8192, help="surface samples per mesh")
    prep.add_argument("--points", type=int, default=2048, help="points kept by farthest point sampling")
    prep.add_argument("--val", type=float, default=0.1, help="validation subjects: fraction (< 1) or count")
    prep.add_argument("--test", type=float, default=0.2, help="test subjects: fraction (< 1) or count")
    prep.add_argument("--seed", type=int, default=0)
    prep.add_argument("--noise", type=float, default=0.0, help="scanner noise, mm (standard deviation)")
    prep.add_argument("--holes", type=int, default=0, help="holes punched per scan")
    prep.add_argument("--hole-radius", type=float, default=10.0, help="mm")
    prep.add_argument("--crop", type=float, default=0.0, help="drop points farther than this from the centroid, mm")
    prep.add_argument("--outliers", type=float, default=0.0, help="fraction of points replaced by junk")
    prep.add_argument("--cache-dir", default="cache", help="where caches live (one folder per configuration)")
    prep.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    prep.add_argument("--quiet", action="store_true", help="no progress bar")
    prep.set_defaults(run=_prepare)

    tr = commands.add_parser("train", help="train a model on a prepared cache (works under torchrun)")
    tr.add_argument("--config", help="YAML experiment config (configs/*.yaml); defaults without one")
    tr.add_argument("--set", nargs="*", default=[], metavar="SECTION.FIELD=VALUE",
                    help="override any config field, e.g. data.cache=cache/sfm-... optim.lr=1e-3 model.channels=[8,16]")
    tr.add_argument("--resume", action="store_true", help="continue from run.output/last.pt if it exists")
    tr.add_argument("--quiet", action="store_true")
    tr.set_defaults(run=_train)

    ev = commands.add_parser("evaluate", help="the report's test matrix on a prepared split")
    ev.add_argument("--checkpoint", required=True)
    ev.add_argument("--cache", required=True, help="a prepared cache folder")
    ev.add_argument("--output", default="reports/evaluation", help="report folder")
    ev.add_argument("--split", default="test", choices=["train", "val", "test"])
    ev.add_argument("--preprocessing", nargs="+", default=["none", "icp", "raw"], choices=["none", "icp", "raw"])
    ev.add_argument("--perturbations", nargs="+", default=["rotation", "translation", "both"],
                    choices=["rotation", "translation", "both"])
    ev.add_argument("--translation", type=float, default=1.0, help="largest translation, unit-sphere units")
    ev.add_argument("--baseline", nargs="*", default=["raw / both"],
                    help="conditions that also get the ICP mean-face baseline ('all' for every one)")
    ev.add_argument("--batch-size", type=int, default=4)
    ev.add_argument("--limit", type=int, help="evaluate the first n scans only")
    ev.add_argument("--seed", type=int, default=1234, help="seed of the test poses")
    ev.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu or cuda")
    ev.add_argument("--quiet", action="store_true")
    ev.set_defaults(run=_evaluate)

    pr = commands.add_parser("predict", help="landmarks for scans in any pose (.obj .ply .stl .off .npy .xyz)")
    pr.add_argument("scans", nargs="+")
    pr.add_argument("--checkpoint", required=True)
    pr.add_argument("--output", default="predictions")
    pr.add_argument("--format", choices=["csv", "json"], default="csv")
    pr.add_argument("--no-picture", action="store_true")
    pr.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu or cuda")
    pr.set_defaults(run=_predict)

    demo = commands.add_parser("demo", help="prepare Surrey Face Model faces, train, evaluate in random poses")
    demo.add_argument("--sfm-dir", help="Surrey Face Model folder (default $SE3UNET_SFM_DIR)")
    demo.add_argument("--output", default="runs/demo")
    demo.add_argument("--subjects", type=int, default=300)
    demo.add_argument("--points", type=int, default=512, help="points per scan after FPS")
    demo.add_argument("--epochs", type=int, default=8)
    demo.add_argument("--minutes", type=float, default=6.5, help="training time limit")
    demo.add_argument("--set", nargs="*", default=[], metavar="SECTION.FIELD=VALUE",
                      help="override experiment fields, as for train")
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as error:  # DataError is a ValueError
        print(f"se3unet {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
