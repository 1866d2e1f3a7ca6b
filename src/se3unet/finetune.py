"""`se3unet finetune`: a model for your landmarks from a few annotated scans, in minutes on a CPU.

The folder's scans and landmark files (any format data/landmark_files.py reads) are prepared as
the base model's training data were (its scan settings and scanner effects), then the base model
(default: the shipped one) is trained on them in random poses for a fixed number of steps: its
backbone copied, one output per landmark of the files (train/finetune_init.py says how they
start). ``keep``: the base model's landmarks stay beside the new ones, from the base head left as
it was; with the backbone frozen (the default then) they are exactly the base model's.

The result, ``OUTPUT/model.pt``, is an ordinary inference checkpoint for `predict --checkpoint`,
`evaluate` and `export`; it records how predict reads a scan with it (a crop of a radius around
the nose tip, or around the landmarks' centre when it has none, or the whole scan).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Dict, Optional, Sequence

from .data.prepare import MANIFEST, PrepareConfig, prepare
from .data.preprocess import ScannerEffects
from .inference import Checkpoint, ReadSettings
from .pretrained import pretrained_path
from .train.config import ExperimentConfig, apply_overrides
from .train.trainer import LAST, train

RESULT = "model.pt"


def finetune(data: str, output: str, checkpoint: Optional[str] = None, keep: bool = False, steps: int = 300,
             freeze: Optional[str] = None, new_landmarks: str = "fresh", names: Optional[Sequence[str]] = None,
             landmarks_file: Optional[str] = None, mm_per_unit: float = 1.0, reading: ReadSettings = ReadSettings(),
             lr: float = 3e-3, batch_size: int = 4, seed: int = 0, workers: int = 2, progress: bool = True,
             overrides: Sequence[str] = ()) -> Dict[str, object]:
    """Fine-tunes ``checkpoint`` (None: the shipped model) to the landmarks of the scans in
    ``data``; writes ``output/model.pt`` and returns the training's summary. ``steps``: optimizer
    steps of ``batch_size`` scans (a fixed number: the same model on a slow machine). ``freeze``:
    "backbone" (only the head learns) or "none"; default: "backbone" when ``keep``, else "none"."""
    base_path = Path(checkpoint) if checkpoint else pretrained_path()
    base = Checkpoint.load(base_path).inference
    output_path = Path(output)
    trained_on = base.provenance.training_data or {}
    scanner = ScannerEffects(**trained_on["scanner"]) if "scanner" in trained_on else ScannerEffects()
    cache = prepare(PrepareConfig(
        source="folder", path=str(Path(data).resolve()), mm_per_unit=mm_per_unit,
        landmark_names=tuple(names) if names else None,
        landmarks_file=str(Path(landmarks_file).resolve()) if landmarks_file else None,
        samples=base.scan.samples, points=int(trained_on.get("points", base.scan.points)), val=0, test=0, seed=seed,
        scanner=scanner, face_crop=reading.radius_mm if reading.crop else 0.0,
        face_crop_share=float(trained_on.get("face_crop_share", 1.0)) if reading.crop else 1.0,
    ), output_path / "cache", workers=workers, progress=progress)
    new_names = json.loads((cache.path / MANIFEST).read_text())["landmark_names"]
    added = [n for n in new_names if n not in base.landmark_names] if keep else []
    if keep and not added:
        raise ValueError(f"{data}: its landmarks are all the base model's; fine-tune without keeping them")
    landmark_names = list(base.landmark_names) + added if keep else list(new_names)
    scans = cache.sizes["train"]
    epochs = max(1, math.ceil(steps / max(1, scans // batch_size)))
    model = {**base.model_config, "num_outputs": len(landmark_names), "added_outputs": len(added),
             "recompute": False}
    config = ExperimentConfig.from_dict(apply_overrides({
        "model": {"preset": "default", **model},
        "data": {"cache": str(cache.path), "points": base.scan.points, "sigma": base.scan.sigma,
                 "threshold": base.scan.threshold},
        "loss": {"name": "heatmap_ce" if base.decoding.landmarks == "offset_vote" else "bce"},
        "optim": {"lr": lr, "batch_size": min(batch_size, scans), "epochs": epochs},
        "run": {"output": str(output_path / "run"), "seed": seed, "init": str(base_path),
                "init_new_landmarks": new_landmarks, "freeze": freeze or ("backbone" if keep else "none"),
                "checkpoint_minutes": 2.0},
    }, overrides))
    if keep:  # the cache holds the new landmarks only: the kept ones are missing there (skipped by the losses)
        config = _with_kept_names(config, landmark_names)
    summary = train(config, resume=True, progress=progress)
    trained = Checkpoint.load(output_path / "run" / LAST).without_resume()
    trained.inference.reading = reading
    trained.save(output_path / RESULT)
    return {**summary, "checkpoint": str(output_path / RESULT), "landmarks": landmark_names, "added": added,
            "training_scans": scans, "epochs": epochs}


def _with_kept_names(config: ExperimentConfig, names: Sequence[str]) -> ExperimentConfig:
    """The run reads its landmark names from the cache; with kept landmarks it predicts more."""
    return replace(config, data=replace(config.data, landmark_names=tuple(names)))
