"""The `se3unet` command."""

from __future__ import annotations

import argparse
import json
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="se3unet", description=__doc__)
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
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"se3unet {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
