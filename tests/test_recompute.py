"""Recomputing the convolutions' per-edge work in the backward pass changes nothing but memory."""

import pytest
import torch

from se3unet.equivariant import ConvSE3, EquivariantGraph, Fiber, GSE3Res, convolution
from se3unet.geometry.knn import knn_graph
from se3unet.model import SE3Unet, preset

FIBER = Fiber({0: 4, 1: 4, 2: 2})


def _features(fiber, b, n):
    return {d: torch.randn(b, n, c, 2 * d + 1, dtype=torch.float64, requires_grad=True) for d, c in fiber}


def _outputs_and_gradients(layer, features, graph):
    layer.zero_grad(set_to_none=True)
    for f in features.values():
        f.grad = None
    out = layer(features, graph)
    # A loss that mixes every output component with a different weight.
    loss = sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)).sum() for o in out.values())
    loss.backward()
    grads = [p.grad.clone() for p in layer.parameters()] + [f.grad.clone() for f in features.values()]
    return [o.detach() for o in out.values()], grads


@pytest.mark.parametrize("make", [
    lambda r: ConvSE3(FIBER, Fiber({0: 3, 1: 2, 2: 2}), recompute=r),
    lambda r: GSE3Res(FIBER, Fiber({0: 4, 1: 4, 2: 2}), heads=2, self_interaction="att", recompute=r),
], ids=["conv", "gse3res"])
def test_layer_outputs_and_gradients_match_without_recompute(make, monkeypatch):
    monkeypatch.setattr(convolution, "EDGES_PER_BLOCK", 60)  # several blocks, the last one partial
    on, off = make(True).double(), make(False).double()
    off.load_state_dict(on.state_dict())
    positions = torch.randn(2, 37, 3, dtype=torch.float64)
    graph = EquivariantGraph(positions, knn_graph(positions, 5), 2)
    features = _features(FIBER, 2, 37)
    out_on, grads_on = _outputs_and_gradients(on, features, graph)
    out_off, grads_off = _outputs_and_gradients(off, features, graph)
    for a, b in zip(out_on + grads_on, out_off + grads_off):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_model_gradients_match_without_recompute(device):
    config = preset("default", num_outputs=4, channels=(4, 4), neighbours=6, pool_neighbours=4)
    on = SE3Unet(config).to(device, torch.float64)
    off = SE3Unet(config.replace(recompute=False)).to(device, torch.float64)
    off.load_state_dict(on.state_dict())
    positions = torch.randn(2, 64, 3, dtype=torch.float64).to(device)
    normals = torch.nn.functional.normalize(torch.randn(2, 64, 3, dtype=torch.float64), dim=-1).to(device)
    hierarchy = on.hierarchy(positions)
    results = []
    for model in (on, off):
        logits = model(positions, hierarchy, normals)
        logits.square().mean().backward()
        results.append([logits.detach()] + [p.grad for p in model.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def _saved_bytes(layer, features, graph):
    """Bytes autograd keeps for the backward pass of one forward call."""
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(features, graph)
    return sum(saved)


def test_recompute_keeps_no_per_edge_intermediates():
    on = GSE3Res(FIBER, FIBER, heads=2, recompute=True)
    off = GSE3Res(FIBER, FIBER, heads=2, recompute=False)
    positions = torch.randn(1, 200, 3)
    graph = EquivariantGraph(positions, knn_graph(positions, 16), 2)
    features = {d: f.float() for d, f in _features(FIBER, 1, 200).items()}
    edges = 200 * 16
    kept_on, kept_off = _saved_bytes(on, features, graph), _saved_bytes(off, features, graph)
    # Without recomputation the per-edge tensors (tens of floats per edge) are kept; with it,
    # what is kept is per point, plus the graph's own tensors that the layer reads.
    assert kept_off > 10 * kept_on, (kept_on, kept_off)
    assert kept_on < edges * 4 * 40, kept_on

