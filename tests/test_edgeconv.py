"""The non-equivariant baseline (EdgeConvUnet): the SE3Unet interface, translation invariance,
no rotation invariance, and it learns."""

import pytest
import torch

from se3unet.equivariant.rotation import random_rotation
from se3unet.inference import build_model
from se3unet.inference.checkpoint import InferenceState
from se3unet.model import EdgeConvUnet, SE3Unet, UNetConfig, build_network, preset

TINY = preset("baseline", num_outputs=5, channels=(8, 8, 8), neighbours=6, pool_keep=0.5, pool_neighbours=4,
              head_hidden=16)


def cloud(points=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, points, 3, generator=g)
    return x, torch.nn.functional.normalize(torch.randn(2, points, 3, generator=g), dim=-1)


def test_the_factory_builds_the_architecture_the_config_names():
    assert isinstance(build_network(TINY), EdgeConvUnet)
    assert isinstance(build_network(UNetConfig()), SE3Unet)
    with pytest.raises(ValueError, match="architecture"):
        UNetConfig(architecture="pointnet")
    with pytest.raises(ValueError, match="head"):
        EdgeConvUnet(TINY.replace(head="cartesian"))


def test_it_answers_as_se3unet_does():
    model = EdgeConvUnet(TINY)
    x, n = cloud()
    logits, offsets = model(x, normals=n, with_offsets=True)
    assert logits.shape == (2, 60, 5) and offsets.shape == (2, 60, 5, 3)
    assert torch.equal(model(x, normals=n), logits)
    assert torch.equal(model(x, model.hierarchy(x), normals=n), logits)  # a cached hierarchy gives the same
    heatmap_only = EdgeConvUnet(TINY.replace(head="invariant"))
    assert heatmap_only(x, normals=n, with_offsets=True)[1] is None
    with pytest.raises(ValueError, match="normals"):
        model(x)


def test_it_ignores_translation_but_not_rotation():
    model = EdgeConvUnet(TINY).double().eval()
    x, n = (t.double() for t in cloud())
    r = random_rotation(torch.float64, torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = model(x, normals=n)
        moved = model(x + torch.tensor([3.0, -2.0, 5.0], dtype=torch.float64), normals=n)
        turned = model(x @ r.T, normals=n @ r.T)
    assert float((a - moved).abs().max()) < 1e-9
    assert float((a - turned).abs().max() / a.abs().max()) > 1e-2  # rotations are only learned


def test_checkpoints_rebuild_it():
    model = EdgeConvUnet(TINY)
    state = InferenceState(TINY.to_dict(), model.state_dict(), [f"l{i}" for i in range(5)])
    rebuilt = build_model(state)
    x, n = cloud()
    assert isinstance(rebuilt, EdgeConvUnet) and torch.equal(rebuilt(x, normals=n), model.eval()(x, normals=n))


def test_it_learns_to_point_at_a_landmark():
    torch.manual_seed(0)
    model = EdgeConvUnet(TINY.replace(num_outputs=1))
    x, n = cloud(points=64)
    target = (x[..., 0] > 1.0).float()  # the points far along x
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss = lambda: torch.nn.functional.binary_cross_entropy_with_logits(model(x, normals=n)[..., 0], target)
    first = float(loss().detach())
    for _ in range(60):
        optimiser.zero_grad()
        value = loss()
        value.backward()
        optimiser.step()
    assert float(loss().detach()) < 0.3 * first
