"""Reading scans and landmark files, with errors that name the file and the problem."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .errors import DataError, DataWarning

MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off")
CLOUD_SUFFIXES = (".npy", ".xyz")
SCAN_SUFFIXES = MESH_SUFFIXES + CLOUD_SUFFIXES


@dataclass
class Surface:
    """A mesh (triangles given) or a point cloud (triangles None), in the file's units."""

    vertices: np.ndarray  # [V, 3]
    triangles: Optional[np.ndarray] = None  # [T, 3]
    normals: Optional[np.ndarray] = None  # per vertex, clouds only

    @property
    def is_mesh(self) -> bool:
        return self.triangles is not None and len(self.triangles) > 0


def _check_points(path: Path, values: np.ndarray, what: str, allow_nan: bool = False) -> np.ndarray:
    if values.ndim != 2 or values.shape[1] != 3:
        raise DataError(path, f"{what} must be an array of shape [n, 3], got {values.shape}")
    if len(values) == 0:
        raise DataError(path, f"no {what}")
    bad = ~np.isfinite(values) if not allow_nan else np.isinf(values)
    if bad.any():
        raise DataError(path, f"{int(bad.any(1).sum())} {what} have non-finite coordinates")
    return values.astype(np.float64)


def _usable_normals(path: Path, normals: np.ndarray) -> Optional[np.ndarray]:
    """A cloud's given normals scaled to unit length; None (estimate them from the points, with
    a warning) when any is NaN, infinite or zero: such a normal would make the model's input NaN
    or meaningless (all-zero normals put landmarks 79 mm off where estimated ones give 1.9)."""
    normals = np.asarray(normals, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        lengths = np.linalg.norm(normals, axis=1)
    bad = ~np.isfinite(lengths) | (lengths < 1e-6)
    if bad.any():
        warnings.warn(DataWarning(f"{path}: {int(bad.sum())} of {len(normals)} normals are NaN, infinite or zero; "
                                  f"normals are estimated from the points instead"))
        return None
    return normals / lengths[:, None]


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except Exception as error:  # numpy raises several kinds for a damaged file
        raise DataError(path, f"not a readable .npy array ({error})") from None


def read_surface(path: Union[str, Path]) -> Surface:
    """.obj/.ply/.stl/.off via trimesh (vertex order kept: process=False); .npy [M, 3] or
    [M, 6] (points, normals); .xyz text."""
    path = Path(path)
    if path.is_dir():
        raise DataError(path, f"is a folder, not a scan; pass its scans (e.g. {path}/*.obj)")
    if not path.is_file():
        raise DataError(path, "no such file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        array = _load_npy(path)
        if array.ndim == 2 and array.shape[1] == 6:
            return Surface(_check_points(path, array[:, :3], "points"), normals=_usable_normals(path, array[:, 3:]))
        return Surface(_check_points(path, np.asarray(array), "points"))
    if suffix == ".xyz":
        return Surface(_check_points(path, _load_text(path), "points"))
    if suffix not in MESH_SUFFIXES:
        raise DataError(path, f"unsupported scan format {suffix!r}; use one of {SCAN_SUFFIXES}")
    import trimesh

    try:
        loaded = trimesh.load(path, process=False, force=None)
    except Exception as error:
        raise DataError(path, f"cannot be read as a {suffix} file ({error})") from None
    if isinstance(loaded, trimesh.Scene):
        if not loaded.geometry:
            raise DataError(path, "holds no geometry")
        loaded = trimesh.util.concatenate(list(loaded.geometry.values()))
    vertices = np.asarray(getattr(loaded, "vertices", np.zeros((0, 3))), dtype=np.float64)
    vertices = _check_points(path, vertices.reshape(-1, 3) if vertices.size else np.zeros((0, 3)), "vertices")
    faces = getattr(loaded, "faces", None)
    triangles = np.asarray(faces, dtype=np.int64) if faces is not None and len(faces) else None
    return Surface(vertices, triangles)


def _load_text(path: Path) -> np.ndarray:
    try:
        text = path.read_text().replace(",", " ")
        rows = [line.split() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        values = np.array(rows, dtype=np.float64)
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(path, f"expected rows of 3 numbers ({error})") from None
    return values


def read_landmarks(path: Union[str, Path]) -> np.ndarray:
    """Landmarks [K, 3] of a landmark file in any format data/landmark_files.py reads, in the
    file's order; NaN marks a missing landmark."""
    from .landmark_files import read_landmark_file

    return read_landmark_file(path).points
