"""Equivariance self-check: build layers at a given size and measure how far they are from
exact SE(3) equivariance on random clouds, in float32 and float64.

Used by `se3unet verify` and by the tests; a user can run it on any configuration.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import torch
from torch import nn

from .equivariant import (AttentiveSelfInteraction, ConvSE3, EquivariantGraph, Fiber, GNormBias,
                          GSE3Res, LinearSE3)
from .equivariant.fiber import Features
from .equivariant.rotation import random_rotation, relative_error, rotate_features
from .geometry.knn import knn_graph
from .timing import median_step_seconds


# Pass marks: relative equivariance error per dtype, for every layer and the whole model (the
# `verify` command, the tests and the README's claims all read them from here).
TOLERANCE = {"float32": 1e-4, "float64": 1e-9}


def tolerance(dtype: torch.dtype) -> float:
    return TOLERANCE[str(dtype).replace("torch.", "")]


@dataclass
class VerifyConfig:
    degrees: List[int]
    channels: int = 8
    points: int = 256
    neighbours: int = 16
    heads: int = 2
    batch: int = 2
    seed: int = 0
    device: str = "cpu"


def layer_zoo(config: VerifyConfig) -> Dict[str, nn.Module]:
    """One of each engine layer, input and output fibers over the configured degrees."""
    fiber = Fiber.uniform(config.degrees, config.channels)
    narrow = Fiber.uniform(config.degrees, max(config.heads, config.channels // 2))
    return {
        "ConvSE3": ConvSE3(fiber, narrow),
        "GSE3Res(1x1)": GSE3Res(fiber, fiber, heads=config.heads, self_interaction="1x1"),
        "GSE3Res(att)": GSE3Res(fiber, narrow, heads=config.heads, self_interaction="att"),
        "LinearSE3": LinearSE3(fiber, narrow),
        "AttentiveSelfInteraction": AttentiveSelfInteraction(fiber, narrow),
        "GNormBias": GNormBias(fiber),
    }


def randomise_biases(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """GNormBias starts as the identity (zero bias), which would check a linear map: biases
    drawn in [-1, 1] switch channels on and off, so the nonlinearity is what is checked."""
    for norm in (m for m in module.modules() if isinstance(m, GNormBias)):
        for bias in norm.bias.values():
            with torch.no_grad():
                bias.copy_(torch.rand(bias.shape, dtype=torch.float64, generator=generator).to(bias) * 2 - 1)
    return module


def random_inputs(config: VerifyConfig, dtype: torch.dtype, generator: torch.Generator):
    positions = torch.randn(config.batch, config.points, 3, dtype=torch.float64, generator=generator)
    features = {
        d: torch.randn(config.batch, config.points, config.channels, 2 * d + 1, dtype=torch.float64,
                       generator=generator)
        for d in config.degrees
    }
    # Drawn on the CPU in float64 so every dtype and device checks the same clouds.
    return (positions.to(config.device, dtype),
            {d: f.to(config.device, dtype) for d, f in features.items()})


def apply_layer(layer: nn.Module, features: Features, positions: torch.Tensor, neighbours: torch.Tensor,
                max_degree: int) -> Features:
    if isinstance(layer, (ConvSE3, GSE3Res)):
        return layer(features, EquivariantGraph(positions, neighbours, max_degree))
    return layer(features)


def equivariance_error(run: Callable[[Features, torch.Tensor], Features], features: Features,
                       positions: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor) -> float:
    """Relative error between f(R x + t, D(R) h) and D(R) f(x, h)."""
    with torch.no_grad():
        expected = rotate_features(run(features, positions), rotation)
        actual = run(rotate_features(features, rotation), positions @ rotation.T + translation)
    return relative_error(actual, expected)


def check_layer(layer: nn.Module, config: VerifyConfig, dtype: torch.dtype) -> float:
    generator = torch.Generator().manual_seed(config.seed)
    positions, features = random_inputs(config, dtype, generator)
    rotation = random_rotation(dtype, generator).to(config.device)
    translation = torch.randn(3, dtype=torch.float64, generator=generator).to(config.device, dtype)
    # Neighbours come from the unrotated cloud, so a kNN tie cannot pass for a layer error.
    neighbours = knn_graph(positions, config.neighbours)
    layer = randomise_biases(copy.deepcopy(layer), torch.Generator().manual_seed(config.seed)).to(config.device, dtype)
    max_degree = max(config.degrees)
    return equivariance_error(
        lambda f, x: apply_layer(layer, f, x, neighbours, max_degree), features, positions, rotation, translation
    )


def time_layer(layer: nn.Module, config: VerifyConfig, repeats: int = 3) -> float:
    """Median seconds of one float32 forward + backward, graph construction included."""
    generator = torch.Generator().manual_seed(config.seed)
    positions, features = random_inputs(config, torch.float32, generator)
    for f in features.values():
        f.requires_grad_(True)
    layer = layer.to(config.device)

    def step():
        out = apply_layer(layer, features, positions, knn_graph(positions, config.neighbours), max(config.degrees))
        sum(o.square().sum() for o in out.values()).backward()

    return median_step_seconds(step, repeats)


def verify_layers(config: VerifyConfig, progress: Optional[Callable[[str], None]] = None) -> Dict[str, Dict[str, float]]:
    torch.manual_seed(config.seed)
    results = {}
    for name, layer in layer_zoo(config).items():
        if progress:
            progress(name)
        results[name] = {
            "float32": check_layer(layer, config, torch.float32),
            "float64": check_layer(layer, config, torch.float64),
            "seconds": time_layer(layer, config),
        }
    return results


# Bias ranges tried in turn for a model's GNormBias: [-1, 1] switches channels on and off; where
# that zeroes every feature (the original preset: one degree-1 channel between blocks) the
# output no longer depends on the input and a check of it says nothing, so [0, 1] (norms
# shifted, never cut) is tried next.
BIAS_RANGES = ((-1.0, 1.0), (0.0, 1.0))


def randomise_model_biases(module: nn.Module, generator: torch.Generator, low: float, high: float) -> nn.Module:
    for norm in (m for m in module.modules() if isinstance(m, GNormBias)):
        for bias in norm.bias.values():
            with torch.no_grad():
                bias.copy_(torch.rand(bias.shape, dtype=torch.float64, generator=generator).to(bias) * (high - low) + low)
    return module


def collapsed(logits: torch.Tensor) -> bool:
    """True when the logits are the same at every point: nothing of the input reaches them."""
    return not float(logits.std(dim=1).mean()) > 1e-9 * max(float(logits.abs().max()), 1e-300)


def verify_model(model_config, points: int = 1024, batch: int = 1, seed: int = 0,
                 device: str = "cpu") -> Dict[str, object]:
    """Change of a whole network's per-point logits (the one the config names: SE3Unet or the
    EdgeConv baseline) when its input cloud (and its normals, if the model reads them) is
    rotated and moved; the hierarchy (FPS, kNN) is rebuilt from each pose, as in real use. The
    model's GNormBias biases are random (``BIAS_RANGES``), so its nonlinearities act.

    Returned per dtype: the largest change relative to the largest logit (what pass or fail is
    judged on), and under ``spread`` relative to the logits' spread across points (their
    standard deviation over the points, averaged over landmarks): how large the change is
    against the differences between points that decide where a landmark is. ``collapsed``: the
    logits were constant over the points for every bias range, so nothing was checked (errors
    are then NaN and the check fails); ``bias_range``: the range the figures are for.
    """
    from .model import build_network

    for low, high in BIAS_RANGES:
        torch.manual_seed(seed)
        model = randomise_model_biases(build_network(model_config), torch.Generator().manual_seed(seed), low, high)
        result = _model_change(model, model_config, points, batch, seed, device)
        if not result["collapsed"]:
            break
    result["bias_range"] = [low, high]
    return result


def _model_change(model: nn.Module, model_config, points: int, batch: int, seed: int,
                  device: str) -> Dict[str, object]:
    result: Dict[str, object] = {"spread": {}, "collapsed": False}
    for dtype in (torch.float32, torch.float64):
        generator = torch.Generator().manual_seed(seed)
        positions = torch.randn(batch, points, 3, dtype=torch.float64, generator=generator).to(device, dtype)
        normals = torch.nn.functional.normalize(
            torch.randn(batch, points, 3, dtype=torch.float64, generator=generator), dim=-1).to(device, dtype)
        rotation = random_rotation(dtype, generator).to(device)
        translation = torch.randn(3, dtype=torch.float64, generator=generator).to(device, dtype)
        typed = copy.deepcopy(model).to(device, dtype)
        uses_normals = model_config.normals
        start = time.perf_counter()
        with torch.no_grad():
            logits = typed(positions, normals=normals if uses_normals else None)
            moved = typed(positions @ rotation.T + translation, normals=normals @ rotation.T if uses_normals else None)
        if dtype == torch.float32:
            result["seconds"] = (time.perf_counter() - start) / 2
        name = str(dtype).replace("torch.", "")
        if collapsed(logits):
            result["collapsed"] = True
            result[name] = result["spread"][name] = float("nan")
            continue
        change = float((moved - logits).abs().max())
        result[name] = change / float(logits.abs().max())
        result["spread"][name] = change / float(logits.std(dim=1).mean())
    return result
