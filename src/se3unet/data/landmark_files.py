"""Named landmarks in the files other tools read and write.

A landmark file holds names and positions; a name absent from a file is missing there (NaN),
never guessed. Formats without names (plain arrays, TPS, IDAV .pts without labels) name their
points LM1, LM2, ... in file order. Every reader raises DataError naming the file and the problem.

| format | suffix | names | what writes it |
| --- | --- | --- | --- |
| csv | .csv | a `landmark,x,y,z` header, or rows of 3 numbers | se3unet, spreadsheets |
| json | .json | {"landmarks": {name: [x, y, z]}} or a list | se3unet |
| mrk.json | .mrk.json | control point labels | 3D Slicer >= 4.11 markups (LPS or RAS as declared) |
| fcsv | .fcsv | label column | 3D Slicer markups (older), SlicerMorph |
| tps | .tps | none: LM1, ... (one file for a collection, scans by ID=) | tpsDig, geomorph, Morpho |
| ljson | .ljson | one-point labels, else LM1, ... | menpo, landmarker.io |
| pts | .pts | first column (IDAV: S0000, ...) | IDAV Landmark Editor, Morpho |
| txt / npy | .txt .npy | none: LM1, ... | numpy |

Slicer files are read into the scan's own coordinates, which Slicer takes as LPS (it reads a
mesh's coordinates as LPS): a RAS file has x and y negated. se3unet writes Slicer files in LPS.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from .errors import DataError

MISSING_WORDS = {"na", "nan", "none", "null", ""}
# The suffixes a landmark file beside a scan may have, longest first (``.mrk.json`` before ``.json``).
FORMATS = {"mrk.json": ".mrk.json", "fcsv": ".fcsv", "ljson": ".ljson", "pts": ".pts", "tps": ".tps",
           "csv": ".csv", "json": ".json", "txt": ".txt", "npy": ".npy"}
WRITTEN_FORMATS = ("csv", "json", "mrk.json", "fcsv", "tps", "ljson", "pts")
SLICER_SCHEMA = ("https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/"
                 "Schema/markups-schema-v1.0.3.json#")


@dataclass
class NamedLandmarks:
    """Landmark names and their positions [K, 3] (NaN: missing in this file)."""

    names: List[str]
    points: np.ndarray

    def __post_init__(self):
        self.points = np.asarray(self.points, dtype=np.float64).reshape(-1, 3)
        if len(self.names) != len(self.points):
            raise ValueError(f"{len(self.names)} names for {len(self.points)} points")

    def arranged(self, names: Sequence[str]) -> np.ndarray:
        """The points in the order of ``names``, NaN for a name this file lacks."""
        where = {n: i for i, n in enumerate(self.names)}
        out = np.full((len(names), 3), np.nan)
        for j, name in enumerate(names):
            if name in where:
                out[j] = self.points[where[name]]
        return out


def unnamed(count: int) -> List[str]:
    """The names of a format without names: LM1, LM2, ..."""
    return [f"LM{i + 1}" for i in range(count)]


def is_unnamed(names: Optional[Sequence[str]]) -> bool:
    return names is not None and list(names) == unnamed(len(names))


def landmark_format(path: Union[str, Path]) -> Optional[str]:
    """The format a file's name says (FORMATS), or None."""
    name = Path(path).name.lower()
    for fmt, suffix in FORMATS.items():
        if name.endswith(suffix):
            return fmt
    return None


def _number(path: Path, text: str, where: str) -> float:
    if text.strip().lower() in MISSING_WORDS:
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise DataError(path, f"{where}: {text!r} is not a number") from None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # Windows tools write a byte-order mark
    except UnicodeDecodeError:
        return path.read_text(encoding="latin-1")


def _read_json(path: Path):
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise DataError(path, f"invalid JSON ({error})") from None


def _check_names(path: Path, names: Sequence[str]) -> None:
    repeated = sorted({n for n in names if list(names).count(n) > 1})
    if repeated:
        raise DataError(path, f"names a landmark more than once: {', '.join(repeated[:5])}")


