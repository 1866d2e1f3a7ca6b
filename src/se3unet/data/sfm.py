"""The Surrey Face Model (SFM): a reader written from its FORMAT.md, and random faces from it.

Files (eos's share/ folder; free for non-commercial use): sfm_shape_3448.bin (PCA shape model,
millimetres), expression_blendshapes_3448.bin (6 blendshapes) and ibug_to_sfm.txt (iBUG-68
landmark -> vertex). The folder is the user's: an argument, or SE3UNET_SFM_DIR.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from .errors import DataError

SHAPE_FILE = "sfm_shape_3448.bin"
EXPRESSIONS_FILE = "expression_blendshapes_3448.bin"
LANDMARKS_FILE = "ibug_to_sfm.txt"
ENVIRONMENT_VARIABLE = "SE3UNET_SFM_DIR"


class _Reader:
    """Little-endian cereal BinaryArchive fields, with errors that name the file."""

    def __init__(self, path: Path):
        self.path = path
        self.data = path.read_bytes()
        self.offset = 0

    def take(self, fmt: str, what: str):
        size = struct.calcsize(fmt)
        if self.offset + size > len(self.data):
            raise DataError(self.path, f"truncated: ends at byte {len(self.data)} while reading {what}")
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += size
        return values

    def matrix(self, what: str) -> np.ndarray:
        rows, cols = self.take("ii", f"{what} dimensions")
        if rows < 0 or cols < 0 or rows * cols > 10**8:
            raise DataError(self.path, f"implausible {what} size {rows} x {cols}: not an SFM file?")
        count = rows * cols
        end = self.offset + 4 * count
        if end > len(self.data):
            raise DataError(self.path, f"truncated: {what} needs {count} floats past byte {self.offset}")
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.offset)
        self.offset = end
        return values.reshape(cols, rows).T.astype(np.float64)  # stored column-major

    def finish(self) -> None:
        if self.offset != len(self.data):
            raise DataError(self.path, f"{len(self.data) - self.offset} unexpected bytes after the model")


@dataclass
class ShapeModel:
    mean: np.ndarray  # [V, 3] mm
    basis: np.ndarray  # [3V, C] orthonormal
    eigenvalues: np.ndarray  # [C] variances, mm^2
    triangles: np.ndarray  # [T, 3] int


def read_shape_model(path: Union[str, Path]) -> ShapeModel:
    path = Path(path)
    r = _Reader(path)
    (version,) = r.take("I", "class version")
    if version != 1:
        raise DataError(path, f"class version {version}, expected 1: not an SFM shape model?")
    mean = r.matrix("shape mean")
    basis = r.matrix("shape basis")
    eigenvalues = r.matrix("shape eigenvalues")
    (n,) = r.take("Q", "triangle count")
    if n > 10**7:
        raise DataError(path, f"implausible triangle count {n}")
    triangles = np.array(r.take(f"{3 * n}i", "triangles"), dtype=np.int64).reshape(n, 3)
    for what in ("colour mean", "colour basis", "colour eigenvalues"):
        r.matrix(what)
    (n_colour,) = r.take("Q", "colour triangle count")
    r.take(f"{3 * n_colour}i", "colour triangles")
    (n_uv,) = r.take("Q", "texture coordinate count")
    r.take(f"{2 * n_uv}d", "texture coordinates")
    r.finish()
    vertices = mean.shape[0] // 3
    if mean.shape != (3 * vertices, 1) or basis.shape[0] != 3 * vertices or eigenvalues.shape != (basis.shape[1], 1):
        raise DataError(path, f"inconsistent shapes: mean {mean.shape}, basis {basis.shape}, "
                              f"eigenvalues {eigenvalues.shape}")
    if triangles.size and (triangles.min() < 0 or triangles.max() >= vertices):
        raise DataError(path, f"triangle indices outside 0..{vertices - 1}")
    return ShapeModel(mean.reshape(vertices, 3), basis, eigenvalues[:, 0], triangles)


def read_blendshapes(path: Union[str, Path], vertices: int) -> Dict[str, np.ndarray]:
    """name -> per-vertex offsets [V, 3] in mm."""
    path = Path(path)
    r = _Reader(path)
    (count,) = r.take("Q", "blendshape count")
    if count > 1000:
        raise DataError(path, f"implausible blendshape count {count}: not an SFM blendshape file?")
    shapes = {}
    for i in range(count):
        (length,) = r.take("Q", f"name length of blendshape {i}")
        if length > 1000:
            raise DataError(path, f"implausible name length {length} for blendshape {i}")
        name = bytes(r.take(f"{length}s", f"name of blendshape {i}")[0]).decode("ascii", errors="replace")
        offsets = r.matrix(f"blendshape {name}")
        if offsets.shape != (3 * vertices, 1):
            raise DataError(path, f"blendshape {name} has {offsets.shape[0]} values, expected {3 * vertices}")
        shapes[name] = offsets.reshape(vertices, 3)
    r.finish()
    return shapes


def read_landmark_mapping(path: Union[str, Path]) -> Dict[int, int]:
    """iBUG number (1-based) -> vertex index (0-based), from the [landmark_mappings] table."""
    path = Path(path)
    mapping, in_table = {}, False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line.startswith("["):
            in_table = line == "[landmark_mappings]"
            continue
        if in_table and line:
            match = re.fullmatch(r"(\d+)\s*=\s*(\d+)", line)
            if not match:
                raise DataError(path, f"line {number}: expected 'IBUG = VERTEX', got {line!r}")
            mapping[int(match.group(1))] = int(match.group(2))
    if not mapping:
        raise DataError(path, "no [landmark_mappings] entries")
    return mapping


def resolve_sfm_dir(folder: Optional[Union[str, Path]] = None) -> Path:
    """The SFM folder: the argument, else $SE3UNET_SFM_DIR; refused unless all three files are there."""
    if folder is None:
        folder = os.environ.get(ENVIRONMENT_VARIABLE)
        if not folder:
            raise FileNotFoundError(
                f"no Surrey Face Model folder given: pass --sfm-dir or set {ENVIRONMENT_VARIABLE} to the folder "
                f"holding {SHAPE_FILE}, {EXPRESSIONS_FILE} and {LANDMARKS_FILE} (eos's share/ folder)"
            )
    folder = Path(folder)
    missing = [f for f in (SHAPE_FILE, EXPRESSIONS_FILE, LANDMARKS_FILE) if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"Surrey Face Model folder {folder} lacks {', '.join(missing)}")
    return folder


class SurreyFaceModel:
    """The shape model, its expression blendshapes and its 50 iBUG landmarks."""

    def __init__(self, folder: Optional[Union[str, Path]] = None):
        self.folder = resolve_sfm_dir(folder)
        self.shape = read_shape_model(self.folder / SHAPE_FILE)
        vertices = self.shape.mean.shape[0]
        self.blendshapes = read_blendshapes(self.folder / EXPRESSIONS_FILE, vertices)
        mapping = read_landmark_mapping(self.folder / LANDMARKS_FILE)
        bad = {k: v for k, v in mapping.items() if not 0 <= v < vertices}
        if bad:
            raise DataError(self.folder / LANDMARKS_FILE, f"vertex indices outside the model: {bad}")
        self.landmark_numbers: List[int] = sorted(mapping)  # iBUG numbers, 1-based
        self.landmark_vertices = np.array([mapping[k] for k in self.landmark_numbers])

    @property
    def triangles(self) -> np.ndarray:
        return self.shape.triangles

    @property
    def num_components(self) -> int:
        return self.shape.basis.shape[1]

    def vertices(self, coefficients: np.ndarray, expression: Optional[Dict[str, float]] = None) -> np.ndarray:
        """mean + basis @ (sqrt(eigenvalues) * coefficients) + sum_i w_i blendshape_i, [V, 3] mm."""
        offsets = self.shape.basis @ (np.sqrt(self.shape.eigenvalues) * coefficients)
        v = self.shape.mean + offsets.reshape(-1, 3)
        for name, weight in (expression or {}).items():
            if name not in self.blendshapes:
                raise ValueError(f"unknown expression {name!r}; the model has {sorted(self.blendshapes)}")
            v = v + weight * self.blendshapes[name]
        return v

    def random_face(self, rng: np.random.Generator, expression_probability: float = 0.3,
                    coefficient_scale: float = 1.0) -> Tuple[np.ndarray, Dict[str, float]]:
        """Vertices of a random identity (alpha ~ N(0, I)) and, with the given probability, a
        random expression (one blendshape, weight uniform in [0, 1])."""
        alpha = rng.standard_normal(self.num_components) * coefficient_scale
        expression = {}
        if rng.random() < expression_probability:
            name = sorted(self.blendshapes)[rng.integers(len(self.blendshapes))]
            expression[name] = float(rng.random())
        return self.vertices(alpha, expression), expression

    def landmarks(self, vertices: np.ndarray) -> np.ndarray:
        return vertices[self.landmark_vertices]
