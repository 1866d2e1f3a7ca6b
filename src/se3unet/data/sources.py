"""Where scans come from. Each source lists entries (subject, expression, how to load) without
loading them, so splits are made by subject first and scans are read only once, in workers.

- SurreyFaceSource: random faces from the Surrey Face Model (the built-in default).
- FaceScapeSource: FaceScape TU models in their real layout.
- ArchiveSource: the .npz/.npy archive layout the original SE(3)-Unet code used.
- FolderSource: a folder of meshes or clouds with landmark files beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import DataError
from .io import SCAN_SUFFIXES, Surface, read_surface
from .landmark_files import FORMATS, NamedLandmarks, is_unnamed, read_landmark_file, read_tps

# Landmark files that may sit beside a scan as <stem>.<suffix>: suffixes no scan has.
BESIDE_FORMATS = ("mrk.json", "fcsv", "ljson", "pts")

FACESCAPE_EXPRESSIONS = (
    "neutral", "smile", "mouth_stretch", "anger", "jaw_left", "jaw_right", "jaw_forward", "mouth_left",
    "mouth_right", "dimpler", "chin_raiser", "lip_puckerer", "lip_funneler", "sadness", "lip_roll", "grin",
    "cheek_blowing", "eye_closed", "brow_raiser", "brow_lower",
)
# iBUG-68, 0-based: the nose tip, centre of FaceScape's face-region crop.
NOSE_TIP = 30


@dataclass
class RawScan:
    surface: Surface
    landmarks: np.ndarray  # [K, 3], same units as the surface
    mm_per_unit: float = 1.0
    whole_head: bool = False  # skull and neck there already: `prepare --surround` adds none


@dataclass(frozen=True)
class Entry:
    """One scan, not yet read: ``source.load(entry.key)`` reads it. Entries and sources are
    picklable, so worker processes can read scans in parallel."""

    subject: str
    expression: str
    origin: str  # a file, or a description: what error messages and the cache record name
    key: Any


class SurreyFaceSource:
    """Random identities from the Surrey Face Model, each with ``expressions`` scans: the
    first neutral, the others one random blendshape at a random weight in [0, 1]. Every scan
    is generated from its own seed, so any entry can be produced alone and alike every time."""

    name = "sfm"

    def __init__(self, model, subjects: int, expressions: int = 1, seed: int = 0):
        self.model, self.subjects, self.expressions, self.seed = model, subjects, expressions, seed
        self.landmark_names = [f"ibug{n}" for n in model.landmark_numbers]

    def load(self, key) -> RawScan:
        subject, expression = key
        alpha = self.identity(subject)
        weights = {}
        if expression > 0:  # the expression alone comes from (seed, subject, expression)
            rng = np.random.default_rng([self.seed, subject, expression])
            names = sorted(self.model.blendshapes)
            weights[names[rng.integers(len(names))]] = float(rng.random())
        vertices = self.model.vertices(alpha, weights)
        return RawScan(Surface(vertices, self.model.triangles), self.model.landmarks(vertices))

    def identity(self, subject: int) -> np.ndarray:
        """The shape coefficients of one subject, shared by all its scans: from (seed, subject)."""
        return np.random.default_rng([self.seed, subject]).standard_normal(self.model.num_components)

    def entries(self) -> List[Entry]:
        return [
            Entry(f"sfm-{s:05d}", "neutral" if e == 0 else f"expression-{e}", f"SFM subject {s} expression {e}",
                  (s, e))
            for s in range(self.subjects) for e in range(self.expressions)
        ]


class IctFaceSource:
    """Random heads from the ICT Face Model, each with ``expressions`` scans: the first neutral,
    the others 1 to 3 random blendshapes at weights in [0, 1]. The identity comes from (seed,
    subject), the expression from (seed, subject, expression). ``region``: "face" keeps the
    face's triangles (as FaceScape's face crops), "head" the whole head with ears and neck."""

    name = "ict"

    def __init__(self, model, subjects: int, expressions: int = 1, seed: int = 0, region: str = "face"):
        self.triangles, self.region = model.region_triangles(region), region
        self.model, self.subjects, self.expressions, self.seed = model, subjects, expressions, seed
        self.landmark_names = list(model.landmark_names)

    def identity(self, subject: int) -> np.ndarray:
        return np.random.default_rng([self.seed, subject, 1]).standard_normal(self.model.num_identities)

    def expression(self, subject: int, expression: int) -> Dict[str, float]:
        if expression == 0:
            return {}
        rng = np.random.default_rng([self.seed, subject, expression, 1])
        names = rng.choice(self.model.expression_names, size=int(rng.integers(1, 4)), replace=False)
        return {str(n): float(rng.random()) for n in names}

    def load(self, key) -> RawScan:
        subject, expression = key
        vertices = self.model.vertices(self.identity(subject), self.expression(subject, expression))
        return RawScan(Surface(vertices, self.triangles), self.model.landmarks(vertices),
                       whole_head=self.region == "head")

    def entries(self) -> List[Entry]:
        return [
            Entry(f"ict-{s:05d}", "neutral" if e == 0 else f"expression-{e}", f"ICT subject {s} expression {e}", (s, e))
            for s in range(self.subjects) for e in range(self.expressions)
        ]


class MixedSource:
    """Several sources side by side, their landmarks matched by name: a scan's landmarks are
    placed at its names' positions in the union of all names (iBUG order when every name is
    ibugN), NaN where its source does not define one (missing landmarks are skipped by the
    losses and metrics). Subjects keep their source's prefix, so splits stay subject-wise."""

    name = "mixed"

    def __init__(self, sources: Sequence[object]):
        self.sources = list(sources)
        names = sorted({n for s in self.sources for n in s.landmark_names}, key=_landmark_order)
        self.landmark_names = names
        self._columns = [[names.index(n) for n in s.landmark_names] for s in self.sources]

    def load(self, key) -> RawScan:
        which, inner = key
        raw = self.sources[which].load(inner)
        landmarks = np.full((len(self.landmark_names), 3), np.nan)
        landmarks[self._columns[which]] = raw.landmarks
        return RawScan(raw.surface, landmarks, raw.mm_per_unit, raw.whole_head)

    def entries(self) -> List[Entry]:
        return [Entry(e.subject, e.expression, e.origin, (i, e.key))
                for i, source in enumerate(self.sources) for e in source.entries()]


