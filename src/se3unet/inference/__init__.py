"""Everything needed to run a trained model, and nothing of training or evaluation.

Imported by train, evaluate, predict and demo; imports only model/ and the package's atomic
writer and option checks (tests/test_imports.py keeps it that way).

    from se3unet.inference import load_model, decode
    model, checkpoint = load_model("runs/x/best.pt")
    heatmaps, landmarks = decode(model(points, normals=normals), points, checkpoint.inference.decoding)
"""

from __future__ import annotations

from pathlib import Path
from typing import Tuple, Union

import torch

from ..model import UNetConfig, build_network
from .checkpoint import (Checkpoint, InferenceState, Provenance, ReadSettings, ResumeState, ScanSettings,
                         convert_legacy)
from .decode import (Decoding, decode, heatmaps_from_logits, landmark_errors_mm, landmark_spreads,
                     landmark_uncertainty, landmarks_from_heatmaps, vote_spread)


def choose_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """'auto' (a GPU when there is one), 'cpu' or 'cuda'. On a GPU, TF32 matmuls are turned
    off: they break equivariance (NVIDIA's SE(3)-Transformer measured errors of 0.15)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' asked for, but no CUDA device is available")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        return torch.device("cuda", local_rank)
    return torch.device(name)


def build_model(inference: InferenceState, device: Union[str, torch.device] = "cpu") -> torch.nn.Module:
    model = build_network(UNetConfig.from_dict(inference.model_config))
    model.load_state_dict(inference.weights)
    return model.to(device).eval()


def load_model(path: Union[str, Path], device: Union[str, torch.device] = "cpu") -> Tuple[torch.nn.Module, Checkpoint]:
    """The model of a checkpoint, in evaluation mode on ``device``, and the checkpoint."""
    checkpoint = Checkpoint.load(path, device)
    return build_model(checkpoint.inference, device), checkpoint


__all__ = [
    "Checkpoint", "Decoding", "InferenceState", "Provenance", "ReadSettings", "ResumeState", "ScanSettings", "build_model",
    "choose_device", "convert_legacy", "decode", "heatmaps_from_logits", "landmark_errors_mm",
    "landmark_spreads", "landmark_uncertainty", "landmarks_from_heatmaps", "load_model", "vote_spread",
]
