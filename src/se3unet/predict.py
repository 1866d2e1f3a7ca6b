"""`se3unet predict`: landmarks for scans in any pose, from a checkpoint alone.

Touches no training or evaluation code: a scan goes through the same ``model_input`` step as
the training data (data/preprocess.py), the model and the checkpoint's decoding come from
``se3unet.inference``.
"""

from __future__ import annotations

import csv
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np

from .data.errors import DataError
from .data.io import Surface, read_surface
from .data.preprocess import ModelInput, model_input, surface_points
from .inference import ScanSettings, choose_device, load_model
from .locate import LandmarkReader, LocateSettings, locate
from .pretrained import pretrained_path

Timings = Dict[str, float]


@contextmanager
def timed(timings: Optional[Timings], stage: str) -> Iterator[None]:
    """Adds the seconds spent inside the block to ``timings[stage]`` (when timings is given)."""
    start = time.perf_counter()
    yield
    if timings is not None:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start


def prepare_scan(path: Path, settings: ScanSettings, seed: int = 0, timings: Optional[Timings] = None) -> ModelInput:
    """One file as the model reads it, by the training data's preprocessing. ``timings``
    collects the seconds of each stage: read, sample, normals + fps."""
    with timed(timings, "read"):
        surface = read_surface(path)
    return surface_input(surface, path, settings, seed, timings)


def surface_input(surface: Surface, path: Path, settings: ScanSettings, seed: int = 0,
                  timings: Optional[Timings] = None) -> ModelInput:
    """A read surface as the model reads it (``path`` names it in errors)."""
    with timed(timings, "sample"):
        points, normals = surface_points(surface.vertices, surface.triangles, surface.normals, settings.samples,
                                         np.random.default_rng(seed))
    if len(points) < settings.points:
        raise DataError(path, f"has {len(points)} points; the model needs at least {settings.points}")
    with timed(timings, "fps"):  # normals (estimated when missing, oriented), FPS, unit sphere
        try:
            return model_input(points, normals, settings.points)
        except ValueError as error:  # e.g. all points coincide
            raise DataError(path, str(error)) from None


# Millimetres per unit of a scan file; the tool expects millimetres, as the training data.
UNITS = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "in": 25.4, "um": 0.001}
# A face crop is about 150-250 mm across, a head with neck and shoulders about 600 mm.
PLAUSIBLE_EXTENT_MM = (60.0, 1500.0)


def check_extent(surface: Surface, path: Path, unit: str) -> None:
    """Refuses a scan whose size in ``unit`` is implausible for a face or head, naming the unit
    it is likely in: a face in metres would otherwise be read as a 0.2 mm face."""
    extent = float(np.linalg.norm(surface.vertices.max(axis=0) - surface.vertices.min(axis=0)))
    if not extent > 0:
        raise DataError(path, "has no extent: all its points coincide")
    low, high = PLAUSIBLE_EXTENT_MM
    if low <= extent * UNITS[unit] <= high:
        return
    likely = [u for u, factor in UNITS.items() if low <= extent * factor <= high and u != unit]
    hint = f"it is likely in {likely[0]}: pass --unit {likely[0]}" if likely else "no unit makes it a face or head"
    raise DataError(path, f"is {extent:.4g} {unit} across, implausible for a face or head "
                          f"({low:.0f}-{high:.0f} mm); {hint}")


def write_landmarks(path: Path, landmarks: np.ndarray, names: Sequence[str], fmt: str, source: Path) -> None:
    if fmt == "json":
        path.write_text(json.dumps({"scan": str(source), "landmarks": {n: [float(v) for v in p] for n, p in zip(names, landmarks)}},
                                   indent=1))
    else:
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["landmark", "x", "y", "z"])
            writer.writerows([n, *(f"{v:.7g}" for v in p)] for n, p in zip(names, landmarks))  # any unit


def output_names(paths: Sequence[Path]) -> List[str]:
    """The name each scan's outputs take (``NAME.landmarks.csv``, ``NAME.png``, ...): its file
    stem, unless another scan has the same stem; those are named by their path below the folder
    they share (``a/face.obj`` and ``b/face.npy``: ``a__face``, ``b__face``) and, in one folder,
    by their whole file name (``face.obj``, ``face.npy``), so no scan's outputs overwrite another's."""
    def repeated(names: List[str]) -> set:
        return {n for n in names if names.count(n) > 1}

    names = [p.stem for p in paths]
    clash = repeated(names)
    if not clash:
        return names
    resolved = [p.resolve() for p in paths]
    common = Path(os.path.commonpath([str(r.parent) for r, n in zip(resolved, names) if n in clash]))
    names = ["__".join(r.relative_to(common).with_suffix("").parts) if n in clash else n
             for r, n in zip(resolved, names)]
    clash = repeated(names)
    return ["__".join(r.relative_to(common).parts) if n in clash else n for r, n in zip(resolved, names)]


def predict(scans: Sequence[str], checkpoint: Optional[str], output: str, fmt: str = "csv", picture: bool = True,
            device: str = "auto", timings: Optional[Timings] = None, html: bool = False,
            unit: str = "mm", locating: LocateSettings = LocateSettings()) -> List[Dict[str, object]]:
    """Landmarks for each scan in its own coordinates; one result per scan, with ``error``
    (naming the file) set and nothing written for files that cannot be used. ``timings``
    collects the seconds of each stage over all scans (read, sample, fps, model, write, picture,
    page). ``checkpoint`` None: the shipped model. ``html``: a page per scan to turn around
    (se3unet.pages), and index.html listing them when there are several. ``unit``: the scans'
    unit (UNITS); landmarks are written in it, in each scan's own coordinates. ``locating``: how
    the face is found in a larger scan and how many samplings of it are averaged (se3unet.locate)."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}; got {unit!r}")
    checkpoint = pretrained_path() if checkpoint is None else checkpoint
    device = choose_device(device)
    model, saved = load_model(checkpoint, device)
    inference = saved.inference
    read = LandmarkReader(model, inference, device)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    names = output_names([Path(scan) for scan in scans])
    for scan, name in zip(scans, names):
        path = Path(scan)
        try:
            with timed(timings, "read"):
                surface = read_surface(path)
            check_extent(surface, path, unit)
            prepared = surface_input(surface, path, inference.scan, timings=timings)
        except DataError as error:
            results.append({"scan": str(path), "error": str(error)})
            continue
        with timed(timings, "model"):  # every pass: crops, the hierarchy (FPS levels, kNN), decoding
            try:
                landmarks = locate(surface, path, prepared, read, locating, UNITS[unit])
            except DataError as error:
                results.append({"scan": str(path), "error": str(error)})
                continue
        target = out / f"{name}.landmarks.{fmt}"
        with timed(timings, "write"):
            write_landmarks(target, landmarks, inference.landmark_names, fmt, path)
        result = {"scan": str(path), "landmarks": str(target)}
        if picture:
            from .plots import scan_picture  # matplotlib only when a picture is wanted

            image = out / f"{name}.png"
            with timed(timings, "picture"):
                scan_picture(prepared.points * prepared.scale + prepared.centre, landmarks, image, title=path.name,
                             names=inference.landmark_names)
            result["picture"] = str(image)
        if html:
            from .pages import write_scan_page  # plotly only when a page is wanted

            with timed(timings, "page"):
                result["page"] = str(write_scan_page(out / f"{name}.html", path.name, surface.vertices,
                                                     surface.triangles, landmarks, inference.landmark_names, unit))
        results.append(result)
    if html and len(scans) > 1:
        from .pages import write_index

        write_index(out / "index.html", results)
    return results
