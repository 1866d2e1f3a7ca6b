"""The shipped model's landmark confidence and "no face here" threshold (issue 39): made on scans
of seed 555 (neither training's seeds nor evaluation's 777), measured on seed 777.

    # 1. single readings: evaluate (raw / both) on seed-555 caches of the six evaluation sets
    bash experiments/confidence.sh          # runs every step below and writes the results
    # or step by step:
    python experiments/confidence.py readings --seed 555 --identities 12 --output runs/confidence/readings-555.npz
    python experiments/confidence.py shapes --set choice --output runs/confidence/shapes-choice.npz
    python experiments/confidence.py fit --one-pass runs/confidence/cal-*/predictions.npz \\
        --readings runs/confidence/readings-555.npz --shapes runs/confidence/shapes-choice.npz
    python experiments/confidence.py measure ...

``readings`` runs predict's path (se3unet.locate: the face found, cropped, 32 samplings averaged)
on ICT faces, ICT whole heads and Surrey faces in random poses and keeps, per scan, every
reading's per-landmark vote spreads and the errors of the averaged landmarks; ``shapes`` does the
same for shapes that are not faces (spheres and cubes to choose the threshold on; planes,
cylinders, a torso-like blob and random clouds to test it, 150-400 mm across); ``fit`` writes
src/se3unet/pretrained/face68.confidence.json; ``measure`` prints the figures of
docs/inference.md and draws docs/images/confidence.png.
"""

import argparse
import json
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
import trimesh
from tqdm import tqdm

from se3unet.data.errors import DataError
from se3unet.data.ict import IctFaceModel
from se3unet.data.io import Surface
from se3unet.data.sfm import SurreyFaceModel
from se3unet.data.sources import IctFaceSource, SurreyFaceSource
from se3unet.evaluate.metrics import confidence_statistics
from se3unet.evaluate.rebuilt import random_pose
from se3unet.inference import load_model
from se3unet.inference.confidence import Calibration, ConfidenceModel, confidence_path, file_sha256
from se3unet.locate import LandmarkReader, LocateSettings, locate_readings
from se3unet.predict import averaged_signal, surface_input
from se3unet.pretrained import pretrained_path


def posed(surface: Surface, rng: np.random.Generator):
    rotation, shift = random_pose(rng)
    return Surface(surface.vertices @ rotation.T + shift, surface.triangles), rotation, shift


def read_scan(read: LandmarkReader, surface: Surface, rng: np.random.Generator):
    """Predict's path on the surface in a random pose: the landmarks in the surface's own frame,
    every reading's per-landmark uncertainty (mm) [R, K] (the first two the whole scan's and the
    search's best, the rest the final samplings') and the samplings' disagreement [K]."""
    moved, rotation, shift = posed(surface, rng)
    first = surface_input(moved, Path("scan"), read.inference.scan)
    located = locate_readings(moved, Path("scan"), first, read, LocateSettings())
    landmarks = (located.landmarks - shift) @ rotation
    return landmarks, np.stack([r.uncertainty for r in located.readings]), located.disagreement


def faces(seed: int, identities: int, names: List[str]):
    """(kind, surface, truth [K, 3] with NaN for landmarks the face model does not define)."""
    ict = IctFaceModel()
    for region in ("face", "head"):
        source = IctFaceSource(ict, identities, seed=seed, region=region)
        for s in range(identities):
            raw = source.load((s, 0))
            yield f"ict-{region}", raw.surface, raw.landmarks
    sfm = SurreyFaceSource(SurreyFaceModel(), identities, seed=seed)
    shared = [names.index(n) for n in sfm.landmark_names]
    for s in range(identities):
        raw = sfm.load((s, 0))
        truth = np.full((len(names), 3), np.nan)
        truth[shared] = raw.landmarks
        yield "sfm-face", raw.surface, truth


