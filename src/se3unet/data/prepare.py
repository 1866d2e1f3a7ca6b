"""`se3unet prepare`: sources -> preprocessed splits in an on-disk cache.

A cache folder is named by a hash of its configuration, so the same configuration reuses it
and a changed one builds a new one. Scans are written in shards, each atomically (temporary
file, then rename); an interrupted run keeps its finished shards and resumes with the rest.
The manifest, written last, marks a complete cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Dict, List, Literal, Optional, Sequence, Tuple, Union

import numpy as np

from ..atomic import write_atomically, write_text_atomically
from ..choices import check_choices
from .errors import DataError
from .io import Surface
from .preprocess import PreparedScan, ScannerEffects, crop_centre, prepare_points, sample_sphere, surface_points
from .reference import REFERENCE, ReferenceFace, mean_face_reference, medoid_reference
from .sources import (ArchiveSource, Entry, FaceScapeSource, FolderSource, IctFaceSource, MixedSource,
                      SurreyFaceSource)
from .synthetic_head import embed_in_head, embed_in_ict_head

CACHE_VERSION = 2  # bump when preprocessing changes what a cache holds (2: normals estimated and oriented)
SHARD_SIZE = 64
SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"
# Settings added after version 2, with their defaults: they enter a cache's name only when set,
# so the caches made before them keep their names.
ADDED_SETTINGS = {"surround": 0.0, "face_crop": 0.0, "face_crop_share": 1.0, "surround_twin": False,
                  "surround_kind": "synthetic", "landmark_names": None, "landmarks_file": None}
CROP_JITTER_MM = 2.0  # per axis: the face crop's centre is off the nose tip as predict's first pass is


@dataclass(frozen=True)
class PrepareConfig:
    source: Literal["sfm", "ict", "mixed", "facescape", "archive", "folder"] = "sfm"
    path: Optional[str] = None  # SFM folder (also for mixed), ICT folder, FaceScape root, archive file or scan folder
    ict_path: Optional[str] = None  # mixed: the ICT Face Model folder
    region: Literal["face", "head"] = "face"  # ICT: the face's triangles, or the whole head with ears and neck
    landmark_indices: Optional[str] = None  # FaceScape: landmark_indices.npz
    subjects: int = 200  # SFM / ICT: identities (mixed: of each model)
    expressions: int = 1  # SFM / ICT: scans per identity (the first neutral)
    facescape_expressions: Tuple[str, ...] = ("neutral",)
    crop_radius: float = 100.0  # FaceScape face-region crop around the nose tip, mm
    mm_per_unit: float = 1.0  # folder: millimetres per file unit
    # folder: the landmark set (default: the union of the files' names); names outside it are refused
    landmark_names: Optional[Tuple[str, ...]] = None
    landmarks_file: Optional[str] = None  # folder: a TPS file with every scan's landmarks (ID= the scan's stem)
    samples: int = 8192  # surface samples per mesh
    points: int = 2048  # kept by farthest point sampling
    val: float = 0.1  # fraction of subjects (< 1) or count (>= 1)
    test: float = 0.2
    seed: int = 0
    scanner: ScannerEffects = field(default_factory=ScannerEffects)
    # What predict's second pass reads in a whole-head scan (se3unet.locate), so a model can learn it:
    surround: float = 0.0  # share of face meshes given a synthetic skull cap and neck (data/synthetic_head.py)
    face_crop: float = 0.0  # mm: sample only a sphere this large around the nose tip (0: the whole scan)
    face_crop_share: float = 1.0  # ... in this share of the scans, the rest whole (for one pass and --whole-scan)
    # The twin of a --surround cache: every draw the same (the head too), the face kept alone. Its
    # scans pair index by index with that cache's, for training with loss.consistency.
    surround_twin: bool = False
    # What surrounds the face: a synthetic cap and neck, or a random ICT head's own skull, ears and
    # neck fitted by the landmarks (needs the ICT Face Model: mixed's, else ict_path or $SE3UNET_ICT_DIR).
    surround_kind: Literal["synthetic", "ict"] = "synthetic"

    def __post_init__(self):
        check_choices(self, "prepare")
        if self.surround_twin and not self.surround:
            raise ValueError("--surround-twin is the twin of a --surround cache: give --surround too")
        if self.surround_kind != "synthetic" and not self.surround:
            raise ValueError("--surround-kind says what --surround adds: give --surround too")

    def to_dict(self) -> Dict:
        d = asdict(self)
        d["facescape_expressions"] = list(self.facescape_expressions)
        if self.landmark_names is not None:
            d["landmark_names"] = list(self.landmark_names)
        return d

    @classmethod
    def from_dict(cls, d: Dict) -> "PrepareConfig":
        d = dict(d)
        d["scanner"] = ScannerEffects(**d.get("scanner", {}))
        d["facescape_expressions"] = tuple(d.get("facescape_expressions", ("neutral",)))
        if d.get("landmark_names") is not None:
            d["landmark_names"] = tuple(d["landmark_names"])
        return cls(**d)

    def digest(self) -> str:
        d = {k: v for k, v in self.to_dict().items() if ADDED_SETTINGS.get(k, object()) != v}
        text = json.dumps({"version": CACHE_VERSION, **d}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def make_source(config: PrepareConfig):
    from .ict import IctFaceModel
    from .sfm import SurreyFaceModel

    if config.source == "sfm":
        return SurreyFaceSource(SurreyFaceModel(config.path), config.subjects, config.expressions, config.seed)
    if config.source == "ict":
        return IctFaceSource(IctFaceModel(config.path), config.subjects, config.expressions, config.seed, config.region)
    if config.source == "mixed":
        return MixedSource([
            SurreyFaceSource(SurreyFaceModel(config.path), config.subjects, config.expressions, config.seed),
            IctFaceSource(IctFaceModel(config.ict_path), config.subjects, config.expressions, config.seed, config.region),
        ])
    if config.path is None:
        raise ValueError(f"source {config.source!r} needs a path")
    if config.source == "facescape":
        if config.landmark_indices is None:
            raise ValueError("FaceScape needs --landmark-indices (the toolkit's predef/landmark_indices.npz)")
        return FaceScapeSource(config.path, config.landmark_indices, config.facescape_expressions, config.crop_radius)
    if config.source == "archive":
        return ArchiveSource(config.path)
    if config.source == "folder":
        return FolderSource(config.path, config.mm_per_unit, config.landmark_names, config.landmarks_file)
    raise ValueError(f"unknown source {config.source!r}; use sfm, facescape, archive or folder")


def _count(amount: float, total: int) -> int:
    return int(round(amount * total)) if amount < 1 else int(amount)


def split_subjects(subjects: Sequence[str], val: float, test: float, seed: int) -> Dict[str, List[str]]:
    """Disjoint train/val/test subject lists, shuffled by ``seed``."""
    unique = sorted(set(subjects))
    order = [unique[i] for i in np.random.default_rng(seed).permutation(len(unique))]
    n_test, n_val = _count(test, len(unique)), _count(val, len(unique))
    if n_test + n_val >= len(unique):
        raise ValueError(f"{len(unique)} subjects leave none for training with val={val} and test={test}")
    return {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}


# --- one scan, in a worker process -----------------------------------------------------------

_WORKER: Dict[str, object] = {}


def split_entries(config: PrepareConfig, entries: Sequence[Entry]) -> Tuple[Dict[str, List[str]],
                                                                        Dict[str, List[Tuple[Entry, int]]]]:
    """The subjects of each split, and each split's entries with their numbers (their places in
    ``entries``, which seed their draws)."""
    splits = split_subjects([e.subject for e in entries], config.val, config.test, config.seed)
    split_of = {subject: name for name, subjects in splits.items() for subject in subjects}
    return splits, {name: [(e, n) for n, e in enumerate(entries) if split_of.get(e.subject) == name] for name in splits}


def _init_worker(source, config: PrepareConfig, parent: int) -> None:
    _WORKER["source"], _WORKER["config"] = source, config
    threading.Thread(target=_exit_without, args=(parent,), daemon=True).start()


def _exit_without(parent: int) -> None:
    """Ends this worker once its parent is gone: a `prepare` killed with kill -9 cannot shut its
    pool down, and its workers would wait on their queue for ever (about 400 MB each)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def surrounded(face: Surface, landmarks: np.ndarray, source, config: PrepareConfig, rng: np.random.Generator) -> Surface:
    """The face (mm) inside a head, the kind config.surround_kind names, drawn from ``rng``."""
    if config.surround_kind == "synthetic":
        return embed_in_head(face, rng)[0]
    ict = _ict_model(source, config.ict_path)
    names = getattr(source, "landmark_names", None)
    if not names or not all(n.startswith("ibug") for n in names):
        raise ValueError("--surround-kind ict fits the ICT head by iBUG landmarks: the source must name them ibugN")
    vertices = ict.vertices(rng.standard_normal(ict.num_identities))
    return embed_in_ict_head(face, landmarks, names, Surface(vertices, ict.triangles), ict.landmarks(vertices),
                             ict.face_vertices)[0]


