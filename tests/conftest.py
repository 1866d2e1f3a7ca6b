import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request):
    return request.param


# Every device this machine has: the equivariance tests run on each (a GPU machine adds "cuda").
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    if request.param == "cuda":  # TF32 matmuls would break equivariance; se3unet turns it off too
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return torch.device(request.param)




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


@pytest.fixture(scope="session")
def ict_dir():
    """The ICT Face Model folder: $SE3UNET_ICT_DIR, else ../shared/data/ict beside the repo."""
    import os
    from pathlib import Path

    folder = Path(os.environ.get("SE3UNET_ICT_DIR", Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ict"))
    if not (folder / "ict_face_model.npz").is_file():
        pytest.fail(f"ICT Face Model file not found in {folder}: set SE3UNET_ICT_DIR (see README)")
    return folder


@pytest.fixture(scope="session")
def ict_model(ict_dir):
    from se3unet.data.ict import IctFaceModel

    return IctFaceModel(ict_dir)