def shapes(which: str, rng: np.random.Generator):
    """(kind, surface): shapes 150-400 mm across that are not faces."""
    for size in (150.0, 250.0, 400.0):
        if which == "choice":
            yield f"sphere {size:.0f}", trimesh.creation.icosphere(5, radius=size / 2)
            yield f"cube {size:.0f}", trimesh.creation.box([size] * 3).subdivide().subdivide().subdivide()
            continue
        plane = trimesh.creation.box([size, size * 0.8, 1.0]).subdivide().subdivide().subdivide()
        yield f"plane {size:.0f}", plane
        yield f"cylinder {size:.0f}", trimesh.creation.cylinder(radius=size / 4, height=size, sections=96).subdivide()
        body = trimesh.creation.icosphere(4, radius=1.0)
        body.apply_scale([size / 2, size / 3, size / 5])
        neck = trimesh.creation.cylinder(radius=size / 10, height=size / 3, sections=48)
        neck.apply_translation([0, 0, 0])
        neck.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0]))
        neck.apply_translation([size / 2, 0, 0])
        yield f"torso {size:.0f}", trimesh.util.concatenate([body, neck])
        cloud = rng.uniform(-size / 2, size / 2, (8192, 3))
        yield f"random cloud {size:.0f}", cloud


def _surface(shape) -> Surface:
    if isinstance(shape, np.ndarray):
        return Surface(shape)
    return Surface(np.asarray(shape.vertices, float), np.asarray(shape.faces, np.int64))


def readings_command(args) -> None:
    model, checkpoint = load_model(pretrained_path())
    read = LandmarkReader(model, checkpoint.inference, torch.device("cpu"))
    names = checkpoint.inference.landmark_names
    rng = np.random.default_rng(args.seed)
    kinds, errors, spreads, disagreements = [], [], [], []
    for kind, surface, truth in tqdm(list(faces(args.seed, args.identities, names)), desc="faces"):
        found, reading_spreads, disagreement = read_scan(read, surface, rng)
        kinds.append(kind)
        errors.append(np.linalg.norm(found - truth, axis=1))
        spreads.append(reading_spreads)
        disagreements.append(disagreement)
    save(args.output, kind=np.array(kinds), error_mm=np.stack(errors), uncertainty_mm=np.stack(spreads),
         disagreement_mm=np.stack(disagreements))


def shapes_command(args) -> None:
    model, checkpoint = load_model(pretrained_path())
    read = LandmarkReader(model, checkpoint.inference, torch.device("cpu"))
    rng = np.random.default_rng(1 if args.set == "choice" else 2)
    kinds, spreads, refused = [], [], []
    readings = 2 + LocateSettings().samplings
    for kind, shape in tqdm(list(shapes(args.set, rng)), desc=f"{args.set} shapes"):
        try:
            _, reading_spreads, _ = read_scan(read, _surface(shape), rng)
            refused.append("")
        except DataError as error:  # predict refuses it before any face score (too little surface to crop)
            reading_spreads = np.full((readings, len(checkpoint.inference.landmark_names)), np.inf)
            refused.append(error.problem)
        kinds.append(kind)
        spreads.append(reading_spreads)
    save(args.output, kind=np.array(kinds), uncertainty_mm=np.stack(spreads), refused=np.array(refused))


def save(path: str, **arrays) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def one_pass_data(paths: List[str], condition: str = "raw_both"):
    """Spreads and errors [scans, K] (mm) of evaluate's predictions.npz files, pooled, in the
    shipped model's landmark order; NaN for landmarks a set does not score (a Surrey face's 18)."""
    from se3unet.inference import Checkpoint

    names = list(Checkpoint.load(pretrained_path()).inference.landmark_names)
    spreads, errors = [], []
    for path in paths:
        with np.load(path) as data:
            columns = [names.index(str(n)) for n in data["landmark_names"]]
            spread = np.full((len(data[f"{condition}.uncertainty_mm"]), len(names)), np.nan)
            error = spread.copy()
            spread[:, columns] = data[f"{condition}.uncertainty_mm"]
            error[:, columns] = np.linalg.norm(data[f"{condition}.predicted_mm"] - data[f"{condition}.true_mm"], axis=-1)
        spreads.append(spread)
        errors.append(error)
    return np.concatenate(spreads), np.concatenate(errors)


def face_scores(calibration: Calibration, reading_spreads: np.ndarray) -> np.ndarray:
    """Predict's face score of each scan [S] from its readings' spreads [S, R, K]: the lowest of
    the whole scan's, the search's best crop's and the median of the final samplings'."""
    per_reading = calibration.face_score(reading_spreads)  # [S, R]
    return np.minimum(np.minimum(per_reading[:, 0], per_reading[:, 1]), np.median(per_reading[:, 2:], axis=1))


