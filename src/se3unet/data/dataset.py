"""A torch Dataset over a prepared cache: poses, targets and (optionally) hierarchies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from ..geometry.hierarchy import Level, repose, stack_levels
from ..geometry.icp import align
from .preprocess import binary_labels, fewer_points, gaussian_heatmaps, random_rigid_motion
from .prepare import MANIFEST, load_split
from .reference import REFERENCE, ReferenceFace

HierarchyBuilder = Callable[[torch.Tensor], List[Level]]


class LandmarkDataset(torch.utils.data.Dataset):
    """Scans of one split, each in a random pose, with heatmaps and labels.

    rotate / translation: the random rigid motion drawn per scan (uniform rotation over SO(3),
    translation uniform in +-translation units). A new pose is drawn every epoch (call
    ``set_epoch``); the pose depends only on (seed, epoch, index), so runs are repeatable.
    ``fixed_pose`` keeps epoch 0's poses (for evaluation).
    realign: ICP to the cache's reference face after the motion, by shape alone.
    hierarchy: a function positions [1, N, 3] -> levels (e.g. ``SE3Unet.hierarchy``). Its
    indices do not depend on the pose, so for training it is computed once per scan and
    reposed after; ``rebuild_hierarchy`` builds it from each posed scan instead, as a user's
    scan would be (evaluation: it tests that FPS and kNN choose the same points in any pose).
    num_points: the first n (FPS-ordered) points of each scan, rescaled (``fewer_points``),
    when the model reads fewer points than the cache holds.
    """

    def __init__(self, cache: Union[str, Path], split: str, sigma: float = 0.08, threshold: float = 0.5,
                 rotate: bool = True, translation: float = 0.0, realign: bool = False,
                 hierarchy: Optional[HierarchyBuilder] = None, seed: int = 0, fixed_pose: bool = False,
                 rebuild_hierarchy: bool = False, num_points: Optional[int] = None,
                 landmark_names: Optional[Sequence[str]] = None):
        self.cache, self.split = Path(cache), split
        self.data = load_split(self.cache, split)
        if landmark_names is not None:  # the model's landmarks by name; those the cache lacks are missing
            self.data = dict(self.data, landmarks=arranged_landmarks(self.cache, self.data["landmarks"], landmark_names))
        if num_points is not None and num_points != self.data["points"].shape[1]:
            self.data = fewer_points(self.data, num_points)
        self.reference = ReferenceFace.load(self.cache / REFERENCE) if realign else None
        self.sigma, self.threshold = sigma, threshold
        self.rotate, self.translation, self.realign = rotate, translation, realign
        self.hierarchy_builder, self.seed, self.fixed_pose = hierarchy, seed, fixed_pose
        self.rebuild_hierarchy = rebuild_hierarchy
        self.epoch = 0
        self._hierarchies: Dict[int, List[Level]] = {}

    def __len__(self) -> int:
        return len(self.data["points"])

    @property
    def num_landmarks(self) -> int:
        return self.data["landmarks"].shape[1]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def pose(self, index: int):
        epoch = 0 if self.fixed_pose else self.epoch
        rng = np.random.default_rng([self.seed, epoch, index])
        return random_rigid_motion(rng, self.translation, self.rotate)

    def __getitem__(self, index: int) -> Dict[str, object]:
        points = self.data["points"][index].astype(np.float64)
        normals = self.data["normals"][index].astype(np.float64)
        landmarks = self.data["landmarks"][index].astype(np.float64)
        rotation, translation = self.pose(index)
        if self.realign:
            moved = points @ rotation.T + translation
            fit = align(moved, self.reference.points, self.reference.normals, seed=index)
            rotation, translation = fit.rotation @ rotation, fit.rotation @ translation + fit.translation
        points = points @ rotation.T + translation
        normals = normals @ rotation.T
        landmarks = landmarks @ rotation.T + translation
        heatmaps = gaussian_heatmaps(points, landmarks, self.sigma)
        item = {
            "points": torch.from_numpy(points.astype(np.float32)),
            "normals": torch.from_numpy(normals.astype(np.float32)),
            "landmarks": torch.from_numpy(landmarks.astype(np.float32)),
            "heatmaps": torch.from_numpy(heatmaps.astype(np.float32)),
            "labels": torch.from_numpy(binary_labels(heatmaps, self.threshold).astype(np.float32)),
            "scale": float(self.data["scale"][index]),
            "index": index,
            "rotation": torch.from_numpy(rotation.astype(np.float32)),
            "translation": torch.from_numpy(translation.astype(np.float32)),
        }
        if self.hierarchy_builder is not None and self.rebuild_hierarchy:
            item["hierarchy"] = self.hierarchy_builder(item["points"][None])
        elif self.hierarchy_builder is not None:
            if index not in self._hierarchies:
                # Built from the stored (canonical) scan, so the cached indices and weights are
                # the same bits whichever epoch first asks for them: runs stay repeatable.
                canonical = torch.from_numpy(self.data["points"][index].astype(np.float32))[None]
                self._hierarchies[index] = self.hierarchy_builder(canonical)
            item["hierarchy"] = repose(self._hierarchies[index], item["points"][None])
        return item


def arranged_landmarks(cache: Path, landmarks: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """[S, K, 3] in the order of ``names`` from a cache's landmarks, matched by the names its
    manifest records; NaN (missing, skipped by the losses) for a name it lacks."""
    cached = json.loads((cache / MANIFEST).read_text()).get("landmark_names")
    if not cached:
        raise ValueError(f"{cache}: its landmarks have no names to place among {', '.join(names[:3])}, ...")
    unknown = [n for n in cached if n not in names]
    if unknown:
        raise ValueError(f"{cache}: landmarks {', '.join(unknown[:5])} are not among the model's")
    out = np.full((len(landmarks), len(names), 3), np.nan, dtype=landmarks.dtype)
    out[:, [list(names).index(n) for n in cached]] = landmarks
    return out


def collate(items: List[Dict[str, object]]) -> Dict[str, object]:
    """Stacks items into a batch; hierarchies become one batched hierarchy."""
    batch = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if key == "hierarchy":
            batch[key] = stack_levels(values)
        elif isinstance(values[0], torch.Tensor):
            batch[key] = torch.stack(values)
        else:
            batch[key] = torch.tensor(values)
    return batch


def to_device(batch: Dict[str, object], device: torch.device) -> Dict[str, object]:
    moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    if "hierarchy" in batch:
        moved["hierarchy"] = [level.to(device=device) for level in batch["hierarchy"]]
    return moved
