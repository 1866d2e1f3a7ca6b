"""Landmarks on scans that hold more than a face: find the face, crop a sphere around it, predict
again, and average the landmarks of several samplings of that crop.

The model reads every scan scaled into the unit sphere, so whatever surrounds a face takes points
and scale from it. A model trained on faces and ICT heads alone (the face about 47% of the
surface) loses the face when it is 30% of a scan with a skull and a neck (landmarks 50-130 mm
off); the shipped model, whose second stage also saw such scans and crops of them, reads it
about 5 mm off in one pass and 2-2.5 mm found and cropped. Crops of face size around candidate centres, each read once, find it again: the crop whose
votes agree best (``vote_spread``) holds the face. A sphere around the nose tip found (the centre
of FaceScape's face crops) is then what the model reads; several samplings of it, averaged, take
out most of the landmarks' dependence on which surface points were sampled (about 2 mm between
two samplings of one face with the shipped model, 0.6 mm between two averages of 16).

The radius, measured with the shipped model on unseen faces in random poses (experiments/
whole_head.py): 110 mm cuts the jawline of ICT faces (3.8 mm against 3.2 in one pass), 130 mm
takes in more of a neck and skull; at 120 mm ICT faces score 3.0 mm and ICT heads 3.1 (4.0 in one
pass).

Every step turns with the scan: the surface samples are the same points in any pose (the same
seeds), the candidate centres are their first FPS points, and the crops are spheres. A crop's
centre is snapped to the nearest of a fixed sample of the surface (``Anchors``): the model's
landmarks carry float32 error (~1e-4 mm), and a centre that moved by that much would let a
triangle or sample at the sphere's edge fall in or out, change every later draw and move the
landmarks by tenths of a millimetre between two poses of one scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence

import numpy as np
import torch

from .data.errors import DataError
from .data.io import Surface
from .data.preprocess import ModelInput, crop_centre, model_input, sample_sphere, surface_points
from .inference import InferenceState, decode, landmark_spreads, landmark_uncertainty


@dataclass(frozen=True)
class LocateSettings:
    """How predict reads a scan that may be more than a face (`se3unet predict` options)."""

    crop: bool = True  # False: one pass over the whole scan, as the model was trained
    radius_mm: float = 120.0  # the crop: a sphere this large around the nose tip (and the search's crops)
    samplings: int = 32  # the crop sampled this many times; the landmarks are their mean (an ICT head and its
    # face crop 0.50 mm apart; 16: 0.62; 8: 0.79 and about 5.5 s less per scan on 2 CPU cores)
    candidates: int = 16  # crops tried when the face is a small part of the scan
    search_outside: float = 0.25  # ... small: this fraction of the scan lies outside the first pass's crop

    def __post_init__(self):
        if self.samplings < 1 or self.candidates < 1:
            raise ValueError(f"samplings and candidates must be at least 1, got {self.samplings}, {self.candidates}")
        if not self.radius_mm > 0 or not 0 <= self.search_outside <= 1:
            raise ValueError(f"radius_mm must be > 0 and search_outside in [0, 1], got {self.radius_mm}, "
                             f"{self.search_outside}")


@dataclass
class Reading:
    """What the model made of one input, in the scan's units: landmarks [K, 3], their vote
    spread averaged over the landmarks (how much the input looks like a face: the search keeps
    the crop where it is least), and each landmark's uncertainty [K]
    (inference.landmark_uncertainty: what its confidence is calibrated from)."""

    landmarks: np.ndarray
    spread: float
    uncertainty: np.ndarray


@dataclass
class Located:
    """What ``locate_readings`` found: the landmarks [K, 3]; per landmark, the uncertainty
    averaged over the final samplings and how far those samplings' landmarks lie from their
    mean (RMS; 0 for a single reading) [K], in scan units; ``readings``: every reading that
    could hold the face (the whole scan's, the search's best crop, then the final samplings)."""

    landmarks: np.ndarray
    uncertainty: np.ndarray
    disagreement: np.ndarray
    readings: List[Reading]


class LandmarkReader:
    """A model and how to decode it, applied to model inputs in batches; answers in scan units."""

    def __init__(self, model: torch.nn.Module, inference: InferenceState, device: torch.device, batch: int = 8):
        self.model, self.inference, self.device, self.batch = model, inference, device, batch

    @torch.no_grad()
    def __call__(self, inputs: Sequence[ModelInput]) -> List[Reading]:
        readings = []
        for start in range(0, len(inputs), self.batch):
            chunk = inputs[start:start + self.batch]
            x = torch.from_numpy(np.stack([i.points for i in chunk])).to(self.device)
            n = torch.from_numpy(np.stack([i.normals for i in chunk])).to(self.device) if self.model.config.normals else None
            logits, offsets = self.model(x, normals=n, with_offsets=True)
            decoding = self.inference.decoding
            heatmaps, landmarks = decode(logits, x, decoding, offsets)
            votes = offsets if decoding.landmarks == "offset_vote" else None
            # A model fine-tuned with its landmarks kept (model.added_outputs) finds the face by the
            # kept ones alone, so it picks the crops the original model picked.
            kept = self.model.config.num_outputs - getattr(self.model.config, "added_outputs", 0)
            spread = landmark_spreads(x, heatmaps, landmarks, votes, decoding.fraction)[:, :kept].mean(1).cpu().numpy()
            uncertainty = landmark_uncertainty(x, heatmaps, landmarks, votes, decoding.fraction).cpu().numpy()
            landmarks = landmarks.cpu().numpy().astype(np.float64)
            readings += [Reading(lm * i.scale + i.centre, float(s * i.scale), u.astype(np.float64) * i.scale)
                         for lm, s, u, i in zip(landmarks, spread, uncertainty, chunk)]
        return readings


class Anchors:
    """Where crops may be centred: a fixed-seed sample of the surface in float64, the same points
    in any pose to rounding; a centre (or each of several, [K, 3]) is moved onto the nearest."""

    def __init__(self, surface: Surface, samples: int):
        from scipy.spatial import cKDTree

        self.points = surface_points(surface.vertices, surface.triangles if surface.is_mesh else None, None, samples,
                                     np.random.default_rng(0))[0]
        self.tree = cKDTree(self.points)

    def snap(self, centre: np.ndarray) -> np.ndarray:
        return self.points[self.tree.query(centre)[1]]


def crop_input(surface: Surface, path: Path, centre: np.ndarray, radius: float, points: int, samples: int,
               seed: int) -> ModelInput:
    found, normals = sample_sphere(surface, centre, radius, samples, np.random.default_rng(seed))
    if len(found) < points:
        raise DataError(path, f"has {len(found)} points within {radius:.4g} of the face found; the model needs {points}")
    return model_input(found, normals, points)


def locate(surface: Surface, path: Path, first: ModelInput, read: LandmarkReader, settings: LocateSettings,
           mm_per_unit: float = 1.0) -> np.ndarray:
    """Landmarks [K, 3] of one scan in its own coordinates (``locate_readings``'s)."""
    return locate_readings(surface, path, first, read, settings, mm_per_unit).landmarks


def locate_readings(surface: Surface, path: Path, first: ModelInput, read: LandmarkReader, settings: LocateSettings,
                    mm_per_unit: float = 1.0) -> Located:
    """The landmarks of one scan in its own coordinates, with the readings behind them.
    ``first``: the whole scan as the model reads it (``surface_input``); ``mm_per_unit``: the
    scan's unit."""
    scan, names = read.inference.scan, read.inference.landmark_names
    found = read([first])[0]
    if not settings.crop:
        return Located(found.landmarks, found.uncertainty, np.zeros(len(found.landmarks)), [found])
    first_reading = found
    radius = settings.radius_mm / mm_per_unit
    anchors = Anchors(surface, scan.samples)
    whole = first.points * first.scale + first.centre  # FPS-ordered: its first points spread over the scan
    outside = np.linalg.norm(whole - crop_centre(found.landmarks, names), axis=1) > radius
    if outside.mean() > settings.search_outside:  # more than a face around what was found
        crops = []
        for middle in whole[:settings.candidates]:
            try:
                crops.append(crop_input(surface, path, anchors.snap(middle), radius, scan.points, scan.samples, 0))
            except DataError:  # too little surface there (an edge, a stray point): not a face
                continue
        found = min([found, *read(crops)], key=lambda r: r.spread)
    # Once on the crop, to centre the final one on the nose tip it finds there; then averaged.
    centre = anchors.snap(crop_centre(found.landmarks, names))
    centre = crop_centre(read([crop_input(surface, path, centre, radius, scan.points, scan.samples, 0)])[0].landmarks,
                         names)
    centre = anchors.snap(centre)
    final = read([crop_input(surface, path, centre, radius, scan.points, scan.samples, seed)
                  for seed in range(settings.samplings)])
    samplings = np.stack([r.landmarks for r in final])
    landmarks = samplings.mean(axis=0)
    disagreement = np.sqrt(((samplings - landmarks) ** 2).sum(-1).mean(0))
    return Located(landmarks, np.mean([r.uncertainty for r in final], axis=0), disagreement,
                   [first_reading, found, *final])
