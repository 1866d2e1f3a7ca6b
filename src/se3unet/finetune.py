"""`se3unet finetune`: a model for your landmarks from a few annotated scans, in minutes on a CPU.

The folder's scans and landmark files (any format data/landmark_files.py reads) are prepared as
the base model's training data were (its scan settings and scanner effects), then the base model
(default: the shipped one) is trained on them in random poses for a fixed number of steps: its
backbone copied, one output per landmark of the files (train/finetune_init.py says how they
start). ``keep``: the base model's landmarks stay beside the new ones, from the base head left as
it was; with the backbone frozen (the default then) they are exactly the base model's.

``atlas_finetune`` learns the set without training: the annotated scans become atlases
(se3unet.atlas) that the base model's 68 landmarks bring onto each new scan, registered there
surface to surface; the checkpoint is the base model with the atlases in it.

The result, ``OUTPUT/model.pt``, is an ordinary inference checkpoint for `predict --checkpoint`,
`evaluate` and `export`; it records how predict reads a scan with it (a crop of a radius around
the nose tip, or around the landmarks' centre when it has none, or the whole scan).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Dict, Optional, Sequence

from .atlas import AtlasSettings
from .data.errors import DataError
from .data.prepare import MANIFEST, PrepareConfig, prepare
from .data.preprocess import ScannerEffects
from .inference import Checkpoint, ReadSettings
from .pretrained import pretrained_path
from .train.config import ExperimentConfig, apply_overrides
from .train.trainer import LAST, train

RESULT = "model.pt"
METHODS = ("atlas", "network")


def atlas_finetune(data: str, output: str, checkpoint: Optional[str] = None, names: Optional[Sequence[str]] = None,
                   landmarks_file: Optional[str] = None, unit: str = "mm", samplings: int = 8,
                   settings: AtlasSettings = AtlasSettings(), seed: int = 0,
                   progress: bool = True) -> Dict[str, object]:
    """The base checkpoint (None: the shipped model) with the annotated scans of ``data`` in it
    as atlases: predict then writes the base model's landmarks and the files' ones after them.
    The base model's landmarks on each training scan come from `predict` (``samplings`` of its
    crop; resumable under ``output/base-landmarks``); its confidence model, when it has one,
    holds for the new file too (the same weights) and is written beside it."""
    from .atlas import Atlas, LandmarkAtlas, ScanCloud
    from .data.landmark_files import read_landmark_file
    from .data.sources import FolderSource
    from .inference.confidence import confidence_for, confidence_path, file_sha256
    from .locate import LocateSettings
    from .predict import UNITS, predict

    started = time.perf_counter()
    base_path = Path(checkpoint) if checkpoint else pretrained_path()
    base = Checkpoint.load(base_path).without_resume()
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}; got {unit!r}")
    source = FolderSource(data, UNITS[unit], names, landmarks_file)
    clash = [n for n in source.landmark_names if n in base.inference.landmark_names]
    if clash:
        raise ValueError(f"{data}: {', '.join(clash[:5])} are the base model's own landmarks, which it predicts "
                         f"itself; rename them or leave them out (--landmark-names)")
    entries = source.entries()
    out = Path(output)
    found = predict([e.key[0] for e in entries], str(base_path), str(out / "base-landmarks"), fmt="json",
                    picture=False, unit=unit, locating=LocateSettings(samplings=samplings), keep_no_face=True,
                    progress=progress)
    atlases = []
    from tqdm import tqdm

    for entry, result in tqdm(list(zip(entries, found)), desc="atlases", unit="scan", disable=not progress):
        if "landmarks" not in result:
            raise DataError(entry.origin, f"the base model found no landmarks on it: {result.get('error')}")
        anchors = read_landmark_file(result["landmarks"]).arranged(base.inference.landmark_names)
        raw = source.load(entry.key)
        cloud = ScanCloud.of(raw.surface, UNITS[unit], settings, seed)
        atlases.append(Atlas(cloud, raw.landmarks * UNITS[unit], anchors * UNITS[unit]))
    base.inference.atlas = LandmarkAtlas(source.landmark_names, atlases, settings).to_mapping()
    result_path = out / RESULT
    base.save(result_path)
    trust = confidence_for(base_path)
    if trust is not None:
        replace(trust, checkpoint_sha256=file_sha256(result_path)).save(confidence_path(result_path))
    return {"checkpoint": str(result_path), "method": "atlas", "landmarks": source.landmark_names,
            "training_scans": len(atlases), "seconds": round(time.perf_counter() - started, 1)}


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
