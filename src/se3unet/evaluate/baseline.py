"""The classical baseline: the reference (mean) face rigidly aligned to a scan by ICP, its
landmarks read off. What a learned detector has to beat."""

from __future__ import annotations

import numpy as np

from ..data.reference import ReferenceFace
from ..geometry.icp import align


def baseline_landmarks(points: np.ndarray, reference: ReferenceFace, seed: int = 0) -> np.ndarray:
    """Landmarks [K, 3] for a scan [N, 3] in any pose, from shape alone."""
    fit = align(reference.points, points, seed=seed)
    return fit.apply(reference.landmarks.astype(np.float64))
