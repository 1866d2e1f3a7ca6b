"""Preprocessing steps, one function each: mesh -> points -> FPS -> unit sphere -> targets.

Conventions: points are float arrays [N, 3]; ``scale`` is millimetres per unit of the
normalised cloud, so an error in normalised units times ``scale`` is an error in mm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from ..geometry.fps import farthest_point_sample
from .io import Surface


def sample_surface(vertices: np.ndarray, triangles: np.ndarray, count: int,
                   rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """``count`` points uniformly on the mesh surface (area-weighted), with the unit normal of
    the triangle each lies on, its sign arbitrary (``orient_normals`` decides it).

    Each triangle's vertices are sorted first: a sample's place in its triangle depends on the
    vertex order, so a file and the same file with the other winding give the same points."""
    import trimesh

    mesh = trimesh.Trimesh(vertices=vertices, faces=np.sort(triangles, axis=1), process=False)
    points, face_index = trimesh.sample.sample_surface(mesh, count, seed=rng)
    return np.asarray(points, dtype=np.float64), np.asarray(mesh.face_normals[face_index], dtype=np.float64)


def orient_normals(points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Each normal turned to point away from the cloud's centroid (outwards for a face or head
    scan). The one orientation rule for every input: a mesh's face normals follow its file's
    winding and a cloud's given normals may point either way, so both are re-oriented; the
    centroid moves with the cloud, so the rule does not depend on the pose."""
    outward = ((points - points.mean(0)) * normals).sum(1, keepdims=True)
    return normals * np.where(outward < 0, -1.0, 1.0)


def estimate_normals(points: np.ndarray, neighbours: int = 16) -> np.ndarray:
    """Unit normals of a cloud without them: the direction of least spread of each point's
    neighbourhood, oriented by ``orient_normals``. Depends on distances only, so it turns with
    the cloud."""
    from scipy.spatial import cKDTree

    _, index = cKDTree(points).query(points, k=min(neighbours, len(points)))
    local = points[index] - points[index].mean(axis=1, keepdims=True)
    _, vectors = np.linalg.eigh(np.einsum("nki,nkj->nij", local, local))
    return orient_normals(points, vectors[:, :, 0])


def surface_points(vertices: np.ndarray, triangles: Optional[np.ndarray], normals: Optional[np.ndarray],
                   samples: int, rng: np.random.Generator) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """A mesh's surface sampled at ``samples`` points (with face normals), or a cloud's points
    (and normals, if it has them), a random ``samples`` of them when it has more."""
    if triangles is not None:
        return sample_surface(vertices, triangles, samples, rng)
    if len(vertices) > samples:
        keep = rng.choice(len(vertices), samples, replace=False)
        return vertices[keep], None if normals is None else normals[keep]
    return vertices, normals


# The landmark at the centre of a face crop (iBUG-68's nose tip); models without it use the centroid.
CROP_CENTRE = "ibug31"


def crop_centre(landmarks: np.ndarray, names: Optional[Sequence[str]]) -> np.ndarray:
    if names is not None and CROP_CENTRE in names:
        nose = landmarks[list(names).index(CROP_CENTRE)]
        if np.isfinite(nose).all():  # a mixed cache leaves a source's missing landmarks NaN
            return nose
    with np.errstate(invalid="ignore"):  # landmarks a model does not define are NaN
        return np.nanmean(landmarks, axis=0)


def sample_sphere(surface: Surface, centre: np.ndarray, radius: float, samples: int,
                  rng: np.random.Generator) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """The part of a scan within ``radius`` of ``centre``: a mesh sampled there about as densely
    as ``samples`` points over that part alone (as the training faces were), a cloud's points
    there."""
    if not surface.is_mesh:
        points, normals = surface_points(surface.vertices, None, surface.normals, len(surface.vertices), rng)
        inside = np.linalg.norm(points - centre, axis=1) <= radius
        points, normals = points[inside], None if normals is None else normals[inside]
        if len(points) > samples:
            keep = rng.choice(len(points), samples, replace=False)
            points, normals = points[keep], None if normals is None else normals[keep]
        return points, normals
    corners = surface.vertices[surface.triangles]  # [T, 3, 3]
    middle = corners.mean(axis=1)
    reach = np.linalg.norm(corners - middle[:, None], axis=2).max(axis=1)
    near = surface.triangles[np.linalg.norm(middle - centre, axis=1) <= radius + reach]  # every triangle that may reach in
    if len(near) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3))
    draw = samples
    for _ in range(2):  # the second draw scaled so that about ``samples`` land inside
        points, normals = surface_points(surface.vertices, near, None, draw, rng)
        inside = np.linalg.norm(points - centre, axis=1) <= radius
        draw = int(np.ceil(samples * draw / max(inside.sum(), 1)))
    return points[inside], normals[inside]


