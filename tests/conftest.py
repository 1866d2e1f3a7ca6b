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
