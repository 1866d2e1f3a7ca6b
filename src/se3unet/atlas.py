"""Atlas transfer: a new landmark set placed on a scan by the annotated scans it was learned from.

Each annotated training scan (an *atlas*) keeps its surface, its landmarks and the base model's
68 predicted landmarks on it. On a new scan in any pose the base model's 68 bring every atlas
there (a similarity transform fitted to the two sets of 68), then the atlas surface is registered
to the scan: a rigid ICP of the whole, a smooth non-rigid deformation (displacements of a few
hundred nodes, Gaussian-smoothed at shrinking widths, pulled both ways between the surfaces),
and a rigid ICP of the dense patch around each landmark. Each atlas votes a place per landmark;
the answer is their geometric median, each vote weighted by how well its patch fits the scan
there (atlases whose local shape matches transfer best), and how far the votes spread is a
likely error.

Pose never enters: the 68 are the base model's (equivariant) answer, and every later step is
a registration between surfaces. Measured in docs/your-landmarks.md (issue 38).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from scipy.spatial import cKDTree

from .data.io import Surface
from .data.preprocess import surface_points
from .geometry.fps import farthest_point_sample
from .geometry.icp import kabsch, similarity


@dataclass
class AtlasSettings:
    density: float = 0.25  # dense surface samples per mm^2 (one every 2 mm): the local ICP's
    max_dense: int = 60000  # ... at most this many
    sparse: int = 4000  # farthest-point samples that carry the non-rigid deformation
    nodes: int = 300  # its control nodes
    widths_mm: Tuple[float, ...] = (40.0, 25.0, 15.0, 10.0)  # its Gaussian widths, coarse to fine
    iterations: int = 4  # per width
    patch_mm: float = 25.0  # radius of the dense patch around a landmark in the local ICP
    icp_iterations: int = 10
    nearest: int = 20  # atlases voting on a scan: those whose 68 fit the scan's best (0: all); bounds the cost
    # a vote's weight: exp(-(r / r_best - 1) / this), r the patch's symmetric fit residual after the local ICP
    # and r_best the best vote's for that landmark (0: equal weights)
    fit_temperature: float = 0.2

    @classmethod
    def from_dict(cls, values: Dict) -> "AtlasSettings":
        values = dict(values)
        if "widths_mm" in values:
            values["widths_mm"] = tuple(values["widths_mm"])
        return cls(**values)


@dataclass
class ScanCloud:
    """A scan as the registration reads it, in millimetres: dense samples and an even sparse subset."""

    dense: np.ndarray  # [D, 3]
    sparse: np.ndarray  # [S, 3]
    _trees: Dict[str, cKDTree] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, surface: Surface, mm_per_unit: float, settings: AtlasSettings, seed: int = 0) -> "ScanCloud":
        vertices = surface.vertices * mm_per_unit
        if surface.is_mesh:
            a, b, c = (vertices[surface.triangles[:, i]] for i in range(3))
            area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1).sum()
            count = int(np.clip(area * settings.density, settings.sparse, settings.max_dense))
        else:
            count = settings.max_dense
        dense = surface_points(vertices, surface.triangles if surface.is_mesh else None, None, count,
                               np.random.default_rng(seed))[0]
        keep = min(settings.sparse, len(dense))
        sparse = dense[farthest_point_sample(torch.from_numpy(dense)[None], keep)[0].numpy()]
        return cls(dense, sparse)

    def tree(self, which: str) -> cKDTree:
        if which not in self._trees:
            self._trees[which] = cKDTree(getattr(self, which))
        return self._trees[which]


@dataclass
class Atlas:
    """One annotated scan: its cloud, its landmarks (NaN: missing) and the base model's 68 on it (mm)."""

    cloud: ScanCloud
    landmarks: np.ndarray  # [K, 3]
    anchors: np.ndarray  # [68, 3]


def _rigid_icp(moving: np.ndarray, target: np.ndarray, tree: cKDTree, iterations: int):
    """(R, t) moving ``moving`` onto the surface ``target`` (nearest points, far pairs dropped)."""
    rotation, shift, current = np.eye(3), np.zeros(3), moving
    for _ in range(iterations):
        distance, nearest = tree.query(current)
        close = distance <= max(3.0 * float(np.median(distance)), 2.0)
        if close.sum() < 3:
            break
        r, t = kabsch(current[close], target[nearest[close]])
        current = current @ r.T + t
        rotation, shift = r @ rotation, r @ shift + t
    return rotation, shift


def _weights(points: np.ndarray, centres: np.ndarray, width: float) -> np.ndarray:
    """Row-normalised Gaussian weights [P, C] of ``centres`` at ``points``."""
    squared = (points ** 2).sum(1)[:, None] + (centres ** 2).sum(1)[None] - 2.0 * points @ centres.T
    w = np.exp(-np.maximum(squared, 0.0) / (2.0 * width ** 2))
    return w / (w.sum(1, keepdims=True) + 1e-300)


