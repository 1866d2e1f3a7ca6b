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



def shared_model_folder(variable: str, name: str, required: str, what: str):
    """A face model's folder: $variable, else ../shared/data/<name> beside the repo; a missing
    file fails the test (CI has the folder: a skip would hide that it is gone)."""
    import os
    from pathlib import Path

    default = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / name
    folder = Path(os.environ.get(variable, default))
    if not (folder / required).is_file():
        pytest.fail(f"{what} file {required} not found in {folder}: set {variable} (see README)")
    return folder


@pytest.fixture(scope="session")
def sfm_dir():
    return shared_model_folder("SE3UNET_SFM_DIR", "sfm", "sfm_shape_3448.bin", "Surrey Face Model")


@pytest.fixture(scope="session")
def sfm_model(sfm_dir):
    from se3unet.data.sfm import SurreyFaceModel

    return SurreyFaceModel(sfm_dir)


@pytest.fixture(scope="session")
def ict_dir():
    return shared_model_folder("SE3UNET_ICT_DIR", "ict", "ict_face_model.npz", "ICT Face Model")


@pytest.fixture(scope="session")
def ict_model(ict_dir):
    from se3unet.data.ict import IctFaceModel

    return IctFaceModel(ict_dir)


@pytest.fixture
def face_obj(sfm_model, tmp_path):
    """The Surrey mean face written as an OBJ file."""
    from helpers import write_obj

    write_obj(tmp_path / "face.obj", sfm_model.shape.mean, sfm_model.triangles)
    return tmp_path / "face.obj"
