"""A confidence for every landmark: its likely error in mm, from what the model already computes.

The raw signal is a landmark's uncertainty (``decode.landmark_uncertainty``: how far its votes
spread over the heatmap and how far the vote lies from the heatmap's own mean), and for
predict's averaged samplings also how far the samplings disagree. A ``Calibration`` turns it
into an expected error in two parts, both fitted on scans of a seed that neither training nor
evaluation uses (experiments/confidence.py): each landmark's mean error (the jaw is read worse
than the nose tip whatever its signal), times a monotone function of the signal relative to
that landmark's typical signal (a reading less sure than usual is likely worse than usual).

A calibration belongs to the checkpoint it was fitted for: it is stored beside it as
``NAME.confidence.json`` with the checkpoint file's SHA-256, and any other checkpoint gets no
confidence (``confidence_for``). The same file holds the "no face here" threshold on the
scan-level score ``face_score``: the median over landmarks of uncertainty / typical
uncertainty, about 1 on a face, tens on a sphere.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
from scipy.optimize import isotonic_regression


@dataclass(frozen=True)
class Calibration:
    """Uncertainties [..., K] (mm) -> expected errors [..., K] (mm)."""

    typical_mm: Tuple[float, ...]  # per landmark: the median uncertainty on the calibration scans
    scale_mm: Tuple[float, ...]  # per landmark: the mean error there
    knots: Tuple[float, ...]  # relative uncertainties (/ typical), ascending: the bins' medians
    values: Tuple[float, ...]  # error / scale in each bin, made nondecreasing

    def __call__(self, signal_mm: np.ndarray) -> np.ndarray:
        relative = np.asarray(signal_mm, dtype=np.float64) / np.asarray(self.typical_mm)
        knots, values = np.asarray(self.knots), np.asarray(self.values)
        factor = np.interp(np.log(np.maximum(relative, 1e-12)), np.log(knots), values)
        # Past the last bin the error grows in proportion to the signal (no face: tens of times
        # the typical one); interpolation alone would cap it at what faces reach.
        beyond = relative > knots[-1]
        factor = np.where(beyond, values[-1] * relative / knots[-1], factor)
        return factor * np.asarray(self.scale_mm)

    def face_score(self, signal_mm: np.ndarray) -> np.ndarray:
        """[...]: the median over landmarks of uncertainty / typical uncertainty: about 1 on a face."""
        return np.nanmedian(np.asarray(signal_mm, dtype=np.float64) / np.asarray(self.typical_mm), axis=-1)

    @classmethod
    def fit(cls, signal_mm: np.ndarray, errors_mm: np.ndarray, bins: int = 10) -> "Calibration":
        """From readings [M, K] of uncertainties and their errors (NaN where a landmark is undefined)."""
        signal_mm, errors_mm = np.asarray(signal_mm, np.float64), np.asarray(errors_mm, np.float64)
        usable = np.isfinite(signal_mm) & np.isfinite(errors_mm)
        if usable.sum(0).min() < 2:
            raise ValueError("every landmark needs at least 2 calibration readings")
        masked = np.where(usable, signal_mm, np.nan)
        typical = np.nanmedian(masked, axis=0)
        scale = np.nanmean(np.where(usable, errors_mm, np.nan), axis=0)
        relative = (masked / typical)[usable]
        ratio = (errors_mm / scale)[usable]
        order = np.argsort(relative)
        groups = np.array_split(order, bins)
        knots = np.array([np.median(relative[g]) for g in groups])
        means = np.array([ratio[g].mean() for g in groups])
        values = isotonic_regression(means, weights=np.array([len(g) for g in groups], float)).x
        return cls(tuple(typical.tolist()), tuple(scale.tolist()), tuple(knots.tolist()), tuple(values.tolist()))

    def to_dict(self) -> Dict[str, object]:
        return {k: list(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Dict[str, Sequence[float]]) -> "Calibration":
        return cls(**{k: tuple(float(x) for x in values[k]) for k in ("typical_mm", "scale_mm", "knots", "values")})


@dataclass(frozen=True)
class ConfidenceModel:
    """What a checkpoint's ``.confidence.json`` holds."""

    checkpoint_sha256: str
    one_pass: Calibration  # a single reading of a scan (evaluate, predict --samplings 1 --no-crop)
    averaged: Calibration  # predict's landmarks: the mean of its samplings of the face crop
    no_face_score: float  # predict's face score (face found and cropped) above this: "no face here"
    # The same for a single reading of a whole scan (--whole-scan): a head read in one pass
    # looks less like a face than its crop does, so it has its own threshold.
    no_face_score_one_pass: float
    made_by: str = ""  # the command that made the file

    def no_face_threshold(self, cropped: bool) -> float:
        return self.no_face_score if cropped else self.no_face_score_one_pass

    def to_dict(self) -> Dict[str, object]:
        return {"checkpoint_sha256": self.checkpoint_sha256, "one_pass": self.one_pass.to_dict(),
                "averaged": self.averaged.to_dict(), "no_face_score": self.no_face_score,
                "no_face_score_one_pass": self.no_face_score_one_pass, "made_by": self.made_by}

    @classmethod
    def from_dict(cls, values: Dict[str, object]) -> "ConfidenceModel":
        return cls(str(values["checkpoint_sha256"]), Calibration.from_dict(values["one_pass"]),
                   Calibration.from_dict(values["averaged"]), float(values["no_face_score"]),
                   float(values["no_face_score_one_pass"]), str(values.get("made_by", "")))

    def save(self, path: Union[str, Path]) -> None:
        from ..atomic import write_text_atomically

        write_text_atomically(path, json.dumps(self.to_dict(), indent=1) + "\n")


def file_sha256(path: Union[str, Path]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def confidence_path(checkpoint: Union[str, Path]) -> Path:
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + ".confidence.json")


def confidence_for(checkpoint: Union[str, Path]) -> Optional[ConfidenceModel]:
    """The confidence model made for this checkpoint file, or None: none was made, or the file
    beside it was made for other weights (then a warning says so)."""
    path = confidence_path(checkpoint)
    if not path.is_file():
        return None
    try:
        model = ConfidenceModel.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as error:
        warnings.warn(f"{path}: unreadable confidence file ({error}); landmarks get no confidence")
        return None
    if model.checkpoint_sha256 != file_sha256(checkpoint):
        warnings.warn(f"{path} was made for other weights than {checkpoint}; landmarks get no confidence")
        return None
    return model
