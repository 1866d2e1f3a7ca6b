"""`se3unet predict`: landmarks for scans in any pose, from a checkpoint alone.

Touches no training or evaluation code: a scan goes through the same ``model_input`` step as
the training data (data/preprocess.py), the model and the checkpoint's decoding come from
``se3unet.inference``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np

from .data.errors import DataError
from .data.io import SCAN_SUFFIXES, Surface, read_surface
from .data.landmark_files import FORMATS, WRITTEN_FORMATS, format_landmarks
from .data.preprocess import ModelInput, model_input, surface_points
from .atomic import write_text_atomically
from .inference import ScanSettings, choose_device, load_model
from .inference.confidence import ConfidenceModel, confidence_for
from .atlas import LandmarkAtlas, ScanCloud
from .locate import LandmarkReader, LocateSettings, Located, locate_readings
from .pretrained import pretrained_path
from .refine import Refiner, refiner_for, refiner_path

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


def write_landmarks(path: Path, landmarks: np.ndarray, names: Sequence[str], fmt: str, source: Path,
                    confidence: Optional[np.ndarray] = None, face_score: Optional[float] = None) -> None:
    """A landmark file in ``fmt`` (data/landmark_files.py WRITTEN_FORMATS); with ``confidence``,
    each landmark's likely error (the scan's unit) where the format has room, and the scan's
    face score (about 1 on a face) in json."""
    write_text_atomically(path, format_landmarks(names, landmarks, fmt, str(source), confidence, face_score))


@dataclass
class Verdict:
    """What the confidence model says of one located scan (in the scan's unit)."""

    confidence: np.ndarray  # [K]: each landmark's likely error
    face_score: float  # the best of the readings that could hold the face; about 1 on a face
    threshold: float  # above it: no face here

    @property
    def no_face(self) -> bool:
        return not self.face_score <= self.threshold  # NaN (nothing read) is no face either


def averaged_signal(uncertainty: np.ndarray, disagreement: np.ndarray) -> np.ndarray:
    """What the averaged calibration reads: each landmark's uncertainty averaged over the
    samplings and how far the samplings disagree, combined as a root of summed squares."""
    return np.sqrt(uncertainty ** 2 + disagreement ** 2)


def judge(located: Located, model: ConfidenceModel, samplings: int, mm_per_unit: float) -> Verdict:
    """Likely errors from the final readings (averaged samplings, or a single reading), and
    the face score: the lowest of the whole scan's, the search's best crop's and the median of
    the final samplings'."""
    if samplings > 1:
        likely = model.averaged(averaged_signal(located.uncertainty, located.disagreement) * mm_per_unit)
    else:
        likely = model.one_pass(located.uncertainty * mm_per_unit)
    scores = [float(model.one_pass.face_score(r.uncertainty * mm_per_unit)) for r in located.readings]
    cropped = len(scores) > 2
    candidates = scores[:2] + [float(np.median(scores[2:]))] if cropped else scores
    return Verdict(likely / mm_per_unit, min(candidates), model.no_face_threshold(cropped))


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


def scan_list(scans: Sequence[str], list_file: Optional[str] = None) -> List[str]:
    """The scans named: files as given, every scan file under a folder (sorted), and the lines
    of ``list_file`` (one path per line; # comments), in that order."""
    named = list(scans)
    if list_file:
        path = Path(list_file)
        if not path.is_file():
            raise DataError(path, "no such scan list")
        named += [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    found: List[str] = []
    for item in named:
        path = Path(item)
        if path.is_dir():
            inside = sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in SCAN_SUFFIXES and p.is_file()
                            and ".landmarks" not in p.name)
            if not inside:
                raise DataError(path, f"holds no scans ({', '.join(SCAN_SUFFIXES)})")
            found += inside
        else:
            found.append(item)
    if not found:
        raise ValueError("no scans given: name files, folders or --list FILE")
    return found


def shard_of(count: int, shard: Optional[str]) -> List[int]:
    """The indices of ``count`` items in shard "K/N" (K from 1): every N-th from the K-th, so
    N processes split a collection without overlap; all of them without a shard."""
    if not shard:
        return list(range(count))
    try:
        k, n = (int(v) for v in shard.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like K/N (e.g. 3/8), got {shard!r}") from None
    if not 1 <= k <= n:
        raise ValueError(f"--shard {shard}: K must be between 1 and N")
    return list(range(k - 1, count, n))


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


SUMMARY_FIELDS = ["scan", "name", "status", "seconds", "mean_confidence", "face_score", "refined", "error"]


def write_summary(path: Path, rows: List[Dict[str, object]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, SUMMARY_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomically(path, buffer.getvalue())


def predict(scans: Sequence[str], checkpoint: Optional[str], output: str, fmt: str = "csv", picture: bool = True,
            device: str = "auto", timings: Optional[Timings] = None, html: bool = False,
            unit: str = "mm", locating: LocateSettings = LocateSettings(),
            keep_no_face: bool = False, shard: Optional[str] = None, progress: bool = False,
            refine: bool = False) -> List[Dict[str, object]]:
    """Landmarks for each scan in its own coordinates; one result per scan, with ``error``
    (naming the file) set and nothing written for files that cannot be used. ``timings``
    collects the seconds of each stage over all scans (read, sample, fps, model, write, picture,
    page). ``checkpoint`` None: the shipped model. ``html``: a page per scan to turn around
    (se3unet.pages), and index.html listing them when there are several. ``unit``: the scans'
    unit (UNITS); landmarks are written in it, in each scan's own coordinates. ``locating``: how
    the face is found in a larger scan and how many samplings of it are averaged (se3unet.locate).
    ``fmt``: a landmark file format (WRITTEN_FORMATS); tps also writes landmarks.tps for all.

    With a confidence model made for the checkpoint (the shipped one has one), every landmark
    gets its likely error and every scan a face score; a scan that does not look like a face
    gets ``error`` ("no face here") and no files, or, with ``keep_no_face``, its files and
    ``no_face`` True.

    With a refiner made for the checkpoint (se3unet.refine; the shipped one has one) and
    ``refine``, the landmarks it was made for are read again in small dense crops around them;
    ``refined`` says how many of those were ("66/68"), ``not_refined`` names those that kept
    their coarse place (too little surface there). The confidence stays the coarse landmarks'.

    Many scans: ``shard`` "K/N" takes every N-th scan from the K-th (outputs are named over the
    whole list, so shards never collide); a scan whose outputs were written before with the same
    checkpoint and settings is skipped (status "done before": a killed run resumes); summary.csv
    (summary-K-of-N.csv for a shard) lists every scan's status, seconds and mean confidence."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}; got {unit!r}")
    if fmt not in WRITTEN_FORMATS:
        raise ValueError(f"format must be one of {', '.join(WRITTEN_FORMATS)}; got {fmt!r}")
    checkpoint = pretrained_path() if checkpoint is None else checkpoint
    device = choose_device(device)
    model, saved = load_model(checkpoint, device)
    inference = saved.inference
    read = LandmarkReader(model, inference, device)
    trust = confidence_for(checkpoint)
    refiner = refiner_for(checkpoint, device) if refine else None
    atlas = LandmarkAtlas.from_mapping(inference.atlas) if inference.atlas else None
    if refine and refiner is None:
        import warnings

        warnings.warn(f"{checkpoint}: no refiner was made for these weights (none at {refiner_path(checkpoint)}, or "
                      f"one for other weights); the landmarks are the coarse ones")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    settings = json.dumps({"checkpoint": file_digest(Path(checkpoint)), "format": fmt, "picture": picture,
                           "html": html, "unit": unit, "locating": asdict(locating), "keep_no_face": keep_no_face,
                           "refiner": None if refiner is None else file_digest(refiner_path(checkpoint))},
                          sort_keys=True)
    names = output_names([Path(scan) for scan in scans])
    chosen = shard_of(len(scans), shard)
    results = []
    from tqdm import tqdm

    for index in tqdm(chosen, desc="scans", unit="scan", disable=not progress):
        scan, name = scans[index], names[index]
        started = time.perf_counter()
        record = out / f"{name}.done.json"
        previous = _done_before(record, settings)
        if previous is not None:
            results.append({**previous, "status": "done before", "name": name})
            continue
        result = _predict_one(Path(scan), name, out, read, trust, fmt, picture, html, unit, locating, keep_no_face,
                              timings, refiner, atlas)
        result["name"], result["seconds"] = name, round(time.perf_counter() - started, 2)
        result["status"] = "failed" if "error" in result else ("no face (kept)" if result.get("no_face") else "ok")
        if "error" not in result:
            write_text_atomically(record, json.dumps({"settings": settings, "result": result}))
        results.append(result)
    if html and len(scans) > 1:
        from .pages import write_index

        write_index(out / "index.html", results)
    if fmt == "tps":  # one collection file, as morphometrics tools read them
        texts = [Path(r["landmarks"]).read_text() for r in results if "landmarks" in r]
        write_text_atomically(out / ("landmarks.tps" if not shard else f"landmarks-{shard.replace('/', '-of-')}.tps"),
                              "".join(texts))
    write_summary(out / ("summary.csv" if not shard else f"summary-{shard.replace('/', '-of-')}.csv"), results)
    return results


def _done_before(record: Path, settings: str) -> Optional[Dict[str, object]]:
    """The result written for a scan with the same settings whose files are all there, else None."""
    if not record.is_file():
        return None
    try:
        done = json.loads(record.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    result = done.get("result", {})
    files = [result[k] for k in ("landmarks", "picture", "page") if k in result]
    if done.get("settings") != settings or not all(Path(f).is_file() for f in files):
        return None
    return result


def _predict_one(path: Path, name: str, out: Path, read: LandmarkReader, trust: Optional[ConfidenceModel], fmt: str,
                 picture: bool, html: bool, unit: str, locating: LocateSettings, keep_no_face: bool,
                 timings: Optional[Timings], refiner: Optional[Refiner] = None,
                 atlas: Optional[LandmarkAtlas] = None) -> Dict[str, object]:
    """One scan's landmark file (and picture, page); its result, with ``error`` when it failed."""
    inference = read.inference
    try:
        with timed(timings, "read"):
            surface = read_surface(path)
        check_extent(surface, path, unit)
        prepared = surface_input(surface, path, inference.scan, timings=timings)
        with timed(timings, "model"):  # every pass: crops, the hierarchy (FPS levels, kNN), decoding
            located = locate_readings(surface, path, prepared, read, locating, UNITS[unit])
    except DataError as error:
        return {"scan": str(path), "error": str(error)}
    landmarks, result = located.landmarks, {"scan": str(path)}
    verdict = judge(located, trust, locating.samplings if locating.crop else 1, UNITS[unit]) if trust else None
    if verdict is not None:
        result["face_score"] = round(verdict.face_score, 3)
        result["mean_confidence"] = round(float(np.nanmean(verdict.confidence)), 3)
        if verdict.no_face:
            problem = (f"no face here: the readings do not look like a face (face score {verdict.face_score:.1f}, "
                       f"faces score about 1, above {verdict.threshold:.2f} is no face)")
            if not keep_no_face:
                return {**result, "error": f"{path}: {problem}; --keep-no-face writes its landmarks anyway"}
            result["no_face"] = True
    if refiner is not None:
        with timed(timings, "refine"):
            refined = refiner(surface, landmarks, inference.landmark_names, UNITS[unit])
        landmarks = refined.landmarks
        result["refined"] = f"{int(refined.refined.sum())}/{int(refined.chosen.sum())}"
        result["not_refined"] = [n for n, kept in zip(inference.landmark_names, refined.kept) if kept]
    names = list(inference.landmark_names)
    confidence = None if verdict is None else verdict.confidence
    if atlas is not None:  # the checkpoint's own landmark set after the model's (se3unet.atlas)
        with timed(timings, "atlas"):
            placed = atlas.place(ScanCloud.of(surface, UNITS[unit], atlas.settings), landmarks * UNITS[unit])
        landmarks, names = np.concatenate([landmarks, placed.landmarks / UNITS[unit]]), names + atlas.names
        result["atlas_spread"] = round(float(np.nanmean(placed.spread)) / UNITS[unit], 3)
        if confidence is not None:  # the atlases' spread: how far their votes disagree
            confidence = np.concatenate([confidence, placed.spread / UNITS[unit]])
    target = out / f"{name}.landmarks{FORMATS[fmt]}"
    with timed(timings, "write"):
        write_landmarks(target, landmarks, names, fmt, path, confidence,
                        None if verdict is None else verdict.face_score)
    result["landmarks"] = str(target)
    if picture:
        from .plots import scan_picture  # matplotlib only when a picture is wanted

        image = out / f"{name}.png"
        with timed(timings, "picture"):
            scan_picture(prepared.points * prepared.scale + prepared.centre, landmarks, image, title=path.name,
                         names=names)
        result["picture"] = str(image)
    if html:
        from .pages import write_scan_page  # plotly only when a page is wanted

        with timed(timings, "page"):
            result["page"] = str(write_scan_page(out / f"{name}.html", path.name, surface.vertices,
                                                 surface.triangles, landmarks, names, unit,
                                                 confidence=confidence))
    return result
