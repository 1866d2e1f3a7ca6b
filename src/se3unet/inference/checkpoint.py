"""The checkpoint: one typed, versioned object written by training and read by everyone else.

Stored as a plain mapping of tensors, numbers, strings, lists and dicts that
``torch.load(..., weights_only=True)`` reads (no pickled classes, no code run on load):

    {"format": "se3unet-checkpoint", "version": 2,
     "inference": {model_config, weights, landmark_names, scan, decoding, provenance},
     "resume": {optimizer, scheduler, epoch, step, history, best_error_mm, experiment} | absent}

The inference part is all that prediction and evaluation need, so weights can ship without the
optimizer's state (``Checkpoint.without_resume``). Files written before version 2 (pickled
numpy arrays, flat keys) are refused on load with the command that converts them:
``se3unet convert-checkpoint OLD NEW`` (``convert_legacy``), which unpickles the old file and
must therefore only be run on files one trusts.
"""

from __future__ import annotations

import pickle
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import torch

from ..atomic import write_atomically
from .decode import Decoding

FORMAT = "se3unet-checkpoint"
VERSION = 2


@dataclass(frozen=True)
class ScanSettings:
    """How a scan becomes the model's input, as the training data was prepared."""

    samples: int = 8192  # surface samples per mesh (or points kept of a denser cloud)
    points: int = 2048  # kept by farthest point sampling: the model's input size
    sigma: float = 0.08  # heatmap width of the training targets, unit-sphere units
    threshold: float = 0.5  # labels: heatmap > threshold
    normals: bool = True  # the model reads unit normals (estimated when a cloud has none)


@dataclass(frozen=True)
class ReadSettings:
    """How `predict` reads a scan with this model (its defaults; options override them): crop a
    sphere of ``radius_mm`` around the nose tip found (around the mean of the landmarks found
    when the model has no nose tip), or ``crop`` False: the whole scan in one pass."""

    crop: bool = True
    radius_mm: float = 120.0


@dataclass(frozen=True)
class Provenance:
    command: str = ""  # the command line that trained the model
    data_digest: str = ""  # the prepared cache's configuration digest (its folder name)
    date: str = ""  # ISO date and time of the checkpoint
    version: str = ""  # se3unet version that wrote it
    training_data: Dict[str, Any] = field(default_factory=dict)  # `prepare`'s settings of the training cache


@dataclass
class InferenceState:
    model_config: Dict[str, Any]
    weights: Dict[str, torch.Tensor]
    landmark_names: List[str]
    scan: ScanSettings = field(default_factory=ScanSettings)
    decoding: Decoding = field(default_factory=Decoding)
    provenance: Provenance = field(default_factory=Provenance)
    reading: ReadSettings = field(default_factory=ReadSettings)
    # A landmark set placed after the model's own by atlas transfer (se3unet.atlas): its mapping
    atlas: Optional[Dict[str, Any]] = None

    def to_mapping(self) -> Dict[str, Any]:
        mapping = {"model_config": self.model_config, "weights": self.weights,
                   "landmark_names": list(self.landmark_names), "scan": asdict(self.scan),
                   "decoding": self.decoding.to_dict(), "provenance": asdict(self.provenance),
                   "reading": asdict(self.reading)}
        if self.atlas is not None:
            mapping["atlas"] = self.atlas
        return mapping

    @classmethod
    def from_mapping(cls, m: Dict[str, Any]) -> "InferenceState":
        return cls(model_config=dict(m["model_config"]), weights=dict(m["weights"]),
                   landmark_names=list(m["landmark_names"]), scan=_build(ScanSettings, m.get("scan", {})),
                   decoding=_build(Decoding, m.get("decoding", {})), provenance=_build(Provenance, m.get("provenance", {})),
                   reading=_build(ReadSettings, m.get("reading", {})), atlas=m.get("atlas"))


@dataclass
class ResumeState:
    optimizer: Dict[str, Any]
    scheduler: Dict[str, Any]
    epoch: int
    step: int
    history: List[Dict[str, float]]
    best_error_mm: float
    experiment: Dict[str, Any]  # the training configuration (train.config.ExperimentConfig.to_dict())
    # Written inside an epoch (run.checkpoint_minutes, a time limit): the batches of ``epoch``
    # already trained and their losses; 0 when ``epoch`` had finished.
    batches_done: int = 0
    epoch_losses: List[float] = field(default_factory=list)

    def to_mapping(self) -> Dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_mapping(cls, m: Dict[str, Any]) -> "ResumeState":
        return _build(cls, m)


