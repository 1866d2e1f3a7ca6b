import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request):
    return request.param


# Relative equivariance tolerances for the engine's layers (issue #2).
LAYER_TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


@pytest.fixture(scope="session")
def sfm_dir():
    """The Surrey Face Model folder: $SE3UNET_SFM_DIR, else ../shared/data/sfm beside the repo."""
    import os
    from pathlib import Path

    folder = Path(os.environ.get("SE3UNET_SFM_DIR", Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "sfm"))
    if not (folder / "sfm_shape_3448.bin").is_file():
        pytest.fail(f"Surrey Face Model files not found in {folder}: set SE3UNET_SFM_DIR (see README)")
    return folder


@pytest.fixture(scope="session")
def sfm_model(sfm_dir):
    from se3unet.data.sfm import SurreyFaceModel

    return SurreyFaceModel(sfm_dir)
