"""Every engine layer is SE(3)-equivariant, finite on degenerate clouds, and trainable."""

import pytest
import torch

from se3unet.equivariant import (AttentiveSelfInteraction, ConvSE3, EquivariantGraph, Fiber, GNormBias,
                                 GSE3Res, LinearSE3)
from se3unet.equivariant import contraction, convolution
from se3unet.equivariant.rotation import random_rotation, relative_error, rotate_features, wigner_d
from se3unet.geometry.knn import knn_graph
from se3unet.verify import VerifyConfig, check_layer, equivariance_error, tolerance

FIBER = Fiber({0: 4, 1: 4, 2: 2})
OUT = Fiber({0: 3, 1: 2, 2: 2})

LAYERS = {
    "conv": lambda: ConvSE3(FIBER, OUT),
    "conv_to_higher_degree": lambda: ConvSE3(Fiber({0: 3}), Fiber({0: 2, 1: 2, 2: 1})),
    "gse3res_1x1_2heads": lambda: GSE3Res(FIBER, Fiber({0: 4, 1: 4, 2: 4}), heads=2),
    "gse3res_att": lambda: GSE3Res(FIBER, OUT, self_interaction="att"),
    "gse3res_new_degree": lambda: GSE3Res(Fiber({0: 4, 1: 2}), Fiber({0: 4, 1: 4, 2: 2}), heads=2),
    "linear": lambda: LinearSE3(FIBER, OUT),
    "attentive_si": lambda: AttentiveSelfInteraction(FIBER, OUT),
    "gnormbias": lambda: GNormBias(FIBER),
    "gnormbias_rms": lambda: GNormBias(FIBER, normalise=True),
}


def _features(fiber, b, n, dtype, generator=None):
    return {d: torch.randn(b, n, c, 2 * d + 1, dtype=dtype, generator=generator) for d, c in fiber}


def _run(layer, features, positions, neighbours):
    if isinstance(layer, (ConvSE3, GSE3Res)):
        return layer(features, EquivariantGraph(positions, neighbours, 2))
    return layer(features)


def _fiber_in(layer):
    return layer.fiber_in if hasattr(layer, "fiber_in") else layer.fiber


@pytest.mark.parametrize("name", LAYERS)
def test_layer_is_equivariant(name, dtype, device):
    layer = LAYERS[name]().to(device, dtype)
    # Biases start at zero; random ones make GNormBias's nonlinearity actually bite.
    for p in layer.parameters():
        if p.dim() == 2 and p.shape[-1] == 1:
            p.data.uniform_(-0.5, 0.5)
    positions = torch.randn(2, 40, 3, dtype=dtype).to(device)
    neighbours = knn_graph(positions, 6)
    features = {d: f.to(device) for d, f in _features(_fiber_in(layer), 2, 40, dtype).items()}
    rotation = random_rotation(dtype).to(device)
    translation = (torch.randn(3, dtype=dtype) * 5).to(device)
    err = equivariance_error(lambda f, x: _run(layer, f, x, neighbours), features, positions, rotation, translation)
    assert err < tolerance(dtype), f"{name}: relative error {err:.2e}"


EDGE_LAYERS = [name for name in LAYERS if name.startswith(("conv", "gse3res"))]


@pytest.mark.parametrize("route", ["direct", "summed"])
@pytest.mark.parametrize("name", EDGE_LAYERS)
def test_both_contraction_routes_are_equivariant(name, route, dtype, monkeypatch):
    """The default picks a route per layer and degree; each must be equivariant on its own."""
    monkeypatch.setattr(contraction, "ROUTE", route)
    layer = LAYERS[name]().to(dtype)
    positions = torch.randn(2, 30, 3, dtype=dtype)
    neighbours = knn_graph(positions, 5)
    features = _features(layer.fiber_in, 2, 30, dtype)
    rotation, translation = random_rotation(dtype), torch.randn(3, dtype=dtype) * 5
    err = equivariance_error(lambda f, x: _run(layer, f, x, neighbours), features, positions, rotation, translation)
    assert err < tolerance(dtype), f"{name} ({route}): relative error {err:.2e}"