def fit_command(args) -> None:
    signal, one_pass_errors = one_pass_data(args.one_pass)
    one_pass = Calibration.fit(signal, one_pass_errors)
    with np.load(args.readings) as data:
        spreads, errors = data["uncertainty_mm"], data["error_mm"]
        averaged = Calibration.fit(averaged_signal(spreads[:, 2:].mean(1), data["disagreement_mm"]), errors)
        face = face_scores(one_pass, spreads)  # faces as predict reads them: found, cropped
    with np.load(args.shapes) as data:
        shape = face_scores(one_pass, data["uncertainty_mm"])
        shape_one_pass = one_pass.face_score(data["uncertainty_mm"][:, 0])  # the whole scan's reading
        shape_kinds = list(data["kind"])
    # Midway (geometrically) between the least face-like face and the most face-like shape, for
    # predict's readings and, separately, for single readings of whole scans (--whole-scan: a
    # head in one pass looks less like a face than its crop does).
    threshold = float(np.sqrt(face.max() * shape.min()))
    single = one_pass.face_score(signal)
    threshold_one_pass = float(np.sqrt(single.max() * shape_one_pass.min()))
    checkpoint = Path(args.checkpoint or pretrained_path())
    ConfidenceModel(file_sha256(checkpoint), one_pass, averaged, threshold, threshold_one_pass,
                    made_by="bash experiments/confidence.sh").save(confidence_path(checkpoint))
    print(f"one pass: {len(signal)} readings; averaged: {len(errors)} scans; predict's face scores of faces at "
          f"most {face.max():.2f}, of the choice shapes at least {shape.min():.1f} "
          f"({', '.join(f'{k} {s:.1f}' for k, s in zip(shape_kinds, shape))}): threshold {threshold:.2f}; "
          f"single readings of faces and heads at most {single.max():.2f}, of the shapes at least "
          f"{shape_one_pass.min():.1f}: threshold {threshold_one_pass:.2f}")
    print(f"wrote {confidence_path(checkpoint)}")


def statistics_line(name: str, stats: Dict[str, object]) -> str:
    return (f"| {name} | {stats['spearman']:.2f} | {stats['spearman_within_landmarks']:.2f} | "
            f"{stats['error_all_mm']:.2f} | {stats['error_most_confident_90_mm']:.2f} | "
            f"{1 - stats['error_most_confident_90_mm'] / stats['error_all_mm']:.0%} | "
            f"{max(abs(d['error_mm'] / d['confidence_mm'] - 1) for d in stats['deciles']):.0%} |")


