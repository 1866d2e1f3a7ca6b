"""Small dense crops around landmarks: what the refiner (se3unet.refine, issue 37) reads, and the
cache it is trained on.

A crop is the part of a scan within ``radius_mm`` of a centre, sampled densely (``samples``
points there) and cut by exact FPS to ``points``: at 15 mm and 512 points, one point every
1.2-1.4 mm of surface, against 5-6 mm in the coarse model's 120 mm face crop. Crops are read
without normals (a crop's centroid cannot orient them: a cheek is nearly flat) in a fixed scale,
the radius: the refiner's offsets are millimetres over the radius in every crop.

Training crops are centred where the coarse model would put them: a true landmark moved by
one of the coarse model's own error vectors on that landmark (experiments/coarse_errors.py,
measured on faces neither training nor evaluation uses), scaled and jittered. Scanner effects
act on the whole scan's dense surface before it is cropped, as a scanner's holes and single views
do. Every landmark within the crop is labelled, not just the one it is centred on.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..atomic import write_text_atomically
from .preprocess import ModelInput, PreparedScan, ScannerEffects, farthest_points, surface_points

CROP_CACHE_VERSION = 1


@dataclass(frozen=True)
class CropSettings:
    radius_mm: float = 15.0
    points: int = 512  # the refiner's input size
    samples: int = 2048  # surface samples within the sphere before FPS (a cloud: at most this many of its points)

    def __post_init__(self):
        if not self.radius_mm > 0 or self.points < 16 or self.samples < self.points:
            raise ValueError(f"crop settings need radius_mm > 0, points >= 16 and samples >= points, got {self}")


def crop_model_input(points: np.ndarray, count: int, scale: float) -> ModelInput:
    """A crop's points as the refiner reads them: exact FPS to ``count`` (started at the point
    nearest the centroid), centred on their centroid, divided by ``scale`` (the radius in the
    scan's units); normals zero (the refiner reads none)."""
    keep = farthest_points(points, count)
    kept = points[keep]
    centre = kept.mean(axis=0)
    unit = ((kept - centre) / scale).astype(np.float32)
    return ModelInput(unit, np.zeros_like(unit), centre, float(scale))


# --- training crops -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CropDataConfig:
    """How the refiner's training crops are made (recorded in the cache's manifest)."""

    crop: CropSettings = field(default_factory=CropSettings)
    density: float = 2.0  # dense surface samples per mm^2 of a scan, before scanner effects
    error_scale: Tuple[float, float] = (0.5, 1.5)  # a drawn coarse error is scaled by a factor in this range
    jitter_mm: float = 1.0  # ... plus Gaussian jitter per axis (the centre's snap to the surface, unseen errors)
    max_shift: float = 0.6  # of the radius: the farthest a crop's centre is from its landmark
    label_share: float = 0.9  # landmarks within this share of the radius are labelled
    scanner: ScannerEffects = field(default_factory=ScannerEffects)

    def to_dict(self) -> Dict:
        return {"kind": "refiner-crops", "version": CROP_CACHE_VERSION, **asdict(self),
                "samples": self.crop.samples, "points": self.crop.points}


def dense_surface(vertices: np.ndarray, triangles: np.ndarray, density: float,
                  rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """A mesh sampled at ``density`` points per square unit, with face normals."""
    corners = vertices[triangles]
    area = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1).sum()
    return surface_points(vertices, triangles, None, int(area * density), rng)


def training_crops(points: np.ndarray, truth: np.ndarray, errors: np.ndarray, config: CropDataConfig,
                   rng: np.random.Generator, subject: str) -> List[PreparedScan]:
    """One crop per defined landmark of a scan given as a dense cloud in mm (``points``, scanner
    effects applied): centred on the landmark moved by a coarse error drawn from ``errors``
    [S, K, 3] (NaN where a scan of the pool lacks the landmark), labelled with every landmark
    within ``label_share`` of the radius. Crops with fewer than ``points`` points are left out."""
    from scipy.spatial import cKDTree

    tree = cKDTree(points)
    radius, crops = config.crop.radius_mm, []
    for index in np.flatnonzero(np.isfinite(truth).all(axis=1)):
        pool = errors[np.isfinite(errors[:, index]).all(axis=1), index]
        error = pool[rng.integers(len(pool))] if len(pool) else np.zeros(3)
        shift = error * rng.uniform(*config.error_scale) + rng.normal(0.0, config.jitter_mm, 3)
        length = np.linalg.norm(shift)
        if length > config.max_shift * radius:
            shift *= config.max_shift * radius / length
        centre = truth[index] + shift
        inside = np.asarray(tree.query_ball_point(centre, radius), dtype=np.int64)
        if len(inside) < config.crop.points:
            continue
        if len(inside) > config.crop.samples:
            inside = rng.choice(inside, config.crop.samples, replace=False)
        crop = crop_model_input(points[inside], config.crop.points, radius)
        near = np.linalg.norm(truth - centre, axis=1) <= config.label_share * radius
        landmarks = np.where(near[:, None], (truth - crop.centre) / crop.scale, np.nan)
        crops.append(PreparedScan(crop.points, crop.normals, landmarks.astype(np.float32), crop.scale, subject,
                                  f"crop-{index}"))
    return crops


# --- the cache ------------------------------------------------------------------------------------

_WORKER: Dict[str, object] = {}


def _init(source, config: CropDataConfig, errors: np.ndarray, seed: int) -> None:
    _WORKER.update(source=source, config=config, errors=errors, seed=seed)


def _scan_crops(job: Tuple[int, object]) -> Tuple[List[PreparedScan], str]:
    number, entry = job
    source, config = _WORKER["source"], _WORKER["config"]
    rng = np.random.default_rng([_WORKER["seed"], number])
    raw = source.load(entry.key)
    unit = raw.mm_per_unit
    truth = raw.landmarks * unit
    points, normals = dense_surface(raw.surface.vertices * unit, raw.surface.triangles, config.density, rng)
    if config.scanner.active:
        with np.errstate(invalid="ignore"):
            middle = np.nanmean(truth, axis=0)
        points = config.scanner.apply(points, normals, rng, centre=middle)[0]
    return training_crops(points, truth, _WORKER["errors"], config, rng, entry.subject), entry.origin


def prepare_crops(source, config: CropDataConfig, errors: np.ndarray, folder: Path, val_subjects: Sequence[str],
                  seed: int, workers: int = 1, scans_per_shard: int = 8, progress: bool = True) -> Dict[str, int]:
    """Writes the crops of every scan of ``source`` into ``folder`` as a cache `se3unet train`
    reads. Scans are cropped in parts of ``scans_per_shard`` (under parts/, each written
    atomically: a rerun keeps finished parts), then laid out as `prepare`'s shards, the manifest
    last. The scans of the subjects ``val_subjects`` are the validation split."""
    from tqdm import tqdm

    from .prepare import MANIFEST, SHARD_SIZE, atomic_save_npz, load_split_shards, stack_scans

    folder = Path(folder)
    (folder / "parts").mkdir(parents=True, exist_ok=True)
    entries = list(enumerate(source.entries()))
    val = set(val_subjects)
    splits = {"train": [j for j in entries if j[1].subject not in val], "val": [j for j in entries if j[1].subject in val]}
    jobs = [(folder / "parts" / f"{name}-{i // scans_per_shard:04d}.npz", part[i:i + scans_per_shard])
            for name, part in splits.items() for i in range(0, len(part), scans_per_shard)]
    todo = [(path, chunk) for path, chunk in jobs if not path.is_file()]
    pool = (ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init,
                                initargs=(source, config, errors, seed)) if workers > 1 else None)
    if pool is None:
        _init(source, config, errors, seed)
    bar = tqdm(total=sum(len(c) for _, c in todo), desc="refiner crops", unit="scan", disable=not progress)
    try:
        for path, chunk in todo:
            crops, origins = [], []
            for made, origin in (pool.map(_scan_crops, chunk) if pool else map(_scan_crops, chunk)):
                crops += made
                origins += [origin] * len(made)
                bar.update(1)
            atomic_save_npz(path, **stack_scans(crops, origins))
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    sizes = {"test": 0}
    for name, part in splits.items():
        sizes[name] = 0
        if not part:
            continue
        data = load_split_shards(folder / "parts", name)
        sizes[name] = len(data["scale"])
        for i in range(0, sizes[name], SHARD_SIZE):
            atomic_save_npz(folder / f"{name}-{i // SHARD_SIZE:04d}.npz", **{k: v[i:i + SHARD_SIZE] for k, v in data.items()})
    write_text_atomically(folder / MANIFEST, json.dumps({
        "config": config.to_dict(), "sizes": sizes, "version": CROP_CACHE_VERSION,
        "landmark_names": getattr(source, "landmark_names", None),
        "scans": {name: len(part) for name, part in splits.items()},
    }, indent=2, default=list))
    return sizes
