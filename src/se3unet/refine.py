"""Coarse to fine: every landmark read again in a small, densely sampled crop of the scan.

The coarse model reads a face through 1,024 points of a 120 mm crop, one every 5-6 mm of surface.
The refiner, a network of the same engine, reads a sphere of ``crop.radius_mm`` (15 mm) around
each coarse landmark through ``crop.points`` (512) points, one every 1.2-1.4 mm, and votes for
the landmark with offsets as the coarse head does (data/crops.py makes its training crops).

Exact under rotation and translation, as ``locate``: a crop's centre is the coarse landmark
snapped to the nearest of a fixed sample of the surface (``Anchors``), the crop a sphere, its
samples drawn with fixed seeds; the refiner itself is equivariant.

A landmark keeps its coarse position, and the result says so, where the crop cannot be read:
fewer surface points in the sphere than the refiner reads (a sparse cloud, the scan's edge), a
refined landmark with no surface within ``gap_mm`` (it fell into a hole or past an edge), or one
that moved more than ``max_move`` of the radius (the crop held something else).

A refiner belongs to the coarse checkpoint it was trained after (its file records that
checkpoint's SHA-256): another checkpoint is read coarse only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from .atomic import write_atomically
from .data.crops import CropSettings, crop_model_input
from .data.io import Surface
from .data.preprocess import sample_sphere
from .inference import InferenceState, build_model
from .inference.checkpoint import Checkpoint
from .locate import Anchors, LandmarkReader

FORMAT = "se3unet-refiner"
VERSION = 1


@dataclass(frozen=True)
class RefineSettings:
    crop: CropSettings = field(default_factory=CropSettings)
    anchors: int = 65536  # surface samples a crop's centre snaps to (a head: one every ~1.3 mm)
    samplings: int = 1  # crops per landmark, each sampled afresh; the refined landmark is their mean
    gap_mm: float = 3.0  # a refined landmark farther than this from the crop's surface keeps its coarse place
    max_move: float = 0.6  # ... and one that moved more than this share of the radius
    # How much of each landmark's refined place to take, by name (the rest from its coarse place:
    # two models' errors partly cancel); a landmark absent is not read. None: every landmark the
    # refiner knows, fully. Chosen on faces neither training nor evaluation saw (refine_choose.py).
    blend: Optional[Dict[str, float]] = None

    @classmethod
    def from_dict(cls, values: Dict) -> "RefineSettings":
        values = dict(values)
        return cls(crop=CropSettings(**values.pop("crop", {})), **values)


@dataclass
class Refined:
    """``landmarks`` [K, 3] in the scan's units; ``chosen`` [K]: the landmarks the refiner reads
    (it knows them, its settings choose them, the coarse one is defined); ``refined`` [K]: those
    of them it could read (the others kept their coarse place)."""

    landmarks: np.ndarray
    chosen: np.ndarray
    refined: np.ndarray

    @property
    def kept(self) -> np.ndarray:
        """Chosen landmarks whose crop could not be read: too little surface there."""
        return self.chosen & ~self.refined


class Refiner:
    """A refiner network and the settings it was trained with, for the coarse landmarks named
    ``inference.landmark_names``."""

    def __init__(self, model: torch.nn.Module, inference: InferenceState, settings: RefineSettings,
                 base_sha256: str, device: torch.device = torch.device("cpu"), batch: int = 16):
        self.model, self.inference, self.settings = model.eval(), inference, settings
        self.base_sha256, self.device, self.batch = base_sha256, device, batch

    @classmethod
    def load(cls, path: Union[str, Path], device: torch.device = torch.device("cpu")) -> "Refiner":
        stored = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(stored, dict) or stored.get("format") != FORMAT:
            raise ValueError(f"{path}: not an se3unet refiner file")
        if stored.get("version") != VERSION:
            raise ValueError(f"{path}: refiner file version {stored.get('version')}, this se3unet reads {VERSION}")
        inference = InferenceState.from_mapping(stored["model"])
        model = build_model(inference).to(device)
        return cls(model, inference, RefineSettings.from_dict(stored["settings"]), stored["base_sha256"], device)

    def __call__(self, surface: Surface, coarse: np.ndarray, names: Sequence[str], mm_per_unit: float = 1.0,
                 samplings: Optional[int] = None) -> Refined:
        """``coarse`` [K, 3] landmarks named ``names`` on ``surface`` (the scan's units)."""
        s = self.settings
        samplings = s.samplings if samplings is None else samplings
        radius = s.crop.radius_mm / mm_per_unit
        mine = {n: i for i, n in enumerate(self.inference.landmark_names) if s.blend is None or s.blend.get(n, 0) > 0}
        known = [k for k, n in enumerate(names) if n in mine and np.isfinite(coarse[k]).all()]
        landmarks, refined = coarse.copy(), np.zeros(len(coarse), dtype=bool)
        chosen = np.isin(np.arange(len(coarse)), known)
        if not known:
            return Refined(landmarks, chosen, refined)
        centres = Anchors(surface, s.anchors).snap(coarse[known])
        crops, owners, surfaces = [], [], {}
        for k, centre in zip(known, centres):
            for seed in range(samplings):
                found, _ = sample_sphere(surface, centre, radius, s.crop.samples, np.random.default_rng([seed, k]))
                if len(found) < s.crop.points:
                    continue
                crops.append(crop_model_input(found, s.crop.points, radius))
                owners.append(k)
                surfaces.setdefault(k, []).append(found)
        readings = LandmarkReader(self.model, self.inference, self.device, self.batch)(crops)
        votes: Dict[int, List[np.ndarray]] = {}
        for k, reading in zip(owners, readings):
            votes.setdefault(k, []).append(reading.landmarks[mine[names[k]]])
        for k, found in votes.items():
            candidate = np.mean(found, axis=0)
            near = np.concatenate(surfaces[k])
            gap = np.linalg.norm(near - candidate, axis=1).min() * mm_per_unit
            if gap <= s.gap_mm and np.linalg.norm(candidate - coarse[k]) <= s.max_move * radius:
                share = 1.0 if s.blend is None else s.blend[names[k]]
                landmarks[k], refined[k] = share * candidate + (1 - share) * coarse[k], True
        return Refined(landmarks, chosen, refined)


def save_refiner(path: Union[str, Path], trained: Union[str, Path], base: Union[str, Path],
                 settings: RefineSettings) -> None:
    """A refiner file from a trained checkpoint (its inference part), for the coarse checkpoint
    ``base`` (recorded by SHA-256)."""
    from .inference.confidence import file_sha256

    inference = Checkpoint.load(trained).inference
    stored = {"format": FORMAT, "version": VERSION, "base_sha256": file_sha256(base), "settings": asdict(settings),
              "model": inference.to_mapping()}
    write_atomically(path, lambda f: torch.save(stored, f))


def refiner_path(checkpoint: Union[str, Path]) -> Path:
    """Where a checkpoint's refiner lies: beside it, NAME.refiner.pt."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + ".refiner.pt")


def refiner_for(checkpoint: Union[str, Path], device: torch.device = torch.device("cpu")) -> Optional[Refiner]:
    """The refiner made for this checkpoint (beside it, recording its SHA-256), else None."""
    from .inference.confidence import file_sha256

    path = refiner_path(checkpoint)
    if not path.is_file():
        return None
    refiner = Refiner.load(path, device)
    return refiner if refiner.base_sha256 == file_sha256(checkpoint) else None