def _deformation(atlas: np.ndarray, scan: ScanCloud, settings: AtlasSettings):
    """Node positions and displacements of a smooth deformation taking ``atlas`` (sparse, mm) onto
    the scan; pulled both ways so that neither surface's extra parts drag the other."""
    nodes = atlas[farthest_point_sample(torch.from_numpy(atlas)[None], min(settings.nodes, len(atlas)))[0].numpy()]
    shifts = np.zeros_like(nodes)
    target, target_tree = scan.sparse, scan.tree("sparse")
    for width in settings.widths_mm:
        at_points = _weights(atlas, nodes, width)
        for _ in range(settings.iterations):
            current = atlas + at_points @ shifts
            pull = target[target_tree.query(current)[1]] - current  # each atlas point to the scan
            back = cKDTree(current).query(target)[1]  # each scan point pulls its nearest atlas point
            np.add.at(pull, back, target - current[back])
            pull /= (1.0 + np.bincount(back, minlength=len(atlas)))[:, None]
            shifts = shifts + _weights(nodes, current, width) @ pull
    return nodes, shifts, settings.widths_mm[-1]


def register(atlas: Atlas, scan: ScanCloud, anchors: np.ndarray, settings: AtlasSettings) -> Tuple[np.ndarray, np.ndarray]:
    """The atlas's landmarks [K, 3] carried onto ``scan`` (mm) whose base-model 68 are ``anchors``, and how
    well each landmark's patch fits the scan there [K] (RMS mm both ways; NaN: no patch)."""
    fit = _anchor_fit(atlas.anchors, anchors)
    residual = np.full(len(atlas.landmarks), np.nan)
    if fit is None:
        return np.full_like(atlas.landmarks, np.nan), residual
    s, r, t, _ = fit
    sparse = s * atlas.cloud.sparse @ r.T + t
    r2, t2 = _rigid_icp(sparse, scan.sparse, scan.tree("sparse"), settings.icp_iterations)
    scale, rotation, shift = s, r2 @ r, r2 @ t + t2  # the atlas's own frame to the scan's: s R x + t
    sparse = sparse @ r2.T + t2
    nodes, shifts, width = _deformation(sparse, scan, settings)
    placed = np.full_like(atlas.landmarks, np.nan)
    for k, own in enumerate(atlas.landmarks):
        if not np.isfinite(own).all():
            continue
        landmark = scale * rotation @ own + shift
        moved = landmark + _weights(landmark[None], nodes, width)[0] @ shifts
        # the dense patch found in the atlas's own frame (its tree is built once), then moved
        radius = (settings.patch_mm + width) / scale
        near = atlas.cloud.dense[atlas.cloud.tree("dense").query_ball_point(own, radius)]
        if len(near) < 10:
            placed[k] = moved
            continue
        near = scale * near @ rotation.T + shift
        near = near + _weights(near, nodes, width) @ shifts
        patch = near[np.linalg.norm(near - moved, axis=1) <= settings.patch_mm]
        if len(patch) < 10:
            placed[k] = moved
            continue
        r, t = _rigid_icp(patch, scan.dense, scan.tree("dense"), settings.icp_iterations)
        placed[k] = r @ moved + t
        residual[k] = _patch_residual(patch @ r.T + t, placed[k], scan, settings.patch_mm)
    return placed, residual


def _patch_residual(patch: np.ndarray, centre: np.ndarray, scan: ScanCloud, radius: float) -> float:
    """RMS distance between a placed atlas patch and the scan within ``radius`` of ``centre``, both
    ways: one way alone misses scan parts the atlas lacks (an ear that sticks out further)."""
    to_scan = scan.tree("dense").query(patch)[0]
    own = scan.dense[scan.tree("dense").query_ball_point(centre, radius)]
    if len(own) < 10:
        return float(np.sqrt((to_scan ** 2).mean()))
    to_patch = cKDTree(patch).query(own)[0]
    return float(np.sqrt(0.5 * (to_scan ** 2).mean() + 0.5 * (to_patch ** 2).mean()))


def _anchor_fit(source: np.ndarray, target: np.ndarray):
    """(s, R, t, rms) of the similarity transform fitting the anchor landmarks found in both
    (``source`` to ``target``), or None with fewer than 4 of them."""
    usable = np.isfinite(source).all(1) & np.isfinite(target).all(1)
    if usable.sum() < 4:
        return None
    s, r, t = similarity(source[usable], target[usable])
    return s, r, t, float(np.sqrt(((s * source[usable] @ r.T + t - target[usable]) ** 2).sum(1).mean()))