def _points(path: Path, values, where: str = "landmarks") -> np.ndarray:
    try:
        array = np.array([[math.nan] * 3 if p is None else [math.nan if v is None else v for v in p] for p in values],
                         dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(path, f"{where}: expected a list of [x, y, z]") from None
    if array.size == 0:
        raise DataError(path, "holds no landmarks")
    if array.ndim != 2 or array.shape[1] != 3:
        raise DataError(path, f"{where}: expected [x, y, z] per landmark, got shape {array.shape}")
    if np.isinf(array).any():
        raise DataError(path, f"{where}: infinite coordinates")
    return array


# --- readers ---------------------------------------------------------------------------------------

def _read_slicer_json(path: Path) -> NamedLandmarks:
    data = _read_json(path)
    markups = data.get("markups") if isinstance(data, dict) else None
    if not markups:
        raise DataError(path, "has no 'markups': not a 3D Slicer .mrk.json file")
    names, points = [], []
    for markup in markups:
        system = str(markup.get("coordinateSystem", "LPS")).upper()
        if system not in ("LPS", "RAS"):
            raise DataError(path, f"coordinate system {system!r}; expected LPS or RAS")
        flip = np.array([-1.0, -1.0, 1.0]) if system == "RAS" else np.ones(3)
        for i, point in enumerate(markup.get("controlPoints", [])):
            names.append(str(point.get("label") or f"LM{len(names) + 1}"))
            position = point.get("position")
            missing = point.get("positionStatus", "defined") != "defined" or not position
            points.append([math.nan] * 3 if missing else list(np.asarray(_points(path, [position])[0]) * flip))
    return NamedLandmarks(names, _points(path, points))


def _read_fcsv(path: Path) -> NamedLandmarks:
    columns = ["id", "x", "y", "z", "ow", "ox", "oy", "oz", "vis", "sel", "lock", "label", "desc", "associatedNodeID"]
    system, rows = "RAS", []  # Slicer's fcsv was RAS until 4.11 declared it
    for line in _read_text(path).splitlines():
        if line.startswith("#"):
            key, _, value = line[1:].partition("=")
            key, value = key.strip().lower(), value.strip()
            if key == "coordinatesystem":
                system = {"0": "RAS", "1": "LPS"}.get(value, value.upper())
            elif key == "columns":
                columns = [c.strip() for c in value.split(",")]
        elif line.strip():
            rows.append(line)
    if system not in ("LPS", "RAS"):
        raise DataError(path, f"coordinate system {system!r}; expected LPS or RAS")
    if not {"x", "y", "z"} <= set(columns):
        raise DataError(path, f"its columns ({', '.join(columns)}) lack x, y, z")
    names, points = [], []
    for n, row in enumerate(csv.reader(rows), start=1):
        record = dict(zip(columns, row))
        points.append([_number(path, record.get(a, ""), f"row {n}") for a in "xyz"])
        names.append(record.get("label") or f"LM{n}")
    flip = np.array([-1.0, -1.0, 1.0]) if system == "RAS" else np.ones(3)
    return NamedLandmarks(names, _points(path, points) * flip)


def _read_ljson(path: Path) -> NamedLandmarks:
    data = _read_json(path)
    if not isinstance(data, dict):
        raise DataError(path, "expected a menpo .ljson object")
    groups = data.get("groups")
    group = next(iter(groups.values())) if isinstance(groups, dict) and groups else data  # version 3, or 2
    landmarks = group.get("landmarks") if isinstance(group, dict) else None
    if not isinstance(landmarks, dict) or "points" not in landmarks:
        raise DataError(path, "has no landmarks.points: not a menpo .ljson file")
    points = _points(path, landmarks["points"])
    names = unnamed(len(points))
    labels = group.get("labels") or []
    masks = [lab.get("mask", []) for lab in labels]
    # One label per point (as se3unet writes): the labels are the names; groups of points stay LMi.
    if labels and all(len(m) == 1 for m in masks) and sorted(m[0] for m in masks) == list(range(len(points))):
        for lab, mask in zip(labels, masks):
            names[mask[0]] = str(lab.get("label"))
    return NamedLandmarks(names, points)


def _read_pts(path: Path) -> NamedLandmarks:
    lines = [line.split() for line in _read_text(path).splitlines() if line.strip()]
    if len(lines) < 2 or lines[0][0].lower() != "version":
        raise DataError(path, "expected 'Version 1.0' and a count on its first two lines (IDAV Landmark Editor .pts)")
    try:
        count = int(lines[1][0])
    except ValueError:
        raise DataError(path, f"line 2: {lines[1][0]!r} is not a landmark count") from None
    rows = lines[2:]
    if len(rows) != count:
        raise DataError(path, f"says {count} landmarks but holds {len(rows)}")
    if any(len(r) != 4 for r in rows):
        raise DataError(path, "expected 'name x y z' on every landmark line")
    points = [[_number(path, v, f"landmark {r[0]}") for v in r[1:]] for r in rows]
    return NamedLandmarks([r[0] for r in rows], _points(path, points))


def _read_csv(path: Path) -> NamedLandmarks:
    rows = [r for r in csv.reader(io.StringIO(_read_text(path)))
            if r and any(c.strip() for c in r) and not r[0].lstrip().startswith("#")]
    if not rows:
        raise DataError(path, "holds no landmarks")
    header = [c.strip().lower() for c in rows[0]]
    if {"x", "y", "z"} <= set(header):
        name_column = next((header.index(h) for h in ("landmark", "name", "label") if h in header), None)
        body = rows[1:]
        points = [[_number(path, r[header.index(a)], f"row {n}") for a in "xyz"] for n, r in enumerate(body, start=2)]
        names = [r[name_column].strip() for r in body] if name_column is not None else unnamed(len(body))
        return NamedLandmarks(names, _points(path, points))
    if all(len(r) == 1 for r in rows):  # space-separated numbers
        rows = [r[0].split() for r in rows]
    named = len(rows[0]) == 4
    if any(len(r) != (4 if named else 3) for r in rows):
        raise DataError(path, "expected rows of 'x, y, z' or 'name, x, y, z', or a landmark,x,y,z header")
    points = [[_number(path, v, f"row {n}") for v in (r[1:] if named else r)] for n, r in enumerate(rows, start=1)]
    return NamedLandmarks([r[0].strip() for r in rows] if named else unnamed(len(rows)), _points(path, points))


def _read_plain_json(path: Path) -> NamedLandmarks:
    data = _read_json(path)
    if isinstance(data, dict):
        data = data.get("landmarks", data)
    if isinstance(data, dict):
        return NamedLandmarks([str(k) for k in data], _points(path, list(data.values())))
    if isinstance(data, list):
        return NamedLandmarks(unnamed(len(data)), _points(path, data))
    raise DataError(path, "expected {\"landmarks\": {name: [x, y, z]}} or a list of [x, y, z]")


def _read_array(path: Path) -> NamedLandmarks:
    if path.suffix.lower() == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except Exception as error:
            raise DataError(path, f"not a readable .npy array ({error})") from None
    else:
        return _read_csv(path)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != 3:
        raise DataError(path, f"landmarks must be an array of shape [n, 3], got {values.shape}")
    return NamedLandmarks(unnamed(len(values)), _points(path, values.tolist()))


READERS = {"mrk.json": _read_slicer_json, "fcsv": _read_fcsv, "ljson": _read_ljson, "pts": _read_pts,
           "csv": _read_csv, "json": _read_plain_json, "txt": _read_array, "npy": _read_array}


def read_landmark_file(path: Union[str, Path]) -> NamedLandmarks:
    """The named landmarks of one file, its format from its name (FORMATS; .tps: read_tps)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no such landmark file")
    fmt = landmark_format(path)
    if fmt == "tps":
        raise DataError(path, "a TPS file holds a collection of scans: read it with read_tps (prepare: --landmarks)")
    if fmt is None:
        raise DataError(path, f"unknown landmark format; use one of {', '.join(FORMATS.values())}")
    found = READERS[fmt](path)
    _check_names(path, found.names)
    return found


def read_tps(path: Union[str, Path]) -> Dict[str, NamedLandmarks]:
    """A TPS file's specimens by ID= (else IMAGE='s stem, else their number): LM= or LM3= points
    (LM1, ...), multiplied by SCALE= when given."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no such TPS file")
    specimens: Dict[str, NamedLandmarks] = {}
    lines = [line.strip() for line in _read_text(path).splitlines()]
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line:
            i += 1
            continue
        match = re.fullmatch(r"LM3?\s*=\s*(\d+)", line, flags=re.IGNORECASE)
        if not match:
            raise DataError(path, f"line {i + 1}: expected LM=n or LM3=n to start a specimen, got {line!r}")
        count, rows, i = int(match.group(1)), [], i + 1
        for _ in range(count):
            if i >= len(lines) or "=" in lines[i]:
                raise DataError(path, f"line {i + 1}: a specimen has fewer than its {count} landmarks")
            values = lines[i].replace(",", " ").split()
            if len(values) != 3:
                raise DataError(path, f"line {i + 1}: expected x y z (3D landmarks), got {len(values)} values")
            rows.append([_number(path, v, f"line {i + 1}") for v in values])
            i += 1
        fields = {}
        while i < len(lines) and not re.match(r"LM3?\s*=", lines[i], flags=re.IGNORECASE):
            key, _, value = lines[i].partition("=")
            if key.strip():
                fields[key.strip().upper()] = value.strip()
            i += 1
        name = fields.get("ID") or (Path(fields["IMAGE"]).stem if "IMAGE" in fields else str(len(specimens) + 1))
        if name in specimens:
            raise DataError(path, f"two specimens with ID {name!r}")
        scale = _number(path, fields.get("SCALE", "1"), f"specimen {name} SCALE") if "SCALE" in fields else 1.0
        specimens[name] = NamedLandmarks(unnamed(count), _points(path, rows) * scale)
    if not specimens:
        raise DataError(path, "holds no specimens")
    return specimens


