"""The reference face: what ICP realignment aligns scans to, and the classical baseline's
landmarks. For a face model (Surrey, ICT) it is the model's mean face; for other sources the
training scan whose landmarks lie nearest the training mean (a medoid: a real face, not a blur).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Union

import numpy as np

from .errors import DataError
from .preprocess import prepare_points, sample_surface

# Its file in a prepared cache.
REFERENCE = "reference.npz"


@dataclass
class ReferenceFace:
    points: np.ndarray  # [N, 3] normalised frame
    normals: np.ndarray  # [N, 3]
    landmarks: np.ndarray  # [K, 3]
    scale: float  # mm per unit

    @classmethod
    def load(cls, path: Union[str, Path]) -> "ReferenceFace":
        path = Path(path)
        if not path.is_file():
            raise DataError(path, "no reference face here; run `se3unet prepare` again to rebuild it")
        try:
            with np.load(path, allow_pickle=False) as d:
                return cls(d["points"], d["normals"], d["landmarks"], float(d["scale"]))
        except Exception as error:  # a truncated file: BadZipFile, EOFError, KeyError, ...
            raise DataError(path, f"damaged reference face ({type(error).__name__}: {error}); delete it and run "
                                  f"the same `se3unet prepare` again to rebuild it") from None

    def arrays(self) -> Dict[str, np.ndarray]:
        return {"points": self.points, "normals": self.normals, "landmarks": self.landmarks,
                "scale": np.array(self.scale)}


def mean_face_reference(vertices: np.ndarray, triangles: np.ndarray, landmarks: np.ndarray, samples: int,
                        points: int, seed: int = 0) -> ReferenceFace:
    """A face model's mean face, prepared as the scans are."""
    rng = np.random.default_rng([seed, 2**31 - 1])
    cloud, normals = sample_surface(vertices, triangles, samples, rng)
    scan = prepare_points(cloud, normals, landmarks, points, 1.0, "mean", "neutral")
    return ReferenceFace(scan.points, scan.normals, scan.landmarks, scan.scale)


def medoid_reference(train: Dict[str, np.ndarray]) -> ReferenceFace:
    landmarks = train["landmarks"].astype(np.float64)
    mean = np.nanmean(landmarks, axis=0)
    distance = np.nanmean(((landmarks - mean) ** 2).sum(-1), axis=1)
    i = int(np.nanargmin(distance))
    return ReferenceFace(train["points"][i], train["normals"][i], train["landmarks"][i], float(train["scale"][i]))