def _ict_model(source, folder: Optional[str]):
    """The ICT Face Model a source holds (mixed, ict), else the one read from ``folder`` once per process."""
    for inner in [source, *getattr(source, "sources", [])]:
        if getattr(inner, "name", None) == "ict":
            return inner.model
    if "ict" not in _WORKER:
        from .ict import IctFaceModel
        _WORKER["ict"] = IctFaceModel(folder)
    return _WORKER["ict"]


def scan_rng(config: PrepareConfig, number: int) -> np.random.Generator:
    """The random draws of scan ``number`` (its place in the source's entries) of a cache."""
    return np.random.default_rng([config.seed, number])


def read_entry(source, config: PrepareConfig, entry: Entry, rng: np.random.Generator) -> Tuple[Surface, np.ndarray]:
    """One scan's whole surface and landmarks in mm, in the head --surround gives it (the first
    draws of ``rng``, a scan_rng): what prepare samples, and what `evaluate --rebuilt` hands predict."""
    raw = source.load(entry.key)
    unit = raw.mm_per_unit
    landmarks = raw.landmarks * unit
    surface = Surface(raw.surface.vertices * unit, raw.surface.triangles, raw.surface.normals)
    if config.surround and surface.is_mesh and not raw.whole_head and rng.random() < config.surround:
        head = surrounded(surface, landmarks, source, config, rng)  # drawn in the twin too: its later draws stay the same
        surface = surface if config.surround_twin else head
    return surface, landmarks