@dataclass
class ModelInput:
    """A scan as the model reads it: FPS points in the unit sphere and their oriented normals."""

    points: np.ndarray  # [N, 3] float32, centroid at 0, inside the unit sphere
    normals: np.ndarray  # [N, 3] float32, unit, oriented away from the centroid
    centre: np.ndarray  # [3]: original = points * scale + centre
    scale: float


def model_input(points: np.ndarray, normals: Optional[np.ndarray], num_points: int) -> ModelInput:
    """The one scan -> model input step, shared by `prepare` and `predict`: normals estimated
    when missing and oriented by one rule, exact FPS to ``num_points``, unit-sphere scaling."""
    normals = estimate_normals(points) if normals is None else orient_normals(points, normals)
    keep = farthest_points(points, num_points)
    unit, centre, scale = normalise(points[keep])
    return ModelInput(unit.astype(np.float32), normals[keep].astype(np.float32), centre, scale)


def fewer_points(data: Dict[str, np.ndarray], num_points: int) -> Dict[str, np.ndarray]:
    """Prepared scans (points, normals, landmarks in the unit sphere, scale) cut to their first
    ``num_points``, scaled back into the unit sphere. Prepared points are in FPS order from a
    start that depends on the cloud alone, so the first n of them are the n that ``model_input``
    would keep from the same samples: a cache at 2048 points serves a model of 1024."""
    stored = data["points"].shape[1]
    if num_points > stored:
        raise ValueError(f"cannot take {num_points} points of scans that have {stored}")
    points = data["points"][:, :num_points].astype(np.float64)
    centre = points.mean(axis=1, keepdims=True)
    radius = np.linalg.norm(points - centre, axis=2).max(axis=1)[:, None, None]
    cut = dict(data)
    cut["points"] = ((points - centre) / radius).astype(data["points"].dtype)
    cut["normals"] = data["normals"][:, :num_points]
    cut["landmarks"] = ((data["landmarks"] - centre) / radius).astype(data["landmarks"].dtype)
    cut["scale"] = (data["scale"] * radius[:, 0, 0]).astype(data["scale"].dtype)
    return cut


def farthest_points(points: np.ndarray, count: int) -> np.ndarray:
    """Indices of ``count`` points by exact FPS from the point nearest the centroid: the same
    points in any pose."""
    if len(points) < count:
        raise ValueError(f"cannot keep {count} points of a cloud of {len(points)}")
    return farthest_point_sample(torch.from_numpy(np.asarray(points, dtype=np.float64))[None], count)[0].numpy()


def normalise(points: np.ndarray) -> Tuple[np.ndarray, np.ndarray, float]:
    """Centre on the centroid and scale into the unit sphere: (points, centre, scale) with
    original = points * scale + centre."""
    centre = points.mean(axis=0)
    scale = float(np.linalg.norm(points - centre, axis=1).max())
    if not scale > 0:
        raise ValueError("cannot normalise a cloud whose points all coincide")
    return (points - centre) / scale, centre, scale


def gaussian_heatmaps(points: np.ndarray, landmarks: np.ndarray, sigma: float) -> np.ndarray:
    """h[n, j] = exp(-|p_n - l_j|^2 / (2 sigma^2)), [N, K]; NaN landmarks (missing) give 0."""
    d2 = ((points[:, None, :] - landmarks[None, :, :]) ** 2).sum(-1)
    return np.nan_to_num(np.exp(-d2 / (2.0 * sigma**2)), nan=0.0)


def binary_labels(heatmaps: np.ndarray, threshold: float) -> np.ndarray:
    return heatmaps > threshold


