"""UNetConfig: every architectural choice of SE3Unet in one serialisable record."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, Literal, Tuple

from ..choices import check_choices


@dataclass(frozen=True)
class UNetConfig:
    # se3unet: SE(3)-Transformer blocks (SE3Unet); edgeconv: the non-equivariant DGCNN-style
    # baseline on the same hierarchy, pooling, upsampling and head (EdgeConvUnet)
    architecture: Literal["se3unet", "edgeconv"] = "se3unet"
    num_outputs: int = 50  # K landmark heatmaps (68 for FaceScape, 50 for the Surrey Face Model)
    degrees: Tuple[int, ...] = (0, 1)
    channels: Tuple[int, ...] = (8, 16, 16)  # per degree, one entry per level (levels = len - 1)
    heads: int = 2
    neighbours: int = 12  # k of every level's kNN graph
    pool_keep: float = 0.25  # fraction of points each pooling keeps
    pooling: Literal["mean", "sum", "max", "multi", "componentwise_max"] = "max"
    pool_neighbours: int = 8  # fine points aggregated per kept point
    up_neighbours: int = 3
    up_power: float = 2.0
    join: Literal["sum", "concat"] = "sum"  # how skip features meet upsampled ones
    hidden_self_interaction: Literal["1x1", "att"] = "1x1"
    final_self_interaction: Literal["1x1", "att"] = "att"  # the network's last GSE3Res
    inputs: Literal["centred", "absolute"] = "centred"
    normals: bool = True  # add the unit normal as a second degree-1 input channel
    # invariant: heatmap logits from invariants; offset: the same plus a degree-1 offset per
    # point and landmark (landmarks by offset vote); cartesian: the original's, not invariant
    head: Literal["invariant", "offset", "cartesian"] = "invariant"
    block_output: Literal["full", "single_vector"] = "full"
    # GNormBias of every block: "bias" (the report's ReLU(|v| + b)) or "rms" (norms first
    # divided by their RMS over the channels: the signal keeps its size through depth)
    norm: Literal["bias", "rms"] = "bias"
    # Fine-tuned to added landmarks beside kept ones: the last ``added_outputs`` of the
    # ``num_outputs`` come from a head of their own (model/head.py AddedHead); 0: one head.
    added_outputs: int = 0
    head_hidden: int = 64
    radial_hidden: int = 32
    # Recompute each convolution's per-edge work in the backward pass instead of storing it
    # (activation checkpointing per block of edges): a third of the memory for ~1.2x the step
    # time. Changes no weights or outputs; off only to trade memory for speed.
    recompute: bool = True

    def __post_init__(self):
        check_choices(self, "model")
        if len(self.channels) < 1:
            raise ValueError("channels needs one entry per level")
        if not 0 <= self.added_outputs < self.num_outputs:
            raise ValueError(f"added_outputs must be in [0, num_outputs), got {self.added_outputs}")
        if self.added_outputs and (self.architecture != "se3unet" or self.head == "cartesian"):
            raise ValueError("added_outputs needs the se3unet architecture with the invariant or offset head")
        if 0 not in self.degrees or 1 not in self.degrees:
            raise ValueError(f"degrees must include 0 and 1 (the inputs' degrees), got {self.degrees}")

    @property
    def levels(self) -> int:
        """Number of poolings (the U's depth)."""
        return len(self.channels) - 1

    def to_dict(self) -> Dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "UNetConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown model settings: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def replace(self, **changes: Any) -> "UNetConfig":
        return UNetConfig.from_dict({**self.to_dict(), **changes})