def _landmark_order(name: str):
    return (0, int(name[4:]), "") if name.startswith("ibug") and name[4:].isdigit() else (1, 0, name)


def read_facescape_indices(path: Union[str, Path], key: str = "v10") -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no such landmark index file (FaceScape toolkit predef/landmark_indices.npz)")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                if key not in archive:
                    raise DataError(path, f"has no key {key!r} (keys: {sorted(archive.files)})")
                indices = archive[key]
        else:
            indices = np.loadtxt(path, dtype=np.int64)
    except DataError:
        raise
    except Exception as error:
        raise DataError(path, f"cannot be read ({error})") from None
    indices = np.asarray(indices).reshape(-1)
    if len(indices) != 68 or (indices < 0).any():
        raise DataError(path, f"expected 68 non-negative vertex indices, got {len(indices)}")
    return indices.astype(np.int64)


def crop_face(surface: Surface, centre: np.ndarray, radius: float) -> Surface:
    """Keeps the triangles whose vertices all lie within ``radius`` of ``centre``."""
    inside = np.linalg.norm(surface.vertices - centre, axis=1) <= radius
    triangles = surface.triangles[inside[surface.triangles].all(axis=1)]
    return Surface(surface.vertices, triangles)


class FaceScapeSource:
    """FaceScape TU models: ``root/{ID}/models_reg/{ID}_{EXPRESSION}.obj`` (millimetres, every
    mesh the same 26,317 vertices in the same order); landmark i is vertex ``indices[i]``
    (landmark_indices.npz, key v10). Full heads are cropped to a sphere around the nose tip."""

    name = "facescape"

    def __init__(self, root: Union[str, Path], landmark_indices: Union[str, Path],
                 expressions: Sequence[str] = ("neutral",), crop_radius: float = 100.0):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(self.root, "no such FaceScape folder")
        unknown = [e for e in expressions if e not in FACESCAPE_EXPRESSIONS]
        if unknown:
            raise ValueError(f"unknown FaceScape expressions {unknown}; known: {FACESCAPE_EXPRESSIONS}")
        self.indices = read_facescape_indices(landmark_indices)
        self.expressions, self.crop_radius = tuple(expressions), crop_radius
        self.landmark_names = [f"ibug{i + 1}" for i in range(68)]

    def load(self, key) -> RawScan:
        path = Path(key)
        surface = read_surface(path)
        if not surface.is_mesh:
            raise DataError(path, "has no triangles: FaceScape TU models are meshes")
        if self.indices.max() >= len(surface.vertices):
            raise DataError(path, f"has {len(surface.vertices)} vertices but landmark index {self.indices.max()} "
                                  f"needs more: not a TU model, or the wrong index key")
        landmarks = surface.vertices[self.indices]
        if self.crop_radius > 0:
            surface = crop_face(surface, landmarks[NOSE_TIP], self.crop_radius)
            if not surface.is_mesh:
                raise DataError(path, f"no triangles within {self.crop_radius} mm of the nose tip")
        return RawScan(surface, landmarks)

    def entries(self) -> List[Entry]:
        found = []
        for folder in sorted((p for p in self.root.iterdir() if p.is_dir()), key=_natural_key):
            for expression in self.expressions:
                path = folder / "models_reg" / f"{folder.name}_{expression}.obj"
                if path.is_file():
                    found.append(Entry(folder.name, expression, str(path), str(path)))
        if not found:
            raise DataError(self.root, f"no {{ID}}/models_reg/{{ID}}_{{expression}}.obj files for "
                                       f"expressions {list(self.expressions)}")
        return found


