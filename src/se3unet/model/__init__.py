"""The SE(3)-equivariant U-Net, its parts and its presets."""

from .config import UNetConfig
from .presets import PRESETS, preset
from .pooling import Pooling3D
from .unet import SE3ConvBlock, SE3Unet
from .upsampling import Upsampling3D

__all__ = ["PRESETS", "Pooling3D", "SE3ConvBlock", "SE3Unet", "UNetConfig", "Upsampling3D", "preset"]
