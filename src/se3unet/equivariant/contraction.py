"""Contracting edge terms with a layer's radial weights: two routes to the same numbers.

For one output degree of a layer and a block of n points with k neighbours each:

    T[n, k, M, Q]   the neighbours' features contracted with the edge basis (M = 2 l_out + 1
                    components; Q terms, ordered (l_in, J, c_in))
    h[n, k, R]      the radial network's last hidden layer with a 1 appended (R = hidden + 1)
    W[C, Q, R]      the layer's radial output weights, bias in the last column
    message[n, k, c, m] = sum_{q, r} W[c, q, r] h[n, k, r] T[n, k, m, q]

Layers never need the messages themselves, only sums over the k neighbours: weighted by one
number per edge and group of channels (a TFN mean, attention's values) or inner products with a
per-point query (attention's logits). Two ways to compute them:

- direct: build every edge's radial weights h W (E x C x Q numbers), contract them with T,
  then sum. About 2 k C Q (R + M) multiply-adds per point.
- summed: contract over the neighbours before the weights. For a weighted sum,
  S[n, m, q, r] = sum_k w[n, k] h[n, k, r] T[n, k, m, q], then one large matrix product of S
  with W; for logits, P[n, m, q, r] = sum_c query[n, c, m] W[c, q, r] (one large product) and
  logit[n, k] = sum_r h[n, k, r] sum_{m, q} T[n, k, m, q] P[n, m, q, r]. About
  2 R M Q (k H + C) multiply-adds per point, H = groups, and no per-edge C x Q tensor.

The summed route wins when there are many channels per output component (C large against H M),
the direct one when M is large (degree 2 and up) and channels are few. Both give the same
function; ``SE3UNET_EDGE_ROUTE`` = direct | summed forces one (for measurements), the default
picks the cheaper by the counts above (docs/engine.md).
"""

from __future__ import annotations

import os

import torch

ROUTE = os.environ.get("SE3UNET_EDGE_ROUTE", "auto")
if ROUTE not in ("auto", "direct", "summed"):
    raise ValueError(f"SE3UNET_EDGE_ROUTE must be auto, direct or summed, got {ROUTE!r}")


def summed_route(channels: int, groups: int, components: int, k: int, radial: int) -> bool:
    """Whether the summed route does less work than the direct one (module docstring)."""
    if ROUTE != "auto":
        return ROUTE == "summed"
    direct = k * channels * (radial + components)
    summed = radial * components * (k * groups + channels)
    return summed < direct


def route_width(channels: int, groups: int, components: int, terms: int, k: int, radial: int) -> int:
    """Floats per edge of the widest tensors the chosen route makes (sizes the blocks of edges):
    the direct route's radial weights; the summed route's per-point sums, one per group for the
    keys and one for the values, counted together (sized by one alone, the blocks fragmented
    glibc's heap: a recomputed step's peak memory tripled, docs/engine.md)."""
    if summed_route(channels, groups, components, k, radial):
        return max(components * terms, -(-2 * groups * radial * components * terms // k))
    return channels * terms


def group_weights(weights: torch.Tensor, groups: int) -> list:
    """[C, Q, R] -> one [C / G, Q R] matrix per group of consecutive channels."""
    return list(weights.flatten(1).chunk(groups, dim=0))


def messages(terms: torch.Tensor, hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Every edge's message [n, k, C, M] (the direct route)."""
    n, k, m, q = terms.shape
    c, _, r = weights.shape
    radial = (hidden.reshape(n * k, r) @ weights.reshape(c * q, r).t()).view(n * k, c, q)
    t = terms.view(n * k, m, q)
    if m == 1:  # matrix-vector: a broadcast beats a batch of 1-column matmuls, backward too
        out = (radial * t).sum(-1, keepdim=True)
    else:
        out = torch.bmm(radial, t.transpose(1, 2))
    return out.view(n, k, c, m)


def weighted_sum(terms: torch.Tensor, hidden: torch.Tensor, weights: torch.Tensor,
                 edge_weights: torch.Tensor) -> torch.Tensor:
    """sum_k edge_weights[n, k, g] message[n, k, c, m] -> [n, C, M]; the C channels form
    G = edge_weights.shape[-1] equal consecutive groups, group g weighed by edge_weights[..., g]."""
    n, k, m, q = terms.shape
    c, _, r = weights.shape
    groups = edge_weights.shape[-1]
    per_group = c // groups
    if not summed_route(c, groups, m, k, r):
        msg = messages(terms, hidden, weights).view(n, k, groups, per_group, m)
        return torch.einsum("nkg,nkgcm->ngcm", edge_weights, msg).reshape(n, c, m)
    flat_terms = terms.view(n, k, m * q).transpose(1, 2)  # [n, M Q, k]
    parts = []
    for g, w in enumerate(group_weights(weights, groups)):
        summed = torch.bmm(flat_terms, edge_weights[:, :, g:g + 1] * hidden)  # [n, M Q, R]
        parts.append((summed.view(n * m, q * r) @ w.t()).view(n, m, per_group))
    out = torch.cat(parts, dim=2) if groups > 1 else parts[0]
    return out.transpose(1, 2)


def inner_products(terms: torch.Tensor, hidden: torch.Tensor, weights: torch.Tensor,
                   query: torch.Tensor, groups: int) -> torch.Tensor:
    """sum over each group's channels and components of query[n, c, m] message[n, k, c, m]
    -> [n, k, G]."""
    n, k, m, q = terms.shape
    c, _, r = weights.shape
    per_group = c // groups
    if not summed_route(c, groups, m, k, r):
        msg = messages(terms, hidden, weights).view(n, k, groups, per_group, m)
        return torch.einsum("ngcm,nkgcm->nkg", query.view(n, groups, per_group, m), msg)
    flat_terms = terms.view(n, k, m * q)
    grouped_query = query.view(n, groups, per_group, m)
    logits = []
    for g, w in enumerate(group_weights(weights, groups)):
        projected = (grouped_query[:, g].transpose(1, 2).reshape(n * m, per_group) @ w).view(n, m * q, r)
        logits.append((torch.bmm(flat_terms, projected) * hidden).sum(-1))  # [n, k]
    return torch.stack(logits, dim=-1)