def _natural_key(path: Path):
    return (0, int(path.name)) if path.name.isdigit() else (1, path.name)


ARCHIVE_KEYS = ("point_list", "landmark_list")


class ArchiveSource:
    """The original code's archive: a .npz, or a .npy holding a pickled dict, with point_list
    (S, M, 3), landmark_list (S, K, 3) and optionally subject_list, emotion_list and
    scale_list (normalisation factor: units per mm, so mm = units / scale). Clouds are taken
    as they are; heatmaps_list is not read (heatmaps are recomputed from the landmarks).
    A .npy dict is unpickled: open only archives you trust."""

    name = "archive"

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        data = self._read()
        missing = [k for k in ARCHIVE_KEYS if k not in data]
        if missing:
            raise DataError(self.path, f"lacks {missing}; has {sorted(data)}")
        self.points = np.asarray(data["point_list"], dtype=np.float64)
        self.landmarks = np.asarray(data["landmark_list"], dtype=np.float64)
        count = len(self.points)
        if self.points.ndim != 3 or self.points.shape[2] != 3 or self.landmarks.ndim != 3 \
                or self.landmarks.shape[2] != 3 or len(self.landmarks) != count:
            raise DataError(self.path, f"point_list {self.points.shape} and landmark_list {self.landmarks.shape} "
                                       f"do not describe the same scans")
        self.subjects = [str(s) for s in data.get("subject_list", range(count))]
        self.emotions = [str(e) for e in data.get("emotion_list", ["unknown"] * count)]
        scales = np.asarray(data.get("scale_list", np.ones(count)), dtype=np.float64).reshape(-1)
        if len(self.subjects) != count or len(self.emotions) != count or len(scales) != count:
            raise DataError(self.path, "subject_list, emotion_list and scale_list must have one entry per scan")
        if (scales <= 0).any():
            raise DataError(self.path, "scale_list must be positive")
        self.mm_per_unit = 1.0 / scales

    def _read(self) -> Dict[str, np.ndarray]:
        if not self.path.is_file():
            raise DataError(self.path, "no such archive")
        try:
            if self.path.suffix == ".npz":
                with np.load(self.path, allow_pickle=False) as archive:
                    return {k: archive[k] for k in archive.files}
            data = np.load(self.path, allow_pickle=True)
            data = data.item() if data.dtype == object and data.shape == () else data
        except Exception as error:
            raise DataError(self.path, f"cannot be read as an archive ({error})") from None
        if not isinstance(data, dict):
            raise DataError(self.path, "expected a dict of arrays (point_list, landmark_list, ...)")
        return data

    def load(self, key) -> RawScan:
        return RawScan(Surface(self.points[key]), self.landmarks[key], float(self.mm_per_unit[key]))

    def entries(self) -> List[Entry]:
        return [
            Entry(self.subjects[i], self.emotions[i], f"{self.path}[{i}]", i) for i in range(len(self.points))
        ]


