"""The SE(3)-equivariant U-Net, its parts and its presets."""

from torch import nn

from .config import UNetConfig
from .edgeconv import EdgeConvUnet
from .presets import PRESETS, preset
from .pooling import Pooling3D
from .unet import SE3ConvBlock, SE3Unet
from .upsampling import Upsampling3D



def build_network(config: UNetConfig) -> nn.Module:
    """The network a config describes: SE3Unet, or the EdgeConvUnet baseline."""
    return EdgeConvUnet(config) if config.architecture == "edgeconv" else SE3Unet(config)


__all__ = ["EdgeConvUnet", "PRESETS", "Pooling3D", "SE3ConvBlock", "SE3Unet", "UNetConfig", "Upsampling3D",
           "build_network", "preset"]