def preprocess_entry(source, config: PrepareConfig, entry: Entry, number: int) -> PreparedScan:
    """Read one scan, sample its surface, apply scanner effects, FPS and normalise.

    When scanner effects leave a mesh with fewer points than FPS keeps (a tight field of view,
    a single view and a thin side together), its surface is sampled again, more densely, with
    the same effects drawn afresh: the scan keeps its effects and the cache its size."""
    rng = scan_rng(config, number)
    try:
        surface, landmarks = read_entry(source, config, entry, rng)
        with np.errstate(invalid="ignore"):  # landmarks a model does not define are NaN
            face_centre = np.nanmean(landmarks, axis=0)
        # A share of 1 draws nothing, so caches cropped before the share existed stay the same.
        cropped = config.face_crop > 0 and (config.face_crop_share >= 1 or rng.random() < config.face_crop_share)
        if cropped:
            centre = crop_centre(landmarks, getattr(source, "landmark_names", None)) + rng.normal(0, CROP_JITTER_MM, 3)
        samples = config.samples
        for attempt in range(3):  # at most 8x the configured samples: a scan its effects empty stays an error
            if cropped:
                points, normals = sample_sphere(surface, centre, config.face_crop, samples, rng)
            else:
                points, normals = surface_points(surface.vertices, surface.triangles, surface.normals, samples, rng)
            if config.scanner.active:
                points, normals = config.scanner.apply(points, normals, rng, centre=face_centre)
            if len(points) >= config.points or not surface.is_mesh:
                break
            wanted = samples * 1.5 * config.points / max(len(points), 1)
            samples = int(min(wanted, 8 * config.samples))
        if len(points) < config.points:
            raise DataError(entry.origin, f"only {len(points)} points after sampling, {config.points} needed")
        return prepare_points(points, normals, landmarks, config.points, 1.0, entry.subject, entry.expression)
    except DataError:
        raise
    except Exception as error:  # any failure of one scan names that scan
        raise DataError(entry.origin, f"{type(error).__name__}: {error}") from error