class FolderSource:
    """Scans (.obj .ply .stl .off .npy .xyz) anywhere under ``root``, each with a landmark file
    beside it: ``<stem>.landmarks.<any format>`` or ``<stem>.<mrk.json|fcsv|ljson|pts>`` (data/
    landmark_files.py), or a row of a TPS file for the collection (``collection``, or every .tps
    file at the top of root), matched by its ID= to the scan's stem. The subject is the scan's
    first folder under root (``root/alice/smile.obj`` -> alice), or its stem for scans at the top.
    ``mm_per_unit`` says how many millimetres a unit of the files is.

    The landmark set is the union of the names in the files, in the order first met; a name a
    file lacks is missing there (NaN: skipped by losses and metrics). ``names``: the set instead;
    a file naming a landmark outside it is refused, and a file without names (LM1, ...: .npy,
    .txt, TPS) takes the list's names in order."""

    name = "folder"

    def __init__(self, root: Union[str, Path], mm_per_unit: float = 1.0, names: Optional[Sequence[str]] = None,
                 collection: Optional[Union[str, Path]] = None):
        self.root, self.mm_per_unit = Path(root), mm_per_unit
        if not self.root.is_dir():
            raise DataError(self.root, "no such folder")
        self.names = list(names) if names else None
        tps = [Path(collection)] if collection else sorted(self.root.glob("*.tps"))
        self.collection: Dict[str, Tuple[str, NamedLandmarks]] = {}
        for path in tps:
            for specimen, found in read_tps(path).items():
                if specimen in self.collection:
                    raise DataError(path, f"ID {specimen!r} is also in {self.collection[specimen][0]}")
                self.collection[specimen] = (str(path), found)
        self._entries = self._find()
        found = self._union()  # every file read once here: a bad one is refused before any work
        self.landmark_names = self.names or found

    @staticmethod
    def landmark_file(scan: Path) -> Optional[Path]:
        for fmt, suffix in FORMATS.items():
            candidates = [scan.with_name(f"{scan.stem}.landmarks{suffix}")]
            if fmt in BESIDE_FORMATS:
                candidates.append(scan.with_name(scan.stem + suffix))
            for candidate in candidates:
                if candidate.is_file():
                    return candidate
        return None

    def _named(self, origin: str, found: NamedLandmarks) -> NamedLandmarks:
        """A file's landmarks under the user's names, refused when it names others."""
        if self.names is None:
            return found
        if is_unnamed(found.names):
            if len(found.names) > len(self.names):
                raise DataError(origin, f"has {len(found.names)} unnamed landmarks but the landmark set names "
                                        f"{len(self.names)}")
            return NamedLandmarks(self.names[:len(found.names)], found.points)
        outside = [n for n in found.names if n not in self.names]
        if outside:
            raise DataError(origin, f"names landmarks outside the landmark set: {', '.join(outside[:8])}")
        return found

    def _read(self, key) -> NamedLandmarks:
        scan, origin = key
        if origin.lower().endswith(".tps"):
            return self._named(f"{origin} (ID {Path(scan).stem})", self.collection[Path(scan).stem][1])
        return self._named(origin, read_landmark_file(origin))

    def _union(self) -> List[str]:
        names: Dict[str, None] = {}
        counts = set()
        for entry in self._entries:
            found = self._read(entry.key)
            if self.names is None and is_unnamed(found.names):  # by position: a different count is a mistake
                counts.add(len(found.names))
                if len(counts) > 1:
                    raise DataError(entry.origin, f"has {len(found.names)} landmarks, other scans "
                                                  f"{min(counts - {len(found.names)})}; files without names must "
                                                  f"all hold the same landmarks in the same order")
            names.update(dict.fromkeys(found.names))
        return list(names)

    def load(self, key) -> RawScan:
        landmarks = self._read(key).arranged(self.landmark_names)
        return RawScan(read_surface(key[0]), landmarks, self.mm_per_unit)

    def entries(self) -> List[Entry]:
        return list(self._entries)

    def _find(self) -> List[Entry]:
        found, unlabelled = [], []
        for scan in sorted(self.root.rglob("*")):
            if scan.suffix.lower() not in SCAN_SUFFIXES or ".landmarks" in scan.name or not scan.is_file():
                continue
            landmarks = self.landmark_file(scan)
            if landmarks is None and scan.stem in self.collection:
                landmarks = Path(self.collection[scan.stem][0])
            if landmarks is None:
                unlabelled.append(scan.name)
                continue
            relative = scan.relative_to(self.root)
            subject = relative.parts[0] if len(relative.parts) > 1 else scan.stem
            found.append(Entry(subject, scan.stem, str(scan), (str(scan), str(landmarks))))
        if not found:
            hint = f" ({len(unlabelled)} scans without a landmark file)" if unlabelled else ""
            raise DataError(self.root, f"no scans with landmark files (<stem>.landmarks.csv, <stem>.mrk.json, "
                                       f"<stem>.fcsv, <stem>.ljson, <stem>.pts, a .tps with ID=<stem>, ...){hint}")
        return found
