"""The `se3unet` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
import typing
from pathlib import Path
from typing import List, Optional


def _verify(args: argparse.Namespace) -> int:
    from .model import preset
    from .inference import choose_device
    from .verify import TOLERANCE, VerifyConfig, verify_layers, verify_model

    device = str(choose_device(args.device))
    model_config = preset(args.preset) if args.preset else None
    degrees = args.degrees or (list(model_config.degrees) if model_config else [0, 1, 2])
    config = VerifyConfig(degrees=sorted(set(degrees)), channels=args.channels, points=args.points,
                          neighbours=args.neighbours, heads=args.heads, batch=args.batch, seed=args.seed,
                          device=device)
    print(f"se3unet verify: degrees {config.degrees}, {config.channels} channels, {config.batch} x "
          f"{config.points} points, k = {config.neighbours}, {config.heads} heads, on {device}", file=sys.stderr)
    layers = verify_layers(config, progress=lambda name: print(f"  checking {name} ...", file=sys.stderr))
    rows = dict(layers)
    if model_config is not None:
        print(f"  checking the {args.preset} model on {args.model_points} points ...", file=sys.stderr)
        rows[f"model ({args.preset})"] = verify_model(model_config, args.model_points, seed=args.seed, device=device)
    ok = all(r[d] <= TOLERANCE[d] for r in rows.values() for d in TOLERANCE)
    print(f"{'layer':26} {'float32 err':>12} {'float64 err':>12} {'seconds':>9}  ok")
    for name, r in rows.items():
        passed = all(r[d] <= TOLERANCE[d] for d in TOLERANCE)
        print(f"{name:26} {r['float32']:12.2e} {r['float64']:12.2e} {r['seconds']:9.4f}  {'yes' if passed else 'NO'}")
    print(f"relative error of f(Rx + t, D(R)h) vs D(R)f(x, h); pass marks {TOLERANCE}; "
          f"seconds: float32 forward + backward (model: forward only)")
    if model_config is not None:
        model_row = rows[f"model ({args.preset})"]
        spread = model_row["spread"]
        if model_row["collapsed"]:
            print(f"the {args.preset} model's logits are the same at every point (its features die in its norms "
                  f"for every bias range tried): its invariance was NOT checked")
        else:
            low, high = model_row["bias_range"]
            print(f"model logits' change relative to their spread across points: float32 {spread['float32']:.2e}, "
                  f"float64 {spread['float64']:.2e} (docs/engine.md says why float32 is larger there); "
                  f"GNormBias biases drawn in [{low:g}, {high:g}]")
        if model_config.architecture == "edgeconv":
            print(f"the {args.preset} preset is the EdgeConv baseline: not rotation invariant by design "
                  f"(rotations only as trained)")
    if args.json:
        def number(value: float):  # NaN (nothing checked) is null in JSON
            return None if value != value else value

        report = {"layers": layers, "device": device}
        if model_config is not None:
            report["model"] = {**{d: number(model_row[d]) for d in TOLERANCE},
                               "spread": {d: number(v) for d, v in spread.items()},
                               "collapsed": model_row["collapsed"], "bias_range": model_row["bias_range"],
                               "architecture": model_config.architecture, "passes": ok}
        print(json.dumps(report))
    return 0 if ok else 1


def _prepare(args: argparse.Namespace) -> int:
    from .data.prepare import PrepareConfig, prepare
    from .data.preprocess import ScannerEffects
    from .data.ict import resolve_ict_dir
    from .data.sfm import resolve_sfm_dir

    path, ict_path = args.path, None
    if args.source in ("sfm", "mixed"):
        path = str(resolve_sfm_dir(args.path).resolve())
    if args.source == "ict":
        path = str(resolve_ict_dir(args.path).resolve())
    if args.source == "mixed" or (args.surround_kind == "ict" and args.source != "ict"):
        ict_path = str(resolve_ict_dir(args.ict_dir).resolve())
    config = PrepareConfig(
        source=args.source, path=path, ict_path=ict_path, region=args.region,
        landmark_indices=args.landmark_indices, subjects=args.subjects,
        expressions=args.expressions, facescape_expressions=tuple(args.facescape_expressions),
        crop_radius=args.crop_radius, mm_per_unit=args.mm_per_unit, samples=args.samples, points=args.points,
        landmark_names=tuple(args.landmark_names) if args.landmark_names else None,
        landmarks_file=str(Path(args.landmarks_file).resolve()) if args.landmarks_file else None,
        val=args.val, test=args.test, seed=args.seed, surround=args.surround, face_crop=args.face_crop,
        face_crop_share=args.face_crop_share, surround_twin=args.surround_twin, surround_kind=args.surround_kind,
        scanner=ScannerEffects(noise=args.noise, holes=args.holes, hole_radius=args.hole_radius, crop=args.crop,
                               outliers=args.outliers, fov=args.fov, fov_min=args.fov_min, fov_max=args.fov_max,
                               view=args.view, view_cone=args.view_cone, density=args.density,
                               density_low=args.density_low),
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
    from .evaluate.metrics import THRESHOLDS
    from .evaluate.report import evaluate

    if args.rebuilt:
        from .evaluate.rebuilt import evaluate_rebuilt

        rebuilt = evaluate_rebuilt(args.checkpoint, args.cache, args.output, split=args.split, samplings=args.samplings,
                                   limit=args.limit, seed=args.seed, refine=not args.no_refine,
                                   progress=not args.quiet, device=args.device)
        print(f"{rebuilt['described']}\n\n{rebuilt['table']}")
        print(json.dumps({"report": rebuilt["report"], "rows": {row: {
            "error_mm": r["error"]["mean_mm"], "seconds_per_scan": r["seconds_per_scan"]}
            for row, r in rebuilt["rows"].items()}}))
        return 0
    result = evaluate(args.checkpoint, args.cache, args.output, split=args.split, preprocessing=args.preprocessing,
                      perturbations=args.perturbations, translation=args.translation, batch_size=args.batch_size,
                      baseline=args.baseline, seed=args.seed, limit=args.limit, progress=not args.quiet,
                      device=args.device, sigma=args.sigma, threshold=args.threshold)
    print(result["table"])
    at_half = THRESHOLDS.index(0.5)
    summary = {name: {"f1@0.5": r["f1"][at_half], "error_mm": r["error"]["mean_mm"],
                      **({"baseline_error_mm": r["baseline_error"]["mean_mm"]} if "baseline_error" in r else {})}
               for name, r in result["conditions"].items()}
    print(json.dumps({"report": result["report"], "conditions": summary}))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from .inference import Checkpoint
    from .locate import LocateSettings
    from .predict import predict, scan_list
    from .pretrained import pretrained_path

    # How the checkpoint is read (a fine-tuned model may read whole scans), unless the options say
    reading = Checkpoint.load(args.checkpoint or pretrained_path()).inference.reading
    locating = LocateSettings(crop=reading.crop and not args.whole_scan, radius_mm=args.crop_radius or reading.radius_mm,
                              samplings=args.samplings, candidates=args.candidates)
    scans = scan_list(args.scans, args.list)
    results = predict(scans, args.checkpoint, args.output, fmt=args.format, picture=not args.no_picture,
                      device=args.device, html=args.html, unit=args.unit, locating=locating,
                      keep_no_face=args.keep_no_face, shard=args.shard, progress=not args.quiet,
                      refine=args.refine)
    failed = [r for r in results if "error" in r]
    for r in results:
        if "error" in r:
            print(f"{r['scan']}: error: {r['error']}")
            continue
        trust = (f" (likely error {r['mean_confidence']:.1f} {args.unit} on average, face score {r['face_score']:.2f}"
                 f"{': NO FACE, kept as asked' if r.get('no_face') else ''})" if "face_score" in r else "")
        done = " (done before, skipped)" if r.get("status") == "done before" else ""
        kept = (f"; {len(r['not_refined'])} kept coarse: {', '.join(r['not_refined'])}"
                if r.get("not_refined") else "")
        print(f"{r['scan']}: {r['landmarks']}{trust}{done}{kept}")
    print(json.dumps({"predicted": len(results) - len(failed), "failed": len(failed), "results": results}))
    return 1 if failed else 0


def _finetune(args: argparse.Namespace) -> int:
    from .atlas import AtlasSettings
    from .finetune import atlas_finetune, finetune
    from .inference import ReadSettings

    if args.method == "atlas":
        if args.voters < 0:
            raise ValueError(f"--voters must be 0 (all) or more, got {args.voters}")
        if args.keep or args.whole_scan or args.freeze:
            raise ValueError("--keep, --whole-scan and --freeze belong to --method network (atlas keeps the model's "
                             "own landmarks and reads scans as the model does)")
        summary = atlas_finetune(args.data, args.output, checkpoint=args.checkpoint, names=args.landmark_names,
                                 landmarks_file=args.landmarks_file, unit=args.unit, samplings=args.samplings,
                                 settings=AtlasSettings(nearest=args.voters), seed=args.seed, progress=not args.quiet)
        print(f"{summary['checkpoint']}: the model's own landmarks and {len(summary['landmarks'])} of yours from "
              f"{summary['training_scans']} annotated scans ({summary['seconds'] / 60:.1f} min); use it with: "
              f"se3unet predict --checkpoint {summary['checkpoint']} SCANS")
        print(json.dumps(summary))
        return 0
    if args.unit != "mm":
        raise ValueError("--unit belongs to --method atlas; --method network takes --mm-per-unit")

    reading = ReadSettings(crop=not args.whole_scan, radius_mm=args.crop_radius)
    summary = finetune(args.data, args.output, checkpoint=args.checkpoint, keep=args.keep, steps=args.steps,
                       freeze=args.freeze, new_landmarks=args.new_landmarks, names=args.landmark_names,
                       landmarks_file=args.landmarks_file, mm_per_unit=args.mm_per_unit, reading=reading, lr=args.lr,
                       batch_size=args.batch_size, seed=args.seed, workers=args.workers, progress=not args.quiet,
                       overrides=args.set)
    print(f"{summary['checkpoint']}: {len(summary['landmarks'])} landmarks "
          f"({len(summary['added']) if args.keep else len(summary['landmarks'])} learned from "
          f"{summary['training_scans']} scans in {summary['steps']} steps, {summary['seconds'] / 60:.1f} min); "
          f"use it with: se3unet predict --checkpoint {summary['checkpoint']} SCANS")
    print(json.dumps(summary))
    return 0


def _convert_checkpoint(args: argparse.Namespace) -> int:
    from .inference import convert_legacy

    checkpoint = convert_legacy(args.old, args.new)
    if args.inference_only:
        checkpoint.without_resume().save(args.new)
    print(f"{args.new}: checkpoint version 2 ({'inference only' if args.inference_only or checkpoint.resume is None else 'with training state'})")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .inference.checkpoint import export_inference

    checkpoint = export_inference(args.checkpoint, args.output)
    size = os.path.getsize(args.output) / 1e6
    print(f"{args.output}: inference only, {len(checkpoint.inference.landmark_names)} landmarks, {size:.1f} MB")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    summary = run_demo(args.output, sfm_dir=args.sfm_dir, subjects=args.subjects, points=args.points,
                       epochs=args.epochs, seed=args.seed, progress=not args.quiet, overrides=args.set)
    print(json.dumps(summary))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="se3unet", description="Facial landmarks on 3D face scans in any pose, "
                                     "with an SE(3)-equivariant point-cloud U-Net. README.md shows the workflow.")
    parser.add_argument("--version", action="version", version=f"se3unet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    from .choices import literal_values
    from .data.prepare import PrepareConfig
    from .data.preprocess import ScannerEffects
    from .atlas import AtlasSettings
    from .finetune import METHODS
    from .predict import UNITS
    from .data.landmark_files import WRITTEN_FORMATS

    Help = argparse.ArgumentDefaultsHelpFormatter  # every command's --help shows its defaults

    verify = commands.add_parser("verify", help="check every layer's SE(3) equivariance and time it", formatter_class=Help)
    verify.add_argument("--preset", help="also check the whole model of this preset "
                        "(default, report-v1, original; the original is expected to fail)")
    verify.add_argument("--model-points", type=int, default=1024, help="points of the model check's cloud")
    verify.add_argument("--degrees", type=int, nargs="+", help="feature degrees (default: the preset's, or 0 1 2)")
    verify.add_argument("--channels", type=int, default=8, help="channels per degree")
    verify.add_argument("--points", type=int, default=256, help="points per cloud")
    verify.add_argument("--neighbours", "-k", type=int, default=16, help="kNN neighbours")
    verify.add_argument("--heads", type=int, default=2, help="attention heads")
    verify.add_argument("--batch", type=int, default=2, help="clouds per batch")
    verify.add_argument("--seed", type=int, default=0, help="seed of the random clouds, weights and motions")
    verify.add_argument("--device", default="cpu", help="cpu, cuda or auto (TF32 stays off on a GPU)")
    verify.add_argument("--json", action="store_true", help="end with one JSON line of every figure")
    verify.set_defaults(run=_verify)

    prep = commands.add_parser("prepare", help="preprocess a data source into cached train/val/test splits",
                               formatter_class=Help)
    default, effects = PrepareConfig(), ScannerEffects()
    prep.add_argument("--source", choices=literal_values(typing.get_type_hints(PrepareConfig)["source"]),
                      default=default.source)
    prep.add_argument("--path", "--sfm-dir", dest="path",
                      help="SFM folder (sfm, mixed; default $SE3UNET_SFM_DIR), ICT folder (ict; default "
                           "$SE3UNET_ICT_DIR), FaceScape root, archive file or scan folder")
    prep.add_argument("--ict-dir", help="mixed, --surround-kind ict: the ICT Face Model folder (default $SE3UNET_ICT_DIR)")
    prep.add_argument("--region", choices=literal_values(typing.get_type_hints(PrepareConfig)["region"]),
                      default=default.region,
                      help="ICT: the face's triangles (as FaceScape's face crops) or the whole head with ears and neck")
    prep.add_argument("--landmark-indices", help="FaceScape: the toolkit's landmark_indices.npz")
    prep.add_argument("--subjects", type=int, default=default.subjects,
                      help="SFM / ICT: random identities (mixed: of each model)")
    prep.add_argument("--expressions", type=int, default=default.expressions,
                      help="SFM / ICT: scans per identity (first neutral)")
    prep.add_argument("--facescape-expressions", nargs="+", default=list(default.facescape_expressions),
                      help="FaceScape: expressions to read")
    prep.add_argument("--crop-radius", type=float, default=default.crop_radius,
                      help="FaceScape: crop around the nose tip, mm")
    prep.add_argument("--mm-per-unit", type=float, default=default.mm_per_unit, help="folder: millimetres per file unit")
    prep.add_argument("--landmark-names", nargs="+",
                      help="folder: the landmark set (default: every name in the files); files naming others are "
                           "refused, files without names (LM1, ...) take these names in order")
    prep.add_argument("--landmarks", dest="landmarks_file",
                      help="folder: a TPS file holding every scan's landmarks, matched by ID= to the scan's stem "
                           "(default: the .tps files at the folder's top)")
    prep.add_argument("--samples", type=int, default=default.samples, help="surface samples per mesh")
    prep.add_argument("--points", type=int, default=default.points, help="points kept by farthest point sampling")
    prep.add_argument("--val", type=float, default=default.val, help="validation subjects: fraction (< 1) or count")
    prep.add_argument("--test", type=float, default=default.test, help="test subjects: fraction (< 1) or count")
    prep.add_argument("--seed", type=int, default=default.seed, help="seed of identities, sampling and splits")
    prep.add_argument("--noise", type=float, default=effects.noise, help="scanner noise, mm (standard deviation)")
    prep.add_argument("--holes", type=int, default=effects.holes, help="holes punched per scan")
    prep.add_argument("--hole-radius", type=float, default=effects.hole_radius, help="mm")
    prep.add_argument("--crop", type=float, default=effects.crop,
                      help="drop points farther than this from the centroid, mm (0: none)")
    prep.add_argument("--outliers", type=float, default=effects.outliers, help="fraction of points replaced by junk")
    prep.add_argument("--fov", type=float, default=effects.fov,
                      help="probability of a field-of-view crop around the face centre, radius in [fov-min, fov-max]")
    prep.add_argument("--fov-min", type=float, default=effects.fov_min, help="mm")
    prep.add_argument("--fov-max", type=float, default=effects.fov_max, help="mm")
    prep.add_argument("--view", type=float, default=effects.view,
                      help="probability of a single-view scan: points facing away from a view direction dropped")
    prep.add_argument("--view-cone", type=float, default=effects.view_cone,
                      help="degrees around the front within which the view direction is drawn")
    prep.add_argument("--density", type=float, default=effects.density,
                      help="probability of an uneven point density across the scan")
    prep.add_argument("--density-low", type=float, default=effects.density_low,
                      help="the sparsest side keeps this fraction of its points")
    prep.add_argument("--surround", type=float, default=default.surround,
                      help="share of face meshes given a synthetic skull cap and neck (never ICT whole heads): "
                           "teaches a model what predict's face crop holds in a whole-head scan")
    prep.add_argument("--surround-kind", choices=literal_values(typing.get_type_hints(PrepareConfig)["surround_kind"]),
                      default=default.surround_kind,
                      help="what --surround adds: a synthetic cap and neck, or a random ICT head's own skull, ears "
                           "and neck fitted to the face by its landmarks (needs the ICT Face Model)")
    prep.add_argument("--face-crop", type=float, default=default.face_crop,
                      help="mm: sample only a sphere this large around the nose tip (jittered), as predict crops a "
                           "face it found (0: the whole scan; predict's --crop-radius is 120)")
    prep.add_argument("--face-crop-share", type=float, default=default.face_crop_share,
                      help="share of the scans --face-crop crops (the rest whole, as a model reads a scan in one pass)")
    prep.add_argument("--surround-twin", action="store_true",
                      help="the same scans as with --surround (every draw the same), each face kept alone: the twin "
                           "cache that train's data.twin_cache pairs with it for loss.consistency")
    prep.add_argument("--cache-dir", default="cache", help="where caches live (one folder per configuration)")
    prep.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")
    prep.add_argument("--quiet", action="store_true", help="no progress bar")
    prep.set_defaults(run=_prepare)

    tr = commands.add_parser("train", help="train a model on a prepared cache (works under torchrun)", formatter_class=Help)
    tr.add_argument("--config", help="YAML experiment config (configs/*.yaml); defaults without one")
    tr.add_argument("--set", nargs="*", default=[], metavar="SECTION.FIELD=VALUE",
                    help="override any config field, e.g. data.cache=cache/sfm-... optim.lr=1e-3 model.channels=[8,16]")
    tr.add_argument("--resume", action="store_true", help="continue from run.output/last.pt if it exists")
    tr.add_argument("--quiet", action="store_true", help="no progress bars")
    tr.set_defaults(run=_train)

    ev = commands.add_parser("evaluate", help="the report's test matrix on a prepared split", formatter_class=Help)
    ev.add_argument("--checkpoint", help="a checkpoint written by train (default: the shipped model)")
    ev.add_argument("--cache", required=True, help="a prepared cache folder")
    ev.add_argument("--output", default="reports/evaluation", help="report folder")
    ev.add_argument("--split", default="test", choices=["train", "val", "test"], help="split to evaluate")
    ev.add_argument("--preprocessing", nargs="+", default=["none", "icp", "raw"], choices=["none", "icp", "raw"],
                    help="none: canonical pose; icp: realigned after the motion; raw: as moved")
    ev.add_argument("--perturbations", nargs="+", default=["rotation", "translation", "both"],
                    choices=["rotation", "translation", "both"])
    ev.add_argument("--translation", type=float, default=1.0, help="largest translation, unit-sphere units")
    ev.add_argument("--baseline", nargs="*", default=["raw / both"],
                    help="conditions that also get the ICP mean-face baseline ('all' for every one)")
    ev.add_argument("--sigma", type=float, help="heatmap width the F1 and IoU are scored against, unit-sphere "
                    "units (default: the model's training sigma)")
    ev.add_argument("--threshold", type=float, help="labels: points whose heatmap reaches this (default: the "
                    "model's training threshold)")
    ev.add_argument("--batch-size", type=int, default=4, help="scans per forward pass")
    ev.add_argument("--limit", type=int, help="evaluate the first n scans only")
    ev.add_argument("--seed", type=int, default=1234, help="seed of the test poses")
    ev.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu or cuda")
    ev.add_argument("--rebuilt", action="store_true",
                    help="score predict's path instead, on the split's scans rebuilt whole from the cache's recipe "
                         "(face models redrawn, files read again; its scanner effects on the dense surface) in random "
                         "poses, without and with the checkpoint's refiner, timed (--limit keeps it short)")
    ev.add_argument("--samplings", type=int, default=32, help="--rebuilt: samplings of predict's face crop")
    ev.add_argument("--no-refine", action="store_true", help="--rebuilt: only predict --no-refine's reading")
    ev.add_argument("--quiet", action="store_true", help="no progress bars")
    ev.set_defaults(run=_evaluate)

    pr = commands.add_parser("predict", help="landmarks for scans in any pose (.obj .ply .stl .off .npy .xyz)", formatter_class=Help)
    pr.add_argument("scans", nargs="*", help="mesh or point-cloud files (in millimetres), or folders of them")
    pr.add_argument("--list", help="a text file naming one scan per line (as a scheduler's job list)")
    pr.add_argument("--shard", help="K/N: only the K-th of N equal shares of the scans (K from 1), for job arrays")
    pr.add_argument("--quiet", action="store_true", help="no progress bar")
    pr.add_argument("--checkpoint", help="a checkpoint written by train (default: the shipped model)")
    pr.add_argument("--output", default="predictions", help="folder for landmark files and pictures")
    pr.add_argument("--format", choices=list(WRITTEN_FORMATS), default="csv",
                    help="landmark files: csv, json, 3D Slicer (mrk.json, fcsv; LPS), TPS (also one landmarks.tps "
                         "for all), menpo ljson, IDAV pts")
    pr.add_argument("--no-picture", action="store_true", help="skip the picture of each scan (faster)")
    pr.add_argument("--unit", default="mm", choices=list(UNITS),
                    help="the scans' unit: a scan implausibly large or small in it is refused, naming the likely unit")
    pr.add_argument("--html", action="store_true",
                    help="a page per scan to turn around in a browser (offline), and index.html for several")
    pr.add_argument("--samplings", type=int, default=32,
                    help="sample the face this many times and average the landmarks (1: fastest)")
    pr.add_argument("--crop-radius", type=float,
                    help="mm: the face is read as a sphere this large around the nose tip found (default: the "
                         "checkpoint's, 120 for the shipped model)")
    pr.add_argument("--candidates", type=int, default=16,
                    help="face-sized crops tried when the face is a small part of the scan (a head, shoulders)")
    pr.add_argument("--whole-scan", action="store_true",
                    help="one pass over the whole scan, no crop (as the model was trained; loses a face that is a "
                         "small part of the scan)")
    pr.add_argument("--refine", action="store_true",
                    help="read the landmarks again in small dense crops with the checkpoint's refiner (the shipped "
                         "model has one): 0.03-0.15 mm better on unseen faces, about 2.5 s more a scan; not yet the "
                         "default (the brows of ICT faces got 0.05 mm worse)")
    pr.add_argument("--keep-no-face", action="store_true",
                    help="write landmarks for scans that do not look like a face too (they count as failed otherwise)")
    pr.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu or cuda")
    pr.set_defaults(run=_predict)

    ft = commands.add_parser("finetune", formatter_class=Help,
                             help="a model for your landmarks from a few annotated scans (atlas transfer, or fine-tuning)")
    ft.add_argument("data", help="a folder of scans with landmark files beside them (<stem>.mrk.json, .fcsv, .ljson, "
                                 ".pts, .landmarks.csv/json/txt/npy) or a .tps file at its top (ID= the scan's stem)")
    ft.add_argument("--output", default="runs/finetune", help="folder for the cache, the run and model.pt")
    ft.add_argument("--method", choices=METHODS, default="atlas",
                    help="atlas: no training; the annotated scans are registered onto each new scan, brought there by "
                         "the model's 68 landmarks (14 head and ear landmarks learned from 20 heads: 2.8 mm, where "
                         "network reached 8.4; docs/your-landmarks.md); network: train the model's head and backbone on them")
    ft.add_argument("--unit", default="mm", choices=list(UNITS),
                    help="atlas: the unit of the scans and landmark files")
    ft.add_argument("--samplings", type=int, default=8,
                    help="atlas: samplings of the model's crop for its 68 landmarks on the annotated scans")
    ft.add_argument("--voters", type=int, default=AtlasSettings.nearest,
                    help="atlas: how many annotated scans vote on a new one, those whose 68 fit its 68 best (0: all); "
                         "predict's time grows with it (about 0.35 s each)")
    ft.add_argument("--checkpoint", help="the model to start from (default: the shipped model)")
    ft.add_argument("--keep", action="store_true",
                    help="keep the model's own landmarks beside yours (files need not carry them)")
    ft.add_argument("--steps", type=int, default=300, help="optimizer steps (a fixed number, whatever the machine)")
    ft.add_argument("--freeze", choices=["none", "backbone"],
                    help="backbone: train the head alone (default with --keep, where it keeps the model's own "
                         "landmarks exactly; else none)")
    ft.add_argument("--new-landmarks", choices=["fresh", "nearest"], default="fresh",
                    help="how outputs for your landmarks start: freshly drawn, or as the model's nearest landmark's")
    ft.add_argument("--landmark-names", nargs="+",
                    help="the landmark set (default: every name in the files); files without names take these in order")
    ft.add_argument("--landmarks", dest="landmarks_file", help="a TPS file with every scan's landmarks")
    ft.add_argument("--mm-per-unit", type=float, default=1.0, help="millimetres per unit of the files")
    ft.add_argument("--whole-scan", action="store_true",
                    help="the model reads whole scans (landmarks far from the face: ears, the back of the head); "
                         "recorded in the checkpoint for predict")
    ft.add_argument("--crop-radius", type=float, default=120.0,
                    help="mm: predict reads a sphere this large around the nose tip found (recorded in the checkpoint)")
    ft.add_argument("--lr", type=float, default=3e-3,
                    help="learning rate (3e-3: 9.3 mm where 1e-3 gave 11.4, docs/your-landmarks.md)")
    ft.add_argument("--batch-size", type=int, default=4, help="scans per step")
    ft.add_argument("--seed", type=int, default=0, help="seed of the poses, scanner effects and batch order")
    ft.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes preparing the scans")
    ft.add_argument("--set", nargs="*", default=[], metavar="SECTION.FIELD=VALUE", help="override training fields")
    ft.add_argument("--quiet", action="store_true", help="no progress bars")
    ft.set_defaults(run=_finetune)

    convert = commands.add_parser("convert-checkpoint", formatter_class=Help,
                                  help="rewrite a checkpoint of se3unet < 0.2 in today's format (unpickles it: "
                                       "only for files you trust)")
    convert.add_argument("old", help="checkpoint written by se3unet < 0.2")
    convert.add_argument("new", help="where to write the converted checkpoint")
    convert.add_argument("--inference-only", action="store_true", help="leave out the optimizer state (to ship)")
    convert.set_defaults(run=_convert_checkpoint)

    export = commands.add_parser("export", formatter_class=Help,
                                 help="write the inference part of a checkpoint (no optimizer state): the file to share")
    export.add_argument("checkpoint", help="a checkpoint written by train")
    export.add_argument("output", help="where to write it")
    export.set_defaults(run=_export)

    demo = commands.add_parser("demo", help="prepare Surrey Face Model faces, train, evaluate in random poses", formatter_class=Help)
    demo.add_argument("--sfm-dir", help="Surrey Face Model folder (default $SE3UNET_SFM_DIR)")
    demo.add_argument("--output", default="runs/demo", help="folder for the cache, the run and the report")
    demo.add_argument("--subjects", type=int, default=300, help="random SFM identities")
    demo.add_argument("--points", type=int, default=512, help="points per scan after FPS")
    demo.add_argument("--epochs", type=int, default=8, help="training epochs: a fixed number of optimizer steps, "
                                                            "whatever the machine's speed")
    demo.add_argument("--seed", type=int, default=0, help="the training's seed (weights, poses, batch order)")
    demo.add_argument("--set", nargs="*", default=[], metavar="SECTION.FIELD=VALUE",
                      help="override experiment fields, as for train")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(run=_demo)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings to a user read as the tool's own messages, not as source locations."""
    print(f"se3unet: warning: {message}", file=sys.stderr if file is None else file)


def main(argv: Optional[List[str]] = None) -> int:
    import warnings

    from .data.errors import DataWarning

    args = build_parser().parse_args(argv)
    warnings.showwarning = _show_warning
    warnings.simplefilter("always", DataWarning)  # one per file, not one per run
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as error:  # DataError is a ValueError
        print(f"se3unet {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # what was written stays whole (files are renamed into place); runs resume
        print(f"se3unet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