def _work(job: Tuple[Entry, int]) -> PreparedScan:
    return preprocess_entry(_WORKER["source"], _WORKER["config"], *job)


# --- writing ------------------------------------------------------------------------------------

def atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    write_atomically(path, lambda f: np.savez(f, **arrays))


def stack_scans(scans: List[PreparedScan], origins: List[str]) -> Dict[str, np.ndarray]:
    count = scans[0].landmarks.shape[0]
    for scan, origin in zip(scans, origins):
        if scan.landmarks.shape[0] != count:
            raise DataError(origin, f"has {scan.landmarks.shape[0]} landmarks, other scans {count}")
    return {
        "points": np.stack([s.points for s in scans]), "normals": np.stack([s.normals for s in scans]),
        "landmarks": np.stack([s.landmarks for s in scans]),
        "scale": np.array([s.scale for s in scans], dtype=np.float64),
        "subject": np.array([s.subject for s in scans]), "expression": np.array([s.expression for s in scans]),
        "origin": np.array(origins),
    }


@dataclass
class PrepareResult:
    path: Path
    sizes: Dict[str, int]
    scans_per_second: float
    reused: bool

    def summary(self) -> Dict:
        return {"cache": str(self.path), "splits": self.sizes, "scans_per_second": round(self.scans_per_second, 2),
                "reused": self.reused}


def cache_path(config: PrepareConfig, cache_root: Union[str, Path]) -> Path:
    return Path(cache_root) / f"{config.source}-{config.digest()}"


def prepare(config: PrepareConfig, cache_root: Union[str, Path], workers: int = 1,
            progress: bool = True) -> PrepareResult:
    """Builds (or reuses) the cache for ``config`` under ``cache_root``."""
    from tqdm import tqdm

    folder = cache_path(config, cache_root)
    manifest = folder / MANIFEST
    if manifest.is_file():
        saved = json.loads(manifest.read_text())
        # Settings added since the cache was made take their defaults. A shard or reference that
        # went missing (or a damaged reference) is rebuilt below, the rest kept.
        if PrepareConfig.from_dict(saved.get("config", {})) == config and not missing_files(folder, saved["sizes"]):
            return PrepareResult(folder, saved["sizes"], 0.0, True)
    folder.mkdir(parents=True, exist_ok=True)

    source = make_source(config)
    splits, jobs = split_entries(config, source.entries())
    todo = []  # (shard path, jobs) still missing
    for name in SPLITS:
        for i in range(0, len(jobs[name]), SHARD_SIZE):
            shard = folder / f"{name}-{i // SHARD_SIZE:04d}.npz"
            if not shard.is_file():
                todo.append((shard, jobs[name][i:i + SHARD_SIZE]))

    start, done = time.perf_counter(), 0
    total = sum(len(j) for _, j in todo)
    bar = tqdm(total=total, desc=f"prepare {config.source}", unit="scan", disable=not progress or total == 0)
    pool = (ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker,
                                initargs=(source, config, os.getpid())) if workers > 1 else None)
    try:
        for shard, shard_jobs in todo:
            if pool is None:
                scans = []
                for entry, number in shard_jobs:
                    scans.append(preprocess_entry(source, config, entry, number))
                    bar.update(1)
            else:
                scans = []
                for scan in pool.map(_work, shard_jobs, chunksize=4):
                    scans.append(scan)
                    bar.update(1)
            atomic_save_npz(shard, **stack_scans(scans, [e.origin for e, _ in shard_jobs]))
            done += len(shard_jobs)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    seconds = time.perf_counter() - start

    reference = folder / REFERENCE
    if reference.is_file() and not _readable_reference(reference):
        reference.unlink()
    if not reference.is_file():
        atomic_save_npz(reference, **build_reference(config, folder))
    sizes = {name: len(jobs[name]) for name in SPLITS}
    write_text_atomically(manifest, json.dumps({
        "config": config.to_dict(), "sizes": sizes, "version": CACHE_VERSION,
        "subjects": {name: len(splits[name]) for name in SPLITS},
        "landmark_names": getattr(source, "landmark_names", None),
    }, indent=2))
    return PrepareResult(folder, sizes, done / seconds if seconds > 0 and done else 0.0, False)