def measure_command(args) -> None:
    from se3unet.inference.confidence import confidence_for
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trust = confidence_for(pretrained_path())
    rows, curves = [], {}
    print("| set | Spearman, all | Spearman, within landmarks | mean error mm | 90% most confident mm | gain | "
          "worst decile off |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    all_confidence, all_errors = [], []
    for path in args.one_pass:
        spreads, errors = one_pass_data([path])
        confidence = trust.one_pass(spreads)
        all_confidence.append(confidence)
        all_errors.append(errors)
        stats = confidence_statistics(confidence, errors)
        print(statistics_line(f"one pass, {Path(path).stem}", stats))
    pooled = confidence_statistics(np.concatenate(all_confidence), np.concatenate(all_errors))
    print(statistics_line("one pass, all six sets", pooled))
    curves["one pass, 720 scans of 6 sets"] = pooled["deciles"]
    with np.load(args.readings) as data:
        spreads, errors, kinds = data["uncertainty_mm"], data["error_mm"], data["kind"]
        averaged = trust.averaged(averaged_signal(spreads[:, 2:].mean(1), data["disagreement_mm"]))
        face = face_scores(trust.one_pass, spreads)
    for kind in sorted(set(kinds)):
        print(statistics_line(f"predict, {kind}", confidence_statistics(averaged[kinds == kind], errors[kinds == kind])))
    stats = confidence_statistics(averaged, errors)
    print(statistics_line(f"predict, all {len(errors)} scans", stats))
    curves[f"predict, {len(errors)} scans"] = stats["deciles"]
    with np.load(args.shapes) as data:
        shape = face_scores(trust.one_pass, data["uncertainty_mm"])
        shape_one_pass = trust.one_pass.face_score(data["uncertainty_mm"][:, 0])
        shape_kinds = [f"{k} (refused: {r})" if r else str(k) for k, r in zip(data["kind"], data["refused"])]
    one_pass_scores = [trust.one_pass.face_score(one_pass_data([p])[0]) for p in args.one_pass]
    scores = np.concatenate(one_pass_scores)
    print(f"no face, predict (threshold {trust.no_face_score:.2f}): test shapes flagged "
          f"{int((shape > trust.no_face_score).sum())} of {len(shape)} ("
          f"{', '.join(f'{k} {s:.1f}' for k, s in zip(shape_kinds, shape))}); seed-777 faces and heads flagged "
          f"{int((face > trust.no_face_score).sum())} of {len(face)} (highest {face.max():.2f})")
    print(f"no face, single readings (--whole-scan, threshold {trust.no_face_score_one_pass:.2f}): the "
          f"{len(scores)} seed-777 scans flagged {int((scores > trust.no_face_score_one_pass).sum())} (highest "
          f"{scores.max():.2f}; {int((scores <= trust.no_face_score).sum())} of them score at most predict's threshold "
          f"in their whole scan's reading alone, the lowest of predict's candidates bounds); test shapes flagged "
          f"{int((shape_one_pass > trust.no_face_score_one_pass).sum())} of {len(shape)}")
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, deciles in curves.items():
        predicted = [d["confidence_mm"] for d in deciles]
        actual = [d["error_mm"] for d in deciles]
        axes[0].plot(predicted, actual, "o-", label=name)
    top = max(max(d["confidence_mm"], d["error_mm"]) for c in curves.values() for d in c) * 1.05
    axes[0].plot([0, top], [0, top], "k--", lw=1, label="perfect calibration")
    axes[0].set(xlabel="predicted error, mean per decile (mm)", ylabel="actual error, mean per decile (mm)",
                title="Calibration by decile of confidence (seed 777)")
    axes[0].legend(fontsize=8)
    bins = np.logspace(np.log10(min(scores.min(), face.min()) * 0.8),
                       np.log10(max(shape[np.isfinite(shape)].max(), 10) * 1.2), 40)
    axes[1].hist(scores, bins=bins, alpha=0.6, label=f"faces and heads, one pass ({len(scores)})")
    axes[1].hist(face, bins=bins, alpha=0.6, label=f"faces and heads, predict ({len(face)})")
    axes[1].hist(shape[np.isfinite(shape)], bins=bins, alpha=0.8,
                 label=f"test shapes, predict ({np.isfinite(shape).sum()}; {(~np.isfinite(shape)).sum()} refused)")
    axes[1].axvline(trust.no_face_score, color="k", ls="--", label="no-face threshold (predict)")
    axes[1].axvline(trust.no_face_score_one_pass, color="k", ls=":", label="no-face threshold (--whole-scan)")
    axes[1].set(xscale="log", xlabel="face score (median uncertainty / typical)", ylabel="scans",
                title="No face here: face scores")
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(args.picture, dpi=110)
    print(f"wrote {args.picture}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    r = commands.add_parser("readings")
    r.add_argument("--seed", type=int, required=True)
    r.add_argument("--identities", type=int, default=12)
    r.add_argument("--output", required=True)
    s = commands.add_parser("shapes")
    s.add_argument("--set", choices=["choice", "test"], required=True)
    s.add_argument("--output", required=True)
    f = commands.add_parser("fit")
    f.add_argument("--one-pass", nargs="+", required=True, help="evaluate's predictions.npz of seed-555 caches")
    f.add_argument("--readings", required=True)
    f.add_argument("--shapes", required=True)
    f.add_argument("--checkpoint")
    m = commands.add_parser("measure")
    m.add_argument("--one-pass", nargs="+", required=True, help="evaluate's predictions.npz of seed-777 caches")
    m.add_argument("--readings", required=True)
    m.add_argument("--shapes", required=True)
    m.add_argument("--picture", default="docs/images/confidence.png")
    args = parser.parse_args()
    {"readings": readings_command, "shapes": shapes_command, "fit": fit_command, "measure": measure_command}[args.command](args)


if __name__ == "__main__":
    main()
