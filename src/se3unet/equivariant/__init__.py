"""SE(3)-equivariant layers on dense kNN graphs, in pure PyTorch on e3nn's primitives."""

from .attention import GSE3Res
from .basis import EquivariantGraph
from .convolution import ConvSE3
from .fiber import Features, Fiber
from .linear import AttentiveSelfInteraction, LinearSE3
from .norm import GNormBias

__all__ = [
    "AttentiveSelfInteraction", "ConvSE3", "EquivariantGraph", "Features", "Fiber", "GNormBias",
    "GSE3Res", "LinearSE3",
]