def build_reference(config: PrepareConfig, folder: Path) -> Dict[str, np.ndarray]:
    """The reference face of a cache: a face model's mean face (cropped as the scans are), or
    the training medoid for scans from files and for mixed models."""
    if config.source in ("sfm", "ict"):
        model = make_source(config).model
        if config.source == "sfm":
            mean, triangles = model.shape.mean, model.triangles
        else:
            mean, triangles = model.neutral, model.region_triangles(config.region)
        return mean_face_reference(mean, triangles, model.landmarks(mean), config.samples, config.points,
                                   config.seed).arrays()
    return medoid_reference(load_split_shards(folder, "train")).arrays()


def shard_names(split: str, size: int) -> List[str]:
    """The shard files a split of ``size`` scans is written to."""
    return [f"{split}-{i:04d}.npz" for i in range((size + SHARD_SIZE - 1) // SHARD_SIZE)]


def missing_files(folder: Path, sizes: Dict[str, int]) -> List[str]:
    """The files a complete cache of these split sizes has and this folder lacks (or whose
    reference face cannot be read)."""
    missing = [name for split in SPLITS for name in shard_names(split, sizes.get(split, 0))
               if not (folder / name).is_file()]
    if not _readable_reference(folder / REFERENCE):
        missing.append(REFERENCE)
    return missing


def _readable_reference(path: Path) -> bool:
    try:
        ReferenceFace.load(path)
        return True
    except DataError:
        return False


def load_split(folder: Union[str, Path], split: str) -> Dict[str, np.ndarray]:
    """All shards of one split of a complete cache, concatenated; refuses a cache whose files
    do not add up to the scans its manifest counts."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise DataError(folder, f"not a complete se3unet cache (no {MANIFEST}); run `se3unet prepare`")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    expected = json.loads((folder / MANIFEST).read_text())["sizes"][split]
    absent = [name for name in shard_names(split, expected) if not (folder / name).is_file()]
    if absent:
        raise DataError(folder, f"cache is incomplete: {', '.join(absent)} missing ({split} should hold {expected} "
                                f"scans); run the same `se3unet prepare` again to rebuild what is missing")
    data = load_split_shards(folder, split)
    found = len(next(iter(data.values())))
    if found != expected:
        raise DataError(folder, f"cache's {split} split holds {found} scans, its manifest says {expected}; "
                                f"delete the folder and run `se3unet prepare` again")
    return data


def load_split_shards(folder: Path, split: str) -> Dict[str, np.ndarray]:
    shards = sorted(folder.glob(f"{split}-*.npz"))
    if not shards:
        raise DataError(folder, f"split {split!r} is empty")
    parts = []
    for shard in shards:
        try:
            with np.load(shard, allow_pickle=False) as data:
                parts.append({k: data[k] for k in data.files})
        except Exception as error:
            raise DataError(shard, f"damaged cache shard ({error}); delete it and run prepare again") from None
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
