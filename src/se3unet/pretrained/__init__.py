"""The model that ships with the package: 68 iBUG landmarks on face scans and whole heads in any
pose (docs/model-card.md says how it was trained and how well it does).

    import se3unet
    model, checkpoint = se3unet.load_pretrained()

`se3unet predict` and `se3unet evaluate` use it when no --checkpoint is given. The weights are
the inference part of a checkpoint (`se3unet export`), written by experiments/train_pretrained.sh.
"""

from __future__ import annotations

from pathlib import Path
from typing import Tuple, Union

import torch

WEIGHTS = Path(__file__).with_name("face68.pt")


def pretrained_path() -> Path:
    """The shipped checkpoint file; a clear error when this installation lacks it."""
    if not WEIGHTS.is_file():
        raise FileNotFoundError(f"{WEIGHTS}: the shipped weights are missing from this installation; "
                                f"reinstall se3unet, or pass --checkpoint with weights of your own")
    return WEIGHTS


def load_pretrained(device: Union[str, torch.device] = "cpu") -> Tuple["SE3Unet", "Checkpoint"]:  # noqa: F821
    """The shipped model in evaluation mode on ``device``, and its checkpoint (landmark names,
    scan settings, decoding, provenance)."""
    from ..inference import load_model

    return load_model(pretrained_path(), device)
