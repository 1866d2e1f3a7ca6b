import pytest
import torch

from se3unet.equivariant import Fiber


def test_fiber_dimension_sum_and_lookup():
    f = Fiber({1: 3, 0: 2})
    assert f.degrees == (0, 1)
    assert f.dimension == 2 * 1 + 3 * 3
    assert f[2] == 0 and 1 in f and 2 not in f
    assert f + Fiber({0: 1, 2: 4}) == Fiber({0: 3, 1: 3, 2: 4})


def test_fiber_check_names_the_problem():
    f = Fiber.uniform([0, 1], 2)
    f.check({0: torch.zeros(1, 5, 2, 1), 1: torch.zeros(1, 5, 2, 3)})
    with pytest.raises(ValueError, match="degrees"):
        f.check({0: torch.zeros(1, 5, 2, 1)})
    with pytest.raises(ValueError, match="expected"):
        f.check({0: torch.zeros(1, 5, 2, 1), 1: torch.zeros(1, 5, 2, 2)})


def test_empty_or_negative_fibers_are_refused():
    with pytest.raises(ValueError):
        Fiber({})
    with pytest.raises(ValueError):
        Fiber({-1: 2})