@dataclass
class Checkpoint:
    inference: InferenceState
    resume: Optional[ResumeState] = None

    def to_mapping(self) -> Dict[str, Any]:
        mapping = {"format": FORMAT, "version": VERSION, "inference": self.inference.to_mapping()}
        if self.resume is not None:
            mapping["resume"] = self.resume.to_mapping()
        return mapping

    def without_resume(self) -> "Checkpoint":
        return Checkpoint(self.inference)

    def save(self, path: Union[str, Path]) -> None:
        """Written to a temporary file and renamed: a kill never leaves half a checkpoint."""
        mapping = self.to_mapping()
        write_atomically(path, lambda f: torch.save(mapping, f))

    @classmethod
    def from_mapping(cls, m: Dict[str, Any], origin: str = "checkpoint") -> "Checkpoint":
        if m.get("format") != FORMAT:
            raise ValueError(f"{origin}: not an se3unet checkpoint (no format marker)")
        if m.get("version") != VERSION:
            raise ValueError(f"{origin}: checkpoint version {m.get('version')}, this se3unet reads version {VERSION}")
        resume = m.get("resume")
        return cls(InferenceState.from_mapping(m["inference"]),
                   ResumeState.from_mapping(resume) if resume is not None else None)

    @classmethod
    def load(cls, path: Union[str, Path], map_location: Union[str, torch.device] = "cpu") -> "Checkpoint":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such checkpoint")
        try:
            mapping = torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError:
            raise ValueError(
                f"{path}: written by se3unet before checkpoint version {VERSION} (it holds pickled objects, which "
                f"are not loaded). Convert it, if you trust the file: se3unet convert-checkpoint {path} NEW.pt"
            ) from None
        except Exception as error:
            raise ValueError(f"{path}: not a readable se3unet checkpoint ({error})") from None
        if not isinstance(mapping, dict):
            raise ValueError(f"{path}: not an se3unet checkpoint")
        return cls.from_mapping(mapping, str(path))


def export_inference(path: Union[str, Path], output: Union[str, Path]) -> Checkpoint:
    """Writes the inference part of a checkpoint: what predict and evaluate read, a third of
    the size. Fills in the training data's settings from the cache named by the run's config
    when the checkpoint predates them."""
    import json
    from dataclasses import replace

    checkpoint = Checkpoint.load(path)
    if not checkpoint.inference.provenance.training_data and checkpoint.resume is not None:
        cache = checkpoint.resume.experiment.get("data", {}).get("cache")
        manifest = Path(cache or "") / "manifest.json"
        if cache and manifest.is_file():
            settings = json.loads(manifest.read_text())["config"]
            provenance = replace(checkpoint.inference.provenance, training_data=settings)
            checkpoint = replace(checkpoint, inference=replace(checkpoint.inference, provenance=provenance))
    exported = checkpoint.without_resume()
    exported.save(output)
    return exported


def _build(kind, values: Dict[str, Any]):
    known = {f.name for f in fields(kind)}
    return kind(**{k: v for k, v in values.items() if k in known})


def convert_legacy(old: Union[str, Path], new: Union[str, Path]) -> Checkpoint:
    """Reads a checkpoint written before version 2 (unpickling it: trusted files only) and
    writes it in today's format."""
    import numpy as np

    old = Path(old)
    saved = torch.load(old, map_location="cpu", weights_only=False)
    if not isinstance(saved, dict) or "model" not in saved or "model_config" not in saved:
        raise ValueError(f"{old}: not an se3unet checkpoint of an earlier version")
    experiment = saved.get("experiment", {})
    data = experiment.get("data", {})
    prepared = saved.get("data_config", {}) or {}
    config = saved["model_config"]
    names = saved.get("landmark_names") or [str(i + 1) for i in range(int(config.get("num_outputs", 50)))]
    inference = InferenceState(
        model_config=config, weights=saved["model"], landmark_names=list(names),
        scan=ScanSettings(samples=int(prepared.get("samples", 8192)), points=int(prepared.get("points", 2048)),
                          sigma=float(data.get("sigma", 0.08)), threshold=float(data.get("threshold", 0.5)),
                          normals=bool(config.get("normals", True))),
        decoding=Decoding.for_training(experiment.get("loss", {}).get("name", "bce"), config.get("head", "invariant")),
        provenance=Provenance(command=f"converted from {old.name}", version="<0.2"),
    )
    resume = None
    if "optimizer" in saved:
        history = [{k: float(v) if isinstance(v, (float, np.floating)) else v for k, v in row.items()}
                   for row in saved.get("history", [])]
        resume = ResumeState(saved["optimizer"], saved["scheduler"], int(saved["epoch"]), int(saved["step"]), history,
                             float(saved.get("best_error_mm", float("inf"))), experiment)
    checkpoint = Checkpoint(inference, resume)
    checkpoint.save(new)
    return checkpoint

