"""The reworked edge layers compute the same function as the engine before issue 40.

tests/reference_engine.py keeps the old ConvSE3 and GSE3Res verbatim; here both get the same
weights and inputs in float64 and must agree to 1e-12 in outputs and in every gradient, layer by
layer and for whole models (every GSE3Res of a U-Net swapped for the reference).
"""

import pytest
import torch

from reference_engine import ReferenceConvSE3, ReferenceGSE3Res
from se3unet.equivariant import ConvSE3, EquivariantGraph, Fiber, GSE3Res, contraction, convolution
from se3unet.geometry.knn import knn_graph
from se3unet.model import SE3Unet, preset

FIBER = Fiber({0: 4, 1: 3, 2: 2})

# (new layer, reference layer) factories with the same constructor arguments.
LAYERS = {
    "conv": (lambda r: ConvSE3(FIBER, Fiber({0: 3, 1: 2, 2: 2}), recompute=r),
             lambda r: ReferenceConvSE3(FIBER, Fiber({0: 3, 1: 2, 2: 2}), recompute=r)),
    "conv_from_scalars": (lambda r: ConvSE3(Fiber({0: 3}), Fiber({0: 2, 1: 2}), recompute=r),
                          lambda r: ReferenceConvSE3(Fiber({0: 3}), Fiber({0: 2, 1: 2}), recompute=r)),
    "gse3res_2heads": (lambda r: GSE3Res(FIBER, Fiber({0: 4, 1: 4, 2: 2}), heads=2, recompute=r),
                       lambda r: ReferenceGSE3Res(FIBER, Fiber({0: 4, 1: 4, 2: 2}), heads=2, recompute=r)),
    "gse3res_att": (lambda r: GSE3Res(FIBER, Fiber({0: 3, 1: 2}), self_interaction="att", recompute=r),
                    lambda r: ReferenceGSE3Res(FIBER, Fiber({0: 3, 1: 2}), self_interaction="att", recompute=r)),
    "gse3res_new_degree": (
        lambda r: GSE3Res(Fiber({0: 4, 1: 2}), Fiber({0: 4, 1: 4, 2: 2}), heads=2, recompute=r),
        lambda r: ReferenceGSE3Res(Fiber({0: 4, 1: 2}), Fiber({0: 4, 1: 4, 2: 2}), heads=2, recompute=r)),
}


def _outputs_and_gradients(layer, features, graph):
    features = {d: f.clone().requires_grad_(True) for d, f in features.items()}
    out = layer(features, graph)
    # Every output component weighted differently, so a permuted or dropped term shows.
    loss = sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)).sum() for o in out.values())
    loss.backward()
    grads = {name: p.grad for name, p in layer.named_parameters()}
    grads.update({f"input {d}": f.grad for d, f in features.items()})
    return {d: o.detach() for d, o in out.items()}, grads


def _assert_same(new, reference):
    assert new.keys() == reference.keys()
    for key in new:
        torch.testing.assert_close(new[key], reference[key], rtol=1e-12, atol=1e-12, msg=lambda m: f"{key}: {m}")


ROUTES = ["direct", "summed", "auto"]  # contraction.py's two orders of work, and the per-layer choice


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("recompute", [False, True], ids=["recompute_off", "recompute_on"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_matches_reference(name, recompute, route, monkeypatch):
    monkeypatch.setattr(contraction, "ROUTE", route)
    make_new, make_reference = LAYERS[name]
    new, reference = make_new(recompute).double(), make_reference(recompute).double()
    reference.load_state_dict(new.state_dict())
    # Several blocks with a ragged last one, in both implementations.
    monkeypatch.setattr(convolution, "EDGES_PER_BLOCK", 60)
    monkeypatch.setattr("reference_engine.EDGES_PER_BLOCK", 60)
    positions = torch.randn(2, 37, 3, dtype=torch.float64)
    graph = EquivariantGraph(positions, knn_graph(positions, 5), 2)
    features = {d: torch.randn(2, 37, c, 2 * d + 1, dtype=torch.float64) for d, c in new.fiber_in}
    out_new, grads_new = _outputs_and_gradients(new, features, graph)
    out_reference, grads_reference = _outputs_and_gradients(reference, features, graph)
    _assert_same(out_new, out_reference)
    _assert_same(grads_new, grads_reference)


def _with_reference_layers(model):
    """The same model with every GSE3Res replaced by the reference's, weights copied."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, GSE3Res):
                si = "att" if type(child.project).__name__ == "AttentiveSelfInteraction" else "1x1"
                twin = ReferenceGSE3Res(child.fiber_in, child.fiber_out, child.fiber_value, heads=child.heads,
                                        self_interaction=si, recompute=child.key_value.recompute)
                twin = twin.to(next(child.parameters()))
                twin.load_state_dict(child.state_dict())
                setattr(module, child_name, twin)
    return model


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("name", ["default", "report-v1"])
def test_model_matches_reference(name, route, monkeypatch):
    monkeypatch.setattr(contraction, "ROUTE", route)
    config = preset(name, num_outputs=5, channels=(4, 4), neighbours=6, pool_neighbours=4, recompute=False)
    if name == "default":
        config = config.replace(head="offset")
    model = SE3Unet(config).double()
    reference = SE3Unet(config).double()
    reference.load_state_dict(model.state_dict())
    reference = _with_reference_layers(reference)
    assert not any(isinstance(m, GSE3Res) for m in reference.modules())
    positions = torch.randn(2, 80, 3, dtype=torch.float64)
    normals = torch.nn.functional.normalize(torch.randn(2, 80, 3, dtype=torch.float64), dim=-1)
    hierarchy = model.hierarchy(positions)
    results = []
    for m in (model, reference):
        logits = m(positions, hierarchy, normals if config.normals else None)
        (logits * torch.linspace(-1, 1, logits.numel(), dtype=logits.dtype).view_as(logits)).sum().backward()
        results.append({"logits": logits.detach(), **{n: p.grad for n, p in m.named_parameters()}})
    _assert_same(*results)
