"""Predict's path with and without the refiner (issue 37), on rebuilt scans of unseen identities
(seed 777; 555 to choose what to refine) in random poses: Surrey faces, ICT faces and ICT whole heads as meshes; with
--effects the training data's scanner effects act on the dense surface (a cloud of 2 points per
mm^2, as a scanner gives: holes, field of view, single views, uneven density, 0.3 mm noise);
--variant subdivided re-meshes each scan (every triangle split in four, so the truth landmarks
are no longer the only vertices there), --variant cloud hands predict a dense cloud without
normals (estimated). Both readings of a scan come from one coarse pass, timed per stage.

    python experiments/refine_eval.py --identities 12 --samplings 32 --output experiments/results/refiner/eval.json
"""

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).parent))
from confidence import faces  # noqa: E402

from se3unet.atomic import write_text_atomically  # noqa: E402
from se3unet.data.crops import dense_surface  # noqa: E402
from se3unet.data.io import Surface  # noqa: E402
from se3unet.data.preprocess import ScannerEffects  # noqa: E402
from se3unet.evaluate.rebuilt import IBUG_GROUPS, random_pose  # noqa: E402
from se3unet.inference import load_model  # noqa: E402
from se3unet.locate import LandmarkReader, LocateSettings, locate  # noqa: E402
from se3unet.predict import surface_input  # noqa: E402
from se3unet.pretrained import pretrained_path  # noqa: E402
from se3unet.refine import Refiner, refiner_path  # noqa: E402

EFFECTS = ScannerEffects(noise=0.3, holes=1, fov=0.7, view=0.3, density=0.3)
GROUPS = IBUG_GROUPS  # jaw, brows, nose, eyes, mouth (continue_table.py reads them here)


def rebuilt(surface: Surface, truth: np.ndarray, effects: bool, variant: str, rng: np.random.Generator) -> Surface:
    if variant == "subdivided":
        import trimesh

        mesh = trimesh.Trimesh(surface.vertices, surface.triangles, process=False).subdivide()
        surface = Surface(np.asarray(mesh.vertices), np.asarray(mesh.faces))
    if not effects and variant != "cloud":
        return surface
    points, normals = dense_surface(surface.vertices, surface.triangles, 2.0, rng)
    if effects:
        with np.errstate(invalid="ignore"):
            points = EFFECTS.apply(points, normals, rng, centre=np.nanmean(truth, axis=0))[0]
    return Surface(points)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--identities", type=int, default=12, help="of each kind")
    parser.add_argument("--samplings", type=int, nargs="+", default=[32], help="coarse samplings to compare")
    parser.add_argument("--refine-samplings", type=int, nargs="+", default=[1])
    parser.add_argument("--effects", action="store_true")
    parser.add_argument("--variant", choices=["mesh", "subdivided", "cloud"], default="mesh")
    parser.add_argument("--refiner", help="a refiner file (default: the shipped model's)")
    parser.add_argument("--checkpoint", help="coarse model (default: the shipped one); another model is read "
                                             "coarse only, as predict reads it (refiners belong to their weights), "
                                             "unless --refiner is given")
    parser.add_argument("--seed", type=int, default=777, help="identities and poses (555: choosing, 777: measuring)")
    parser.add_argument("--all-landmarks", action="store_true", help="refine every landmark, not the file's choice")
    parser.add_argument("--kinds", nargs="+", default=["sfm-face", "ict-face", "ict-head"])
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    model, checkpoint = load_model(args.checkpoint or pretrained_path())
    read = LandmarkReader(model, checkpoint.inference, torch.device("cpu"))
    # Another checkpoint is read coarse unless --refiner names a refiner to try on it anyway.
    refiner = (Refiner.load(args.refiner) if args.refiner else
               None if args.checkpoint else Refiner.load(refiner_path(pretrained_path())))
    if args.all_landmarks and refiner is not None:
        refiner.settings = replace(refiner.settings, blend=None)
    names = checkpoint.inference.landmark_names
    rng = np.random.default_rng(args.seed)
    rows = []
    scans = [f for f in faces(args.seed, args.identities, names) if f[0] in args.kinds]
    for kind, surface, truth in tqdm(scans, desc="scans"):
        rotation, shift = random_pose(rng)
        scan = rebuilt(surface, truth, args.effects, args.variant, rng)
        moved = Surface(scan.vertices @ rotation.T + shift, scan.triangles)
        truth_moved = truth @ rotation.T + shift
        row = {"kind": kind}
        for samplings in args.samplings:
            start = time.perf_counter()
            first = surface_input(moved, Path(kind), checkpoint.inference.scan)
            coarse = locate(moved, Path(kind), first, read, LocateSettings(samplings=samplings))
            row[f"coarse-{samplings}"] = np.linalg.norm(coarse - truth_moved, axis=1).tolist()
            row[f"vectors-coarse-{samplings}"] = ((coarse - truth_moved) @ rotation).tolist()  # the face's frame
            row[f"seconds-coarse-{samplings}"] = time.perf_counter() - start
            for rounds in args.refine_samplings if refiner is not None else []:
                start = time.perf_counter()
                refined = refiner(moved, coarse, names, samplings=rounds)
                key = f"refined-{samplings}x{rounds}"
                row[key] = np.linalg.norm(refined.landmarks - truth_moved, axis=1).tolist()
                row[f"vectors-{key}"] = ((refined.landmarks - truth_moved) @ rotation).tolist()
                row[f"seconds-{key}"] = time.perf_counter() - start
                row[f"kept-{key}"] = int((refined.kept & np.isfinite(truth).all(1)).sum())
        rows.append(row)
    write_text_atomically(Path(args.output), json.dumps({"args": vars(args), "rows": rows}))
    summarise(rows)


def summarise(rows) -> None:
    keys = [k for k in rows[0] if k.startswith(("coarse-", "refined-"))]
    for kind in dict.fromkeys(r["kind"] for r in rows):
        mine = [r for r in rows if r["kind"] == kind]
        for key in keys:
            errors = np.array([r[key] for r in mine], dtype=float)
            per = np.nanmean(errors, axis=0)
            groups = " ".join(f"{g} {np.nanmean(per[list(i)]):.2f}" for g, i in GROUPS.items())
            seconds = np.mean([r.get(f"seconds-{key}", 0) for r in mine])
            if key.startswith("refined"):
                seconds += np.mean([r[f"seconds-coarse-{key.split('-')[1].split('x')[0]}"] for r in mine])
            kept = sum(r.get(f"kept-{key}", 0) for r in mine)
            print(f"{kind:9s} {key:14s} {np.nanmean(errors):.2f} mm (worst landmark {np.nanmax(per):.2f}) {groups} "
                  f"| {seconds:.1f} s/scan" + (f" | {kept} kept coarse" if key.startswith("refined") else ""))


if __name__ == "__main__":
    main()
