"""A fine-tuned model's first weights, from a checkpoint trained on other landmarks.

The backbone is copied whole. The head: a landmark the checkpoint knows keeps its output rows; a
new one starts from freshly drawn rows ("fresh", the default) or from the output rows of the
checkpoint's landmark that lands nearest to it on the training scans ("nearest"). Measured on
the ICT head landmark set (docs/your-landmarks.md), 20 heads, 500 steps: fresh 16.4 mm, nearest
25.9 mm (a right-ear landmark started from a right-face landmark lands on the wrong side more
often). The head's hidden layers are the checkpoint's in both cases. With ``AddedHead``
(landmarks kept), the kept head is the checkpoint's head as it was, and the added head starts
as described.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..model.head import AddedHead, InvariantHead, OffsetHead

HEAD = "head."


def _output_layers(head: nn.Module) -> List[nn.Linear]:
    """The head's last linear layers, whose rows belong to landmarks: (logits, offset weights)."""
    if isinstance(head, OffsetHead):
        return [head.logits.mlp[-1], head.weights[-1]]
    if isinstance(head, InvariantHead):
        return [head.mlp[-1]]
    raise ValueError(f"fine-tuning to new landmarks needs the invariant or offset head, not {type(head).__name__}")


@torch.no_grad()
def start_head(head: nn.Module, base: Dict[str, torch.Tensor], rows: Sequence[Optional[int]]) -> None:
    """``head`` from the base head's weights (``base``: its state dict): hidden layers copied, and
    output ``k`` from the base's output ``rows[k]`` (None: ``head``'s own fresh rows)."""
    own = head.state_dict()
    layers = _output_layers(head)
    names = {id(p): n for n, p in head.named_parameters()}
    output_keys = {names[id(layer.weight)] for layer in layers} | {names[id(layer.bias)] for layer in layers}
    head.load_state_dict({k: v if k in output_keys else base[k] for k, v in own.items()})
    for layer in layers:
        key = names[id(layer.weight)].rsplit(".", 1)[0]
        per_landmark = layer.out_features // len(rows)  # the offset weights: one row per degree-1 channel
        weight = base[f"{key}.weight"].unflatten(0, (-1, per_landmark))
        bias = base[f"{key}.bias"].unflatten(0, (-1, per_landmark))
        for k, row in enumerate(rows):
            if row is not None:
                layer.weight[k * per_landmark:(k + 1) * per_landmark] = weight[row]
                layer.bias[k * per_landmark:(k + 1) * per_landmark] = bias[row]


def nearest_outputs(base_positions: np.ndarray, new_positions: np.ndarray) -> List[int]:
    """For each new landmark, the base output whose predicted position is nearest on average
    (positions: [S, K, 3] over S scans; NaN where a scan lacks a landmark)."""
    distance = np.linalg.norm(base_positions[:, :, None] - new_positions[:, None], axis=-1)  # [S, K_base, K_new]
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(np.where(np.isfinite(distance), distance, np.nan), axis=0)
    return [int(np.nanargmin(column)) if np.isfinite(column).any() else 0 for column in mean.T]


def load_finetune_weights(model: nn.Module, base: Dict[str, torch.Tensor], base_names: Sequence[str],
                          names: Sequence[str], nearest: Optional[Dict[str, int]]) -> None:
    """``model`` (predicting ``names``) from ``base`` (weights predicting ``base_names``).
    ``nearest``: per new name, the base output to start from; None: fresh rows."""
    backbone = {k: v for k, v in base.items() if not k.startswith(HEAD)}
    missing = [k for k in model.state_dict() if not k.startswith(HEAD) and k not in backbone]
    if missing:
        raise ValueError(f"the base checkpoint lacks backbone weights {missing[:3]}: another architecture")
    model.load_state_dict({**model.state_dict(), **backbone})
    base_head = {k[len(HEAD):]: v for k, v in base.items() if k.startswith(HEAD)}
    position = {n: i for i, n in enumerate(base_names)}

    def rows(wanted: Sequence[str]) -> List[Optional[int]]:
        return [position[n] if n in position else (nearest or {}).get(n) for n in wanted]

    if isinstance(model.head, AddedHead):
        kept = len(names) - model.config.added_outputs
        if list(names[:kept]) != list(base_names):
            raise ValueError("kept landmarks must be the base checkpoint's, in its order, before the added ones")
        model.head.kept.load_state_dict(base_head)
        start_head(model.head.added, base_head, rows(names[kept:]))
    else:
        start_head(model.head, base_head, rows(names))


def freeze_backbone(model: nn.Module) -> List[str]:
    """Only the head learns (with AddedHead: only the added head); returns what stays fixed."""
    trained = model.head.added if isinstance(model.head, AddedHead) else model.head
    keep = {id(p) for p in trained.parameters()}
    frozen = []
    for name, parameter in model.named_parameters():
        if id(parameter) not in keep:
            parameter.requires_grad_(False)
            frozen.append(name)
    return frozen
