"""Predict's answer scored on scans as a user hands them (`se3unet evaluate --rebuilt`).

A cache holds 2,048 points per scan, sampled and normalised: not what `predict` reads. Here each
scan of a split is rebuilt from the cache's own recipe (its manifest): the face model drawn from
the same seed, or the folder's file read again, in the head `prepare --surround` gave it; the
cache's scanner effects act on the whole surface sampled densely (2 points per mm^2, a cloud as a
scanner gives), not on the cached points; the scan is moved to a random pose; then predict's path
reads it (the face found, cropped, its samplings averaged: se3unet.locate), once without the
refiner (``predict --no-refine``) and once with it when the checkpoint has one, each timed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Union

import numpy as np

from ..data.crops import dense_surface
from ..data.errors import DataError
from ..data.io import Surface
from ..data.prepare import MANIFEST, PrepareConfig, make_source, read_entry, scan_rng, split_entries
from ..data.preprocess import ScannerEffects

# Points per mm^2 of the dense surface the scanner effects act on (a face of about 40,000 mm^2: 80,000 points).
SCAN_DENSITY = 2.0
# Landmark groups of the iBUG-68 scheme, for the table (0-based, as the model names them ibug1..ibug68).
IBUG_GROUPS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48),
               "mouth": range(48, 68)}


@dataclass
class RebuiltScan:
    origin: str  # the file or face-model draw it came from
    surface: Surface  # mm, in the source's frame: a mesh, or a cloud when scanner effects acted on it
    landmarks: np.ndarray  # [K, 3] mm, the cache's landmark order; NaN where undefined


def scanned(surface: Surface, effects: ScannerEffects, rng: np.random.Generator,
            centre: Optional[np.ndarray]) -> Surface:
    """``surface`` as a scanner with ``effects`` gives it: unchanged without effects; else a dense
    cloud of its surface (a cloud is taken as it is) with the effects applied, normals left to
    predict to estimate (as for a scanner's point file)."""
    if not effects.active:
        return surface
    if surface.is_mesh:
        points, normals = dense_surface(surface.vertices, surface.triangles, SCAN_DENSITY, rng)
    else:
        points, normals = surface.vertices, surface.normals
    return Surface(effects.apply(points, normals, rng, centre=centre)[0])


def rebuilt_scans(cache: Union[str, Path], split: str = "test", limit: Optional[int] = None) -> Iterator[RebuiltScan]:
    """The scans of one split of a cache, rebuilt whole from the cache's recipe (module docstring),
    in the order the cache holds them."""
    cache = Path(cache)
    manifest = json.loads((cache / MANIFEST).read_text())
    config = PrepareConfig.from_dict(manifest["config"])
    source = make_source(config)
    jobs = split_entries(config, source.entries())[1][split]
    for entry, number in jobs[:limit]:
        rng = scan_rng(config, number)
        try:
            surface, landmarks = read_entry(source, config, entry, rng)
        except DataError:
            raise
        except Exception as error:  # e.g. a folder's file moved since prepare: name it
            raise DataError(entry.origin, f"cannot be rebuilt ({type(error).__name__}: {error})") from error
        with np.errstate(invalid="ignore"):  # landmarks a face model does not define are NaN
            centre = np.nanmean(landmarks, axis=0)
        effects_rng = np.random.default_rng([config.seed, number, 1])  # apart from prepare's draws
        yield RebuiltScan(entry.origin, scanned(surface, config.scanner, effects_rng, centre), landmarks)


def random_pose(rng: np.random.Generator, shift_mm: float = 100.0):
    """A uniformly random rotation [3, 3] and a shift [3] of about ``shift_mm`` per axis."""
    from scipy.spatial.transform import Rotation

    return Rotation.random(random_state=int(rng.integers(1 << 31))).as_matrix(), rng.normal(0, shift_mm, 3)


def evaluate_rebuilt(checkpoint: Optional[Union[str, Path]], cache: Union[str, Path], output: Union[str, Path],
                     split: str = "test", samplings: int = 32, limit: Optional[int] = None, seed: int = 1234,
                     refine: bool = True, progress: bool = True, device: str = "cpu") -> Dict[str, object]:
    """Predict's landmarks on the split's rebuilt scans in random poses (seeded), without and with
    the checkpoint's refiner; writes table.md, metrics.json, predictions.npz, per_landmark.png and
    ced.png to ``output`` and returns the table and the figures."""
    import torch
    from tqdm import tqdm

    from .. import plots
    from ..inference import choose_device, load_model
    from ..locate import LandmarkReader, LocateSettings, locate
    from ..predict import surface_input
    from ..pretrained import pretrained_path
    from ..refine import refiner_for
    from .metrics import error_statistics
    from .report import LandmarkMatch

    cache, output = Path(cache), Path(output)
    checkpoint = Path(pretrained_path() if checkpoint is None else checkpoint)
    device = choose_device(device)
    model, saved = load_model(checkpoint, device)
    names = saved.inference.landmark_names
    read = LandmarkReader(model, saved.inference, device)
    refiner = refiner_for(checkpoint, device) if refine else None
    manifest = json.loads((cache / MANIFEST).read_text())
    match = LandmarkMatch.between(names, manifest.get("landmark_names"), cache)
    rows = ["predict --no-refine"] + (["predict"] if refiner is not None else [])
    found: Dict[str, List[np.ndarray]] = {row: [] for row in rows}
    seconds: Dict[str, List[float]] = {row: [] for row in rows}
    truths, origins, kept = [], [], 0
    rng = np.random.default_rng(seed)
    scans = rebuilt_scans(cache, split, limit)
    total = min(limit, manifest["sizes"][split]) if limit else manifest["sizes"][split]
    with torch.no_grad():
        for scan in tqdm(scans, total=total, desc="rebuilt scans", unit="scan", disable=not progress):
            rotation, shift = random_pose(rng)
            moved = Surface(scan.surface.vertices @ rotation.T + shift, scan.surface.triangles)
            truth = np.full((len(names), 3), np.nan)
            truth[match.model_columns] = scan.landmarks[match.cache_columns] @ rotation.T + shift
            start = time.perf_counter()
            first = surface_input(moved, Path(scan.origin), saved.inference.scan)
            coarse = locate(moved, Path(scan.origin), first, read, LocateSettings(samplings=samplings))
            coarse_seconds = time.perf_counter() - start
            found[rows[0]].append(coarse)
            seconds[rows[0]].append(coarse_seconds)
            if refiner is not None:
                start = time.perf_counter()
                refined = refiner(moved, coarse, names)
                found["predict"].append(refined.landmarks)
                seconds["predict"].append(coarse_seconds + time.perf_counter() - start)
                kept += int(refined.kept[match.model_columns].sum())
            # back into the source's frame, where the landmarks of every scan can be compared
            truths.append((truth - shift) @ rotation)
            for row in rows:
                found[row][-1] = (found[row][-1] - shift) @ rotation
            origins.append(scan.origin)
    if not origins:
        raise ValueError(f"{cache}: its {split} split holds no scans")
    truth = np.stack(truths)[:, match.model_columns]
    results = {}
    for row in rows:
        predicted = np.stack(found[row])[:, match.model_columns]
        results[row] = {"error": error_statistics(np.linalg.norm(predicted - truth, axis=2)), "seconds_per_scan": float(np.mean(seconds[row]))}
        if row == "predict":
            results[row]["kept_coarse"] = kept
    table = rebuilt_table(results, match.names)
    output.mkdir(parents=True, exist_ok=True)
    plots.per_landmark_errors({row: r["error"]["per_landmark_mm"] for row, r in results.items()}, match.names,
                              output / "per_landmark.png")
    plots.ced_curves({row: r["error"]["ced"] for row, r in results.items()}, output / "ced.png",
                     title="predict on rebuilt scans")
    np.savez(output / "predictions.npz", names=np.array(match.names), origin=np.array(origins), truth=truth,
             **{row.replace(" --", "_").replace("-", "_"): np.stack(found[row])[:, match.model_columns] for row in rows})
    effects = PrepareConfig.from_dict(manifest["config"]).scanner
    described = (f"{len(origins)} scans of the {split} split of {cache}, rebuilt whole"
                 f"{' with its scanner effects on the dense surface' if effects.active else ''}, in random poses "
                 f"(seed {seed}); predict's path with {samplings} samplings; model {checkpoint}")
    report = {"checkpoint": str(checkpoint), "cache": str(cache), "split": split, "scans": len(origins),
              "samplings": samplings, "seed": seed, "landmark_names": match.names, "rows": results}
    (output / "metrics.json").write_text(json.dumps(report, indent=1))
    (output / "table.md").write_text(f"# Predict on rebuilt scans\n\n{described}.\n\n{table}\n\n"
                                     f"Plots: per_landmark.png, ced.png; predictions.npz: every landmark in mm "
                                     f"(predict_no_refine, predict, truth) in the source's frame\n")
    return {"report": str(output), "table": table, "rows": results, "described": described}


def rebuilt_table(results: Dict[str, Dict], names: Sequence[str]) -> str:
    """One row per reading: mean, median and worst landmark in mm, iBUG groups when the names are
    iBUG's, seconds per scan."""
    groups = {g: [names.index(f"ibug{i + 1}") for i in members if f"ibug{i + 1}" in names]
              for g, members in IBUG_GROUPS.items()}
    groups = {g: columns for g, columns in groups.items() if columns}
    head = ["reading", "mean mm", "median mm", "worst landmark mm", *groups, "s / scan"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row, r in results.items():
        per = np.asarray(r["error"]["per_landmark_mm"], dtype=float)
        worst = int(np.nanargmax(per))
        cells = [row, f"{r['error']['mean_mm']:.2f}", f"{r['error']['median_mm']:.2f}",
                 f"{per[worst]:.2f} ({names[worst]})", *(f"{np.nanmean(per[c]):.2f}" for c in groups.values()),
                 f"{r['seconds_per_scan']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