def test_the_cheaper_route_is_chosen(monkeypatch):
    monkeypatch.setattr(contraction, "ROUTE", "auto")
    # Many channels per component, k = 12: summing over neighbours first is cheaper ...
    assert contraction.summed_route(channels=32, groups=2, components=3, k=12, radial=33)
    # ... few channels of degree 2 over 40 neighbours, one head: building the weights is.
    assert not contraction.summed_route(channels=4, groups=1, components=5, k=40, radial=33)
    monkeypatch.setattr(contraction, "ROUTE", "direct")
    assert not contraction.summed_route(channels=32, groups=2, components=3, k=12, radial=33)


def test_checker_detects_a_layer_that_breaks_equivariance():
    class AddsFixedVector(torch.nn.Module):
        def forward(self, features):
            return {d: f + 1.0 if d == 1 else f for d, f in features.items()}

    config = VerifyConfig(degrees=[0, 1], channels=2, points=20, neighbours=4)
    assert check_layer(AddsFixedVector(), config, torch.float64) > 0.1


def test_kernel_basis_turns_by_wigner_matrices():
    """K(Rx) = D_out(R) K(x) D_in(R)^T for every coupled block of the shared basis."""
    positions = torch.randn(1, 12, 3, dtype=torch.float64)
    neighbours = knn_graph(positions, 4)
    rotation = random_rotation(torch.float64)
    graph = EquivariantGraph(positions, neighbours, 2)
    turned = EquivariantGraph(positions @ rotation.T, neighbours, 2)
    for (l_in, l_out), basis in graph.basis.items():
        width = 2 * l_out + 1
        blocks = basis.unflatten(-1, (-1, width))  # [BN, k, m_in, J, m_out]
        expected = torch.einsum("ai,nkijb,cb->nkajc", wigner_d(l_in, rotation), blocks, wigner_d(l_out, rotation))
        actual = turned.basis[(l_in, l_out)].unflatten(-1, (-1, width))
        assert torch.allclose(actual, expected, atol=1e-12), (l_in, l_out)


def test_graph_quantities_are_invariant_to_rigid_motion():
    positions = torch.randn(2, 30, 3, dtype=torch.float64)
    neighbours = knn_graph(positions, 5)
    graph = EquivariantGraph(positions, neighbours, 1)
    moved = EquivariantGraph(positions @ random_rotation(torch.float64).T + 3.0, neighbours, 1)
    assert torch.allclose(graph.lengths, moved.lengths, atol=1e-12)
    assert torch.allclose(graph.radial_features, moved.radial_features, atol=1e-12)


@pytest.mark.parametrize("name", ["conv", "gse3res_1x1_2heads", "gse3res_att"])
def test_block_size_does_not_change_results(name, monkeypatch):
    layer = LAYERS[name]().double()
    positions = torch.randn(2, 50, 3, dtype=torch.float64)
    neighbours = knn_graph(positions, 7)
    features = _features(_fiber_in(layer), 2, 50, torch.float64)
    whole = _run(layer, features, positions, neighbours)
    monkeypatch.setattr(convolution, "EDGES_PER_BLOCK", 7 * 3)  # 3 points per block, ragged end
    blocked = _run(layer, features, positions, neighbours)
    assert relative_error(blocked, whole) < 1e-12


@pytest.mark.parametrize("name", ["conv", "gse3res_1x1_2heads", "gse3res_att", "gnormbias"])
def test_coincident_points_give_finite_outputs_and_gradients(name):
    layer = LAYERS[name]()
    base = torch.randn(1, 10, 3)
    positions = torch.cat([base, base, base[:, :4]], dim=1)  # every point duplicated
    positions[:, -1] = positions[:, 0]  # and one point three times
    neighbours = knn_graph(positions, 5)
    features = _features(_fiber_in(layer), 1, positions.shape[1], torch.float32)
    if "gnorm" in name:
        features = {d: f * 0 for d, f in features.items()}  # v = 0 exactly
    features = {d: f.requires_grad_(True) for d, f in features.items()}
    out = _run(layer, features, positions, neighbours)
    loss = sum(o.square().sum() + o.sum() for o in out.values())
    loss.backward()
    for o in out.values():
        assert torch.isfinite(o).all()
    for p in list(layer.parameters()) + list(features.values()):
        assert torch.isfinite(p.grad).all()


