"""se3unet: SE(3)-invariant facial landmark detection on 3D scans in any pose."""

__version__ = "0.1.0"


def load_pretrained(device="cpu"):
    """The model that ships with the package and its checkpoint: ``model, checkpoint =
    se3unet.load_pretrained()`` (see se3unet.pretrained). Imported on call, so ``import
    se3unet`` stays light."""
    from .pretrained import load_pretrained as load

    return load(device)
