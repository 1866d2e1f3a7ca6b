"""Experiment configuration: YAML files in configs/, any field overridable from the command line.

Sections: model (a preset plus overrides of its fields), data, loss, optim, run. An override
is ``section.field=value`` with the value read as YAML (``optim.lr=1e-3``,
``model.channels=[8,16]``, ``data.realign=true``).
"""

from __future__ import annotations

import copy
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Literal, Optional, Sequence, Tuple, Union

import yaml

from ..choices import check_choices, check_ranges
from ..model import UNetConfig, preset


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads 1e-3 (no dot) as a string; researchers write learning rates that way."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+|\.[0-9_]+"
               r"(?:[eE][-+]?[0-9]+)?|\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)


def read_yaml(text: str):
    return yaml.load(text, Loader=_Loader)


@dataclass
class DataSettings:
    cache: Optional[str] = None  # a folder made by `se3unet prepare`
    sigma: float = 0.08  # heatmap width, unit-sphere units (about 9 mm on a face)
    threshold: float = 0.5  # labels: heatmap > threshold
    rotate: bool = True  # random rotation over SO(3) per scan and epoch
    translation: float = 0.2  # random translation in +-this many units
    realign: bool = False  # ICP to the reference face after the motion
    points: Optional[int] = None  # train on the first n (FPS-ordered) points of each cached scan (None: all)
    # A cache prepared as ``cache`` plus --surround-twin: each training scan's face without the
    # skull and neck around it, trained beside it (batches of twins) under loss.consistency.
    twin_cache: Optional[str] = None
    # The landmarks the model predicts, by name, when they are more than the cache's (fine-tuning
    # beside kept landmarks): the cache's placed by name, the others missing there
    landmark_names: Optional[Tuple[str, ...]] = None


@dataclass
class LossSettings:
    name: Literal["bce", "focal", "awing", "heatmap_ce"] = "heatmap_ce"
    reduction: Literal["sum", "mean"] = "mean"
    focal_alpha: float = 0.98
    focal_gamma: float = 3.0
    offset_weight: float = 10.0  # offset head: weight of the offset loss beside the heatmap loss
    offset_radius: float = 0.2  # offset head: points within this distance of a landmark (units) learn its offset
    # With data.twin_cache: weight of the distance (mm) between the landmarks read on a scan and on
    # its twin, so that a face is read alike whatever surrounds it (predict's crops of whole heads).
    consistency: float = 0.0
    # "both": the term moves both readings toward each other; "twin": only the scan's toward its
    # twin's (the face alone), which the term leaves where the other losses put it.
    consistency_target: Literal["both", "twin"] = "both"


@dataclass
class OptimSettings:
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = 3e-3
    weight_decay: float = 0.0
    batch_size: int = 4
    accumulate: int = 1  # gradient accumulation steps
    epochs: int = 10
    t0: Optional[int] = None  # CosineAnnealingWarmRestarts period in epochs (default: epochs)
    eta_min: float = 1e-6
    grad_clip: Optional[float] = 10.0
    # bfloat16: the training forward pass under torch.autocast (matrix products in bfloat16, weights,
    # optimizer and loss in float32). 1.5x a step on a CPU with AVX512-BF16 (docs/engine.md), but the
    # network is then equivariant only to about 2e-2 of its logits (float32: 5e-7), and a real training
    # here was no faster and worse after an epoch (docs/training.md): off by default; validation,
    # evaluation and predict always run in float32.
    precision: Literal["float32", "bfloat16"] = "float32"


@dataclass
class RunSettings:
    output: str = "runs/experiment"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    time_limit: Optional[float] = None  # seconds of training, then stop after the optimizer step
    # Also write last.pt inside an epoch this often, so that a killed run loses at most this much
    # (None: at epoch ends only); --resume continues from that batch with the same result.
    checkpoint_minutes: Optional[float] = 10.0
    val_scans: Optional[int] = None  # validate on the first n scans (None: all)
    init: Optional[str] = None  # fine-tune: start from this checkpoint's weights ("pretrained": the shipped model's)
    # ... to landmarks the checkpoint lacks: their outputs start fresh, or as its nearest landmark's
    init_new_landmarks: Literal["fresh", "nearest"] = "fresh"
    freeze: Literal["none", "backbone"] = "none"  # backbone: only the head learns (with added_outputs: the added head)


# What no annotation says: the values each setting may take (None passes for optional ones).
RANGES = {
    "data": dict(above={"sigma": 0}, least={"translation": 0, "points": 1}, most={"threshold": 1}),
    "loss": dict(least={"focal_alpha": 0, "focal_gamma": 0, "offset_weight": 0, "consistency": 0},
                 above={"offset_radius": 0}, most={"focal_alpha": 1}),
    "optim": dict(above={"grad_clip": 0}, least={"lr": 0, "weight_decay": 0, "batch_size": 1, "accumulate": 1,
                                                          "epochs": 1, "t0": 1, "eta_min": 0}),
    "run": dict(above={"time_limit": 0, "checkpoint_minutes": 0}, least={"val_scans": 1}),
}


@dataclass
class ExperimentConfig:
    model: Dict[str, Any] = field(default_factory=lambda: {"preset": "default"})
    data: DataSettings = field(default_factory=DataSettings)
    loss: LossSettings = field(default_factory=LossSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)
    run: RunSettings = field(default_factory=RunSettings)

    def model_config(self) -> UNetConfig:
        values = dict(self.model)
        name = values.pop("preset", "default")
        return preset(name, **values)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "ExperimentConfig":
        sections = {"data": DataSettings, "loss": LossSettings, "optim": OptimSettings, "run": RunSettings}
        unknown = set(values) - set(sections) - {"model"}
        if unknown:
            raise ValueError(f"unknown config sections {sorted(unknown)}; known: model, {', '.join(sections)}")
        built = {"model": dict(values.get("model") or {"preset": "default"})}
        for name, kind in sections.items():
            given = dict(values.get(name) or {})
            known = {f.name for f in fields(kind)}
            if set(given) - known:
                raise ValueError(f"unknown {name} settings {sorted(set(given) - known)}; known: {sorted(known)}")
            try:
                built[name] = kind(**given)
            except TypeError as error:
                raise ValueError(f"{name} settings: {error}") from None
            check_choices(built[name], name)
            check_ranges(built[name], name, **RANGES[name])
        config = cls(**built)
        config.model_config()  # refuse bad model settings now, not mid-run
        return config


def apply_overrides(values: Dict[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    values = copy.deepcopy(values)
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ValueError(f"override {item!r} must look like section.field=value")
        key, raw = item.split("=", 1)
        section, name = key.split(".", 1)
        values.setdefault(section, {})
        values[section] = dict(values[section] or {})
        values[section][name] = read_yaml(raw)
    return values


def flat_settings(values: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """Nested settings (a config's to_dict(), a run's config.json) as {"loss.name": "bce", ...}."""
    out: Dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(flat_settings(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def load_config(path: Optional[Union[str, Path]] = None, overrides: Sequence[str] = ()) -> ExperimentConfig:
    values: Dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            values = read_yaml(path.read_text()) or {}
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such config file") from None
        except yaml.YAMLError as error:
            raise ValueError(f"{path}: invalid YAML ({error})") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: a config is a mapping of sections")
    return ExperimentConfig.from_dict(apply_overrides(values, overrides))
