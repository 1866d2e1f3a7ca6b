"""se3unet: SE(3)-invariant facial landmark detection on 3D scans in any pose."""

__version__ = "0.1.0"