@pytest.mark.parametrize("name", [n for n in LAYERS if n != "gnormbias"])
def test_gradients_reach_every_parameter(name):
    layer = LAYERS[name]()
    positions = torch.randn(1, 20, 3)
    features = _features(_fiber_in(layer), 1, 20, torch.float32)
    out = _run(layer, features, positions, knn_graph(positions, 4))
    sum((o * torch.randn_like(o)).sum() for o in out.values()).backward()
    for pname, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: no gradient for {pname}"


def test_gradients_are_the_same_every_time():
    # Enough edges for the CPU backward to run on several threads: scattered adds in a
    # thread-dependent order once made gradients differ in their last bits from run to run.
    torch.manual_seed(0)
    layer = GSE3Res(Fiber({0: 8, 1: 8}), Fiber({0: 8, 1: 8}), heads=2)
    positions = torch.randn(2, 2048, 3)
    features = {d: f.requires_grad_(True) for d, f in _features(layer.fiber_in, 2, 2048, torch.float32).items()}
    graph = EquivariantGraph(positions, knn_graph(positions, 12), 1)
    weights = {d: torch.randn_like(o) for d, o in layer(features, graph).items()}

    def gradients():
        for t in [*layer.parameters(), *features.values()]:
            t.grad = None
        sum((o * weights[d]).sum() for d, o in layer(features, graph).items()).backward()
        return [t.grad.clone() for t in [*layer.parameters(), *features.values()]]

    first = gradients()
    for _ in range(3):
        assert all(torch.equal(a, b) for a, b in zip(first, gradients()))


def test_gnormbias_gets_gradients_through_its_bias():
    layer = GNormBias(FIBER)
    features = _features(FIBER, 1, 5, torch.float32)
    sum(o.sum() for o in layer(features).values()).backward()
    assert all(p.grad.abs().sum() > 0 for p in layer.parameters())


@pytest.mark.parametrize("name", ["conv", "gse3res_1x1_2heads", "gse3res_att", "gnormbias", "attentive_si"])
def test_gradcheck_float64_on_a_tiny_graph(name):
    layer = LAYERS[name]().double()
    positions = torch.randn(1, 6, 3, dtype=torch.float64)
    neighbours = knn_graph(positions, 3)
    fiber = _fiber_in(layer)
    features = _features(fiber, 1, 6, torch.float64)
    degrees = list(fiber.degrees)

    def fn(*tensors):
        out = _run(layer, dict(zip(degrees, tensors)), positions, neighbours)
        return tuple(out[d] for d in sorted(out))

    inputs = tuple(features[d].requires_grad_(True) for d in degrees)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6)


def test_wrong_input_fiber_is_refused():
    layer = ConvSE3(FIBER, OUT)
    positions = torch.randn(1, 10, 3)
    bad = _features(Fiber({0: 4, 1: 3, 2: 2}), 1, 10, torch.float32)
    with pytest.raises(ValueError, match="degree 1"):
        layer(bad, EquivariantGraph(positions, knn_graph(positions, 3), 2))


def test_heads_must_divide_channels():
    with pytest.raises(ValueError, match="heads"):
        GSE3Res(FIBER, Fiber({0: 3, 1: 3}), heads=2)


def test_graph_refuses_a_basis_below_the_layer_degree():
    layer = ConvSE3(FIBER, OUT)
    positions = torch.randn(1, 10, 3)
    features = _features(FIBER, 1, 10, torch.float32)
    with pytest.raises(ValueError, match="max degree"):
        layer(features, EquivariantGraph(positions, knn_graph(positions, 3), 1))