# --- writers -------------------------------------------------------------------------------------

def _fmt(value: float) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.7g}"


def format_landmarks(names: Sequence[str], points: np.ndarray, fmt: str, scan: str = "",
                     confidence: Optional[np.ndarray] = None, face_score: Optional[float] = None) -> str:
    """The text of a landmark file in ``fmt`` (WRITTEN_FORMATS). ``confidence``: each landmark's
    likely error, written where the format has room for it (csv, json, Slicer descriptions)."""
    points = np.asarray(points, dtype=np.float64)
    stem = Path(scan).stem if scan else "scan"
    if fmt == "csv":
        rows = [["landmark", "x", "y", "z"] + (["confidence"] if confidence is not None else [])]
        for i, (n, p) in enumerate(zip(names, points)):
            rows.append([n, *(_fmt(v) for v in p)] + ([f"{confidence[i]:.3g}"] if confidence is not None else []))
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        return buffer.getvalue()
    if fmt == "json":
        record = {"scan": scan, "landmarks": {n: [float(v) for v in p] for n, p in zip(names, points)}}
        if confidence is not None:
            record["confidence"] = {n: float(c) for n, c in zip(names, confidence)}
            record["face_score"] = face_score
        return json.dumps(record, indent=1).replace("NaN", "null")
    if fmt == "mrk.json":
        control = [{"id": str(i + 1), "label": n, "description": "" if confidence is None else
                    f"likely error {confidence[i]:.3g}", "associatedNodeID": "",
                    "position": [float(v) if math.isfinite(v) else 0.0 for v in p],
                    "orientation": [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0],
                    "selected": True, "locked": False, "visibility": True,
                    "positionStatus": "defined" if np.isfinite(p).all() else "missing"}
                   for i, (n, p) in enumerate(zip(names, points))]
        record = {"@schema": SLICER_SCHEMA, "markups": [{
            "type": "Fiducial", "coordinateSystem": "LPS", "coordinateUnits": "mm", "locked": False,
            "fixedNumberOfControlPoints": False, "labelFormat": "%N-%d", "lastUsedControlPointNumber": len(control),
            "controlPoints": control, "measurements": []}]}
        return json.dumps(record, indent=4)
    if fmt == "fcsv":
        lines = ["# Markups fiducial file version = 4.11", "# CoordinateSystem = LPS",
                 "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID"]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for i, (n, p) in enumerate(zip(names, points)):
            desc = "" if confidence is None else f"likely error {confidence[i]:.3g}"
            writer.writerow([f"vtkMRMLMarkupsFiducialNode_{i}", *(_fmt(v) for v in p), 0, 0, 0, 1, 1, 1, 0, n, desc, ""])
        return "\n".join(lines) + "\n" + buffer.getvalue()
    if fmt == "tps":
        rows = "\n".join(" ".join(_fmt(v) for v in p) for p in points)
        return f"LM3={len(points)}\n{rows}\nID={stem}\n"
    if fmt == "ljson":
        record = {"version": 3, "groups": {"se3unet": {
            "landmarks": {"points": [[float(v) if math.isfinite(v) else None for v in p] for p in points],
                          "connectivity": []},
            "labels": [{"label": n, "mask": [i]} for i, n in enumerate(names)]}}}
        return json.dumps(record, indent=1)
    if fmt == "pts":
        tokens = [re.sub(r"\s+", "_", n) for n in names]  # a name is one token in this format
        rows = "\n".join(f"{t}  {'  '.join(_fmt(v) for v in p)}" for t, p in zip(tokens, points))
        return f"Version 1.0\n{len(points)}\n{rows}\n"
    raise ValueError(f"unknown landmark format {fmt!r}; one of {', '.join(WRITTEN_FORMATS)}")