def random_rigid_motion(rng: np.random.Generator, translation: float = 0.0,
                        rotate: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """(R, t): R uniform over SO(3) (or identity), t uniform in [-translation, translation]^3;
    applied as p @ R.T + t."""
    from scipy.spatial.transform import Rotation

    rotation = Rotation.random(random_state=rng).as_matrix() if rotate else np.eye(3)
    return rotation, rng.uniform(-translation, translation, size=3) if translation else np.zeros(3)


@dataclass(frozen=True)
class ScannerEffects:
    """What a real scanner does to a surface sample, in millimetres. The last three effects
    happen to a scan with a fixed probability each, at a random strength within stated bounds."""

    noise: float = 0.0  # Gaussian jitter, standard deviation
    holes: int = 0  # number of holes punched out
    hole_radius: float = 10.0
    crop: float = 0.0  # remove points farther than this from the centroid (0: none)
    outliers: float = 0.0  # fraction of points replaced by uniform junk in the bounding box
    # Field of view: with this probability keep only the points within a radius drawn uniformly
    # in [fov_min, fov_max] mm of the face's centre (its landmarks' mean): a tight face crop to
    # most of a head.
    fov: float = 0.0
    fov_min: float = 90.0
    fov_max: float = 160.0
    # Single view: with this probability drop the points whose (outward) normals face away from a
    # view direction drawn uniformly within view_cone degrees of the front.
    view: float = 0.0
    view_cone: float = 60.0
    # Uneven density: with this probability keep each point with a probability falling linearly
    # from 1 to density_low across the scan along a random direction.
    density: float = 0.0
    density_low: float = 0.3

    def apply(self, points: np.ndarray, normals: Optional[np.ndarray], rng: np.random.Generator,
              centre: Optional[np.ndarray] = None) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        keep = np.ones(len(points), dtype=bool)
        if self.crop > 0:
            keep &= np.linalg.norm(points - points.mean(0), axis=1) <= self.crop
        if self.fov > 0 and rng.random() < self.fov:
            middle = points.mean(0) if centre is None or not np.isfinite(centre).all() else centre
            keep &= np.linalg.norm(points - middle, axis=1) <= rng.uniform(self.fov_min, self.fov_max)
        if self.view > 0 and rng.random() < self.view:
            outward = orient_normals(points, normals) if normals is not None else estimate_normals(points)
            keep &= outward @ view_direction(rng, self.view_cone) > 0
        if self.density > 0 and rng.random() < self.density:
            along = points @ random_direction(rng)
            share = (along - along.min()) / max(float(np.ptp(along)), 1e-9)
            keep &= rng.random(len(points)) < 1 - (1 - self.density_low) * share
        for _ in range(self.holes):
            centre_of_hole = points[rng.integers(len(points))]
            keep &= np.linalg.norm(points - centre_of_hole, axis=1) > self.hole_radius
        points, normals = points[keep], None if normals is None else normals[keep]
        if self.noise > 0:
            points = points + rng.normal(0.0, self.noise, points.shape)
        if self.outliers > 0 and len(points):
            count = int(round(self.outliers * len(points)))
            index = rng.choice(len(points), count, replace=False)
            low, high = points.min(0), points.max(0)
            points = points.copy()
            points[index] = rng.uniform(low, high, (count, 3))
        return points, normals

    @property
    def active(self) -> bool:
        return any((self.noise, self.holes, self.crop, self.outliers, self.fov, self.view, self.density))


def random_direction(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(3)
    return v / np.linalg.norm(v)


def view_direction(rng: np.random.Generator, cone_degrees: float) -> np.ndarray:
    """A unit vector uniform over the spherical cap within ``cone_degrees`` of the front, +z:
    where the faces of both face models look (the nose lies ahead of the centroid in +z)."""
    cos_max = np.cos(np.radians(cone_degrees))
    z = rng.uniform(cos_max, 1.0)
    phi = rng.uniform(0, 2 * np.pi)
    r = np.sqrt(1 - z * z)
    return np.array([r * np.cos(phi), r * np.sin(phi), z])


@dataclass
class PreparedScan:
    """One scan after preprocessing, in its normalised frame."""

    points: np.ndarray  # [N, 3] float32, unit sphere, centroid at 0
    normals: np.ndarray  # [N, 3] float32, given or estimated, oriented away from the centroid
    landmarks: np.ndarray  # [K, 3] float32, same frame (NaN where missing)
    scale: float  # mm per unit
    subject: str
    expression: str


def prepare_points(points: np.ndarray, normals: Optional[np.ndarray], landmarks: np.ndarray,
                   num_points: int, mm_per_unit: float, subject: str, expression: str) -> PreparedScan:
    """``model_input`` of a training scan; its landmarks follow the points' transform."""
    scan = model_input(points, normals, num_points)
    return PreparedScan(
        points=scan.points, normals=scan.normals,
        landmarks=((landmarks - scan.centre) / scan.scale).astype(np.float32), scale=scan.scale * mm_per_unit,
        subject=subject, expression=expression,
    )
