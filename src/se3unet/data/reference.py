"""The reference face: what ICP realignment aligns scans to, and the classical baseline's
landmarks. For the Surrey Face Model it is the model's mean face; for other sources the
training scan whose landmarks lie nearest the training mean (a medoid: a real face, not a blur).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Union

import numpy as np

from .preprocess import prepare_points, sample_surface


@dataclass
class ReferenceFace:
    points: np.ndarray  # [N, 3] normalised frame
    normals: np.ndarray  # [N, 3]
    landmarks: np.ndarray  # [K, 3]
    scale: float  # mm per unit

    @classmethod
    def load(cls, path: Union[str, Path]) -> "ReferenceFace":
        with np.load(path, allow_pickle=False) as d:
            return cls(d["points"], d["normals"], d["landmarks"], float(d["scale"]))

    def arrays(self) -> Dict[str, np.ndarray]:
        return {"points": self.points, "normals": self.normals, "landmarks": self.landmarks,
                "scale": np.array(self.scale)}


def sfm_mean_reference(model, samples: int, points: int, seed: int = 0) -> ReferenceFace:
    rng = np.random.default_rng([seed, 2**31 - 1])
    vertices = model.shape.mean
    cloud, normals = sample_surface(vertices, model.triangles, samples, rng)
    scan = prepare_points(cloud, normals, model.landmarks(vertices), points, 1.0, "mean", "neutral")
    return ReferenceFace(scan.points, scan.normals, scan.landmarks, scan.scale)


def medoid_reference(train: Dict[str, np.ndarray]) -> ReferenceFace:
    landmarks = train["landmarks"].astype(np.float64)
    mean = np.nanmean(landmarks, axis=0)
    distance = np.nanmean(((landmarks - mean) ** 2).sum(-1), axis=1)
    i = int(np.nanargmin(distance))
    return ReferenceFace(train["points"][i], train["normals"][i], train["landmarks"][i], float(train["scale"][i]))