def _fit_residual(source: np.ndarray, target: np.ndarray) -> float:
    fit = _anchor_fit(source, target)
    return np.inf if fit is None else fit[3]


def geometric_median(points: np.ndarray, weights: Optional[np.ndarray] = None, iterations: int = 50) -> np.ndarray:
    """The point with the least (weighted) summed distance to the finite rows of ``points`` (Weiszfeld):
    robust to a few atlases gone astray, and unlike a per-coordinate median it turns with the scan."""
    weights = np.ones(len(points)) if weights is None else np.asarray(weights, dtype=float)
    usable = np.isfinite(points).all(1) & np.isfinite(weights)
    points, weights = points[usable], weights[usable]
    if len(points) == 0:
        return np.full(3, np.nan)
    centre = (weights[:, None] * points).sum(0) / weights.sum()
    for _ in range(iterations):
        w = weights / np.maximum(np.linalg.norm(points - centre, axis=1), 1e-9)
        centre = (w[:, None] * points).sum(0) / w.sum()
    return centre


def vote_weights(residuals: np.ndarray, temperature: float) -> np.ndarray:
    """Each vote's weight [A] from its patch residual [A]: the best-fitting votes count most (multi-atlas
    fusion weighted by local similarity); equal where the temperature is 0 or no residual is known. A vote
    without one (too few patch points) weighs as one whose residual is twice the best's."""
    if temperature <= 0 or not np.isfinite(residuals).any():
        return np.ones(len(residuals))
    best = max(float(np.nanmin(residuals)), 1e-9)
    return np.where(np.isfinite(residuals), np.exp(-(residuals / best - 1.0) / temperature), np.exp(-1.0 / temperature))


def fuse(votes: np.ndarray, residuals: np.ndarray, temperature: float) -> np.ndarray:
    """Landmarks [K, 3] from the atlases' votes [A, K, 3] and patch residuals [A, K]: per landmark the
    geometric median of the votes weighted by ``vote_weights``."""
    return np.stack([geometric_median(votes[:, k], vote_weights(residuals[:, k], temperature))
                     for k in range(votes.shape[1])])


@dataclass
class Placement:
    landmarks: np.ndarray  # [K, 3] mm: the geometric median of the atlases' votes
    spread: np.ndarray  # [K] mm: the median distance of the votes from it (a likely error)


class LandmarkAtlas:
    """A landmark set learned from annotated scans: ``place`` puts it on a new scan."""

    def __init__(self, names: Sequence[str], atlases: List[Atlas], settings: AtlasSettings = AtlasSettings()):
        self.names, self.atlases, self.settings = list(names), atlases, settings

    def chosen(self, anchors: np.ndarray) -> List[Atlas]:
        """The atlases whose 68 landmarks a similarity transform fits best to ``anchors`` (the
        faces most like the scan's), ``settings.nearest`` of them; all when that is 0."""
        count = self.settings.nearest
        if not count or len(self.atlases) <= count:
            return self.atlases
        return [self.atlases[i] for i in np.argsort([_fit_residual(a.anchors, anchors) for a in self.atlases],
                                                    kind="stable")[:count]]

    def place(self, scan: ScanCloud, anchors: np.ndarray) -> Placement:
        placed = [register(a, scan, anchors, self.settings) for a in self.chosen(anchors)]
        votes, residuals = np.stack([p for p, _ in placed]), np.stack([r for _, r in placed])  # [A, K, 3], [A, K]
        landmarks = fuse(votes, residuals, self.settings.fit_temperature)
        with warnings.catch_warnings():  # an all-missing landmark's spread is NaN, as it should be
            warnings.simplefilter("ignore", RuntimeWarning)
            spread = np.nanmedian(np.linalg.norm(votes - landmarks, axis=-1), axis=0)
        return Placement(landmarks, spread)

    def to_mapping(self) -> Dict[str, object]:
        return {"names": self.names, "settings": asdict(self.settings),
                "atlases": [{"dense": torch.from_numpy(a.cloud.dense.astype(np.float32)),
                             "sparse": torch.from_numpy(a.cloud.sparse.astype(np.float32)),
                             "landmarks": torch.from_numpy(a.landmarks), "anchors": torch.from_numpy(a.anchors)}
                            for a in self.atlases]}

    @classmethod
    def from_mapping(cls, m: Dict) -> "LandmarkAtlas":
        atlases = [Atlas(ScanCloud(a["dense"].double().numpy(), a["sparse"].double().numpy()),
                         a["landmarks"].double().numpy(), a["anchors"].double().numpy()) for a in m["atlases"]]
        return cls(m["names"], atlases, AtlasSettings.from_dict(m["settings"]))
