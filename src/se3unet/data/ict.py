"""The ICT Face Model (USC ICT's ICT-FaceKit, MIT licence), read from one NumPy file.

Whole heads (face, skull cap, ears, neck) in millimetres: a head is
``neutral + alpha . identity + w . expression`` with alpha ~ N(0, I) over 100 identity modes and
w in [0, 1] over 53 ARKit-style blendshapes; the 68 iBUG landmarks are vertices
(../shared/data/ict/README.md describes the file). Read in place; never copied.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np

from .errors import DataError

MODEL_FILE = "ict_face_model.npz"
ENVIRONMENT_VARIABLE = "SE3UNET_ICT_DIR"
ARRAYS = ("neutral", "identity", "expression", "expression_names", "triangles", "landmarks_ibug68", "face_vertices")


def resolve_ict_dir(folder: Optional[Union[str, Path]] = None) -> Path:
    """The ICT folder: the argument, else $SE3UNET_ICT_DIR; refused unless its file is there."""
    if folder is None:
        folder = os.environ.get(ENVIRONMENT_VARIABLE)
        if not folder:
            raise FileNotFoundError(f"no ICT Face Model folder given: pass --path or set {ENVIRONMENT_VARIABLE} "
                                    f"to the folder holding {MODEL_FILE}")
    folder = Path(folder)
    if not (folder / MODEL_FILE).is_file():
        raise FileNotFoundError(f"ICT Face Model folder {folder} lacks {MODEL_FILE}")
    return folder


class IctFaceModel:
    """Identity and expression modes, triangles, the face region and the 68 iBUG landmarks."""

    def __init__(self, folder: Optional[Union[str, Path]] = None):
        self.folder = resolve_ict_dir(folder)
        path = self.folder / MODEL_FILE
        try:
            with np.load(path, allow_pickle=False) as archive:
                missing = [a for a in ARRAYS if a not in archive.files]
                if missing:
                    raise DataError(path, f"lacks the arrays {missing}: not the ICT Face Model file?")
                data: Dict[str, np.ndarray] = {a: archive[a] for a in ARRAYS}
        except DataError:
            raise
        except Exception as error:
            raise DataError(path, f"cannot be read ({error})") from None
        self.neutral = data["neutral"].astype(np.float64)
        self.identity = data["identity"]
        self.expression = data["expression"]
        self.expression_names = [str(n) for n in data["expression_names"]]
        self.triangles = data["triangles"].astype(np.int64)
        self.landmark_vertices = data["landmarks_ibug68"].astype(np.int64)
        self.face_vertices = int(data["face_vertices"])
        vertices = len(self.neutral)
        if self.identity.shape[1:] != (vertices, 3) or self.expression.shape[1:] != (vertices, 3):
            raise DataError(path, "identity or expression modes do not match the neutral head")
        if len(self.landmark_vertices) != 68 or not (0 <= self.landmark_vertices).all() \
                or self.landmark_vertices.max() >= vertices:
            raise DataError(path, "landmarks_ibug68 must be 68 vertex indices of the head")
        self.landmark_names = [f"ibug{i + 1}" for i in range(68)]
        # The face region: triangles whose vertices all belong to the face (no skull, ears, neck).
        self.face_triangles = self.triangles[(self.triangles < self.face_vertices).all(axis=1)]

    @property
    def num_identities(self) -> int:
        return len(self.identity)

    def vertices(self, alpha: np.ndarray, weights: Optional[Dict[str, float]] = None) -> np.ndarray:
        """The head for identity coefficients ``alpha`` and blendshape ``weights`` (name -> w)."""
        v = self.neutral + np.tensordot(alpha.astype(np.float32), self.identity, axes=1)
        for name, w in (weights or {}).items():
            v = v + w * self.expression[self.expression_names.index(name)]
        return np.asarray(v, dtype=np.float64)

    def region_triangles(self, region: str) -> np.ndarray:
        """"face": the face's triangles (no skull, ears or neck); "head": all of them."""
        if region not in ("face", "head"):
            raise ValueError(f"ICT region must be 'face' or 'head', got {region!r}")
        return self.face_triangles if region == "face" else self.triangles

    def landmarks(self, vertices: np.ndarray) -> np.ndarray:
        return vertices[self.landmark_vertices]
