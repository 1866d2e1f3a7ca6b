"""Rigid ICP realignment that survives any starting rotation.

Used to bring a scan in an unknown pose back to a reference face (the mean face) by its
shape alone; it never looks at landmarks. A single ICP only finds the nearest local minimum,
so it starts from many rotations (the scan's principal axes matched to the reference's in
each of 4 proper ways, and the 24 rotations of the cube), runs a short coarse ICP on a subset
from each, and refines the best few on all points (point-to-plane when the reference has
normals).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import List, Optional, Tuple

import numpy as np
from scipy.spatial import cKDTree


@dataclass
class RigidAlignment:
    rotation: np.ndarray  # [3, 3]
    translation: np.ndarray  # [3]
    rms: float  # root mean square distance of the inlier pairs after alignment

    def apply(self, points: np.ndarray) -> np.ndarray:
        return points @ self.rotation.T + self.translation


def kabsch(source: np.ndarray, target: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The rotation and translation minimising |R source + t - target|^2 over pairs."""
    rotation = similarity(source, target)[1]  # the best rotation does not depend on the scale
    return rotation, target.mean(0) - rotation @ source.mean(0)


def similarity(source: np.ndarray, target: np.ndarray) -> Tuple[float, np.ndarray, np.ndarray]:
    """Scale s, rotation R and shift t minimising |s R source + t - target|^2 (Umeyama)."""
    cs, ct = source.mean(0), target.mean(0)
    a, b = source - cs, target - ct
    u, singular, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rotation = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    scale = float((singular * [1.0, 1.0, d]).sum() / (a ** 2).sum())
    return scale, rotation, ct - scale * rotation @ cs


def _rodrigues(omega: np.ndarray) -> np.ndarray:
    angle = np.linalg.norm(omega)
    if angle < 1e-12:
        return np.eye(3)
    k = omega / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def _point_to_plane_step(p: np.ndarray, q: np.ndarray, n: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    a = np.hstack([np.cross(p, n), n])
    b = ((q - p) * n).sum(1)
    x, *_ = np.linalg.lstsq(a, b, rcond=None)
    return _rodrigues(x[:3]), x[3:]


def icp(source: np.ndarray, tree: cKDTree, target: np.ndarray, rotation: np.ndarray, translation: np.ndarray,
        iterations: int = 40, target_normals: Optional[np.ndarray] = None, trim: float = 0.9,
        tolerance: float = 1e-10) -> RigidAlignment:
    """Refines (rotation, translation) mapping source onto target; the worst (1 - trim) of the
    pairs are ignored each iteration, so holes, crops and outliers do not drag the fit."""
    previous = np.inf
    rms = np.inf
    for _ in range(iterations):
        moved = source @ rotation.T + translation
        distance, index = tree.query(moved)
        inliers = distance <= np.quantile(distance, trim)
        rms = float(np.sqrt((distance[inliers] ** 2).mean()))
        if target_normals is not None:
            step_r, step_t = _point_to_plane_step(moved[inliers], target[index[inliers]], target_normals[index[inliers]])
        else:
            step_r, step_t = kabsch(moved[inliers], target[index[inliers]])
        rotation, translation = step_r @ rotation, step_r @ translation + step_t
        if abs(previous - rms) < tolerance * max(rms, 1e-12):
            break
        previous = rms
    moved = source @ rotation.T + translation
    distance, _ = tree.query(moved)
    rms = float(np.sqrt((distance[distance <= np.quantile(distance, trim)] ** 2).mean()))
    return RigidAlignment(rotation, translation, rms)


def _cube_rotations() -> List[np.ndarray]:
    rotations = []
    for perm in ([0, 1, 2], [1, 2, 0], [2, 0, 1], [1, 0, 2], [0, 2, 1], [2, 1, 0]):
        for signs in product((1, -1), repeat=3):
            m = np.zeros((3, 3))
            m[range(3), perm] = signs
            if np.linalg.det(m) > 0:
                rotations.append(m)
    return rotations


def _principal_axes(points: np.ndarray) -> np.ndarray:
    centred = points - points.mean(0)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    return vectors[:, ::-1]  # columns: largest variance first


def starting_rotations(source: np.ndarray, target: np.ndarray) -> List[np.ndarray]:
    """Principal axes of source mapped onto target's with the 4 proper sign choices, then the
    24 rotations of the cube."""
    a, b = _principal_axes(source), _principal_axes(target)
    starts = []
    for signs in product((1, -1), repeat=3):
        r = b @ np.diag(signs) @ a.T
        if np.linalg.det(r) > 0:
            starts.append(r)
    return starts + _cube_rotations()


def align(source: np.ndarray, target: np.ndarray, target_normals: Optional[np.ndarray] = None,
          coarse_points: int = 300, fine_points: int = 2048, keep_best: int = 2, seed: int = 0) -> RigidAlignment:
    """The rigid motion that best maps ``source`` onto ``target`` from any starting pose."""
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    tree = cKDTree(target)
    rng = np.random.default_rng(seed)
    subset = source[rng.choice(len(source), min(coarse_points, len(source)), replace=False)]
    fine = source[rng.choice(len(source), min(fine_points, len(source)), replace=False)]
    centre_s, centre_t = source.mean(0), target.mean(0)
    coarse = []
    for r in starting_rotations(source, target):
        fit = icp(subset, tree, target, r, centre_t - r @ centre_s, iterations=10)
        coarse.append(fit)
    coarse.sort(key=lambda fit: fit.rms)
    refined = [icp(fine, tree, target, fit.rotation, fit.translation, target_normals=target_normals)
               for fit in coarse[:keep_best]]
    return min(refined, key=lambda fit: fit.rms)


def rotation_angle_degrees(a: np.ndarray, b: np.ndarray) -> float:
    """The angle of the rotation a b^T: how far apart two rotations are."""
    cos = (np.trace(a @ b.T) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
