"""Attention rollout and attention flow (Abnar & Zuidema 2020, "Quantifying Attention Flow in
Transformers").

Raw attention of one layer says little about the input: after the first layer every token mixes
all the others. Both methods follow attention through the layers, with the residual connection
modelled as half of each layer's weights: ``Ã_l = ½ A_l + ½ I`` (after fusing the heads by their
mean, max or min), rows renormalised to sum to 1.

- **rollout** ``R = Ã_L · … · Ã_1``: ``R[q, k]`` is the share of the top-layer token ``q`` that
  comes from input token ``k`` if attention mixed information linearly. Cost: ``L`` batched
  ``T×T`` matrix products.
- **flow**: ``F[q, k]`` is the maximum flow from input token ``k`` to top-layer token ``q`` in the
  layered graph whose edges carry capacities ``Ã_l``. Cost: one max-flow per (row, ``q``, ``k``)
  on a graph of ``(L+1)·T`` nodes (``scipy.sparse.csgraph.maximum_flow``, which needs integer
  capacities: they are scaled by 10⁶ and rounded, an error under 10⁻⁵ per edge).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._common import check_choice, progress_bar
from ..errors import InputError
from .attention import attention

__all__ = ["attention_rollout", "attention_flow", "fuse_heads", "HEAD_FUSIONS"]

HEAD_FUSIONS = ("mean", "max", "min")
_SCALE = 10 ** 6


def _attentions(source: Any, inputs: Any, batch_size: int | None, progress: bool | None) -> torch.Tensor:
    if isinstance(source, torch.Tensor) and inputs is None:
        att = source
    else:
        if inputs is None:
            raise InputError("give the attention weights, or a model and its inputs")
        att = attention(source, inputs, batch_size=batch_size, progress=progress)
    if att.dim() == 4:  # one row: (layers, heads, T, T)
        att = att[None]
    if att.dim() != 5 or att.shape[-1] != att.shape[-2]:
        raise InputError(
            f"attention weights must be shaped (n, layers, heads, tokens, tokens) or (layers, heads, "
            f"tokens, tokens); got {tuple(att.shape)}")
    return att


def fuse_heads(att: torch.Tensor, head_fusion: str = "mean") -> torch.Tensor:
    """``(..., heads, T, T) -> (..., T, T)`` by the heads' mean, max or min."""
    check_choice(head_fusion, "head_fusion", HEAD_FUSIONS)
    if head_fusion == "mean":
        return att.mean(dim=-3)
    return att.amax(dim=-3) if head_fusion == "max" else att.amin(dim=-3)


def _residual(att: torch.Tensor, head_fusion: str, residual: bool) -> torch.Tensor:
    """``(n, L, T, T)``: heads fused, ``½A + ½I``, rows renormalised."""
    a = fuse_heads(att.double(), head_fusion)
    if residual:
        a = 0.5 * a + 0.5 * torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    return a / a.sum(dim=-1, keepdim=True).clamp_min(1e-12)


def attention_rollout(
    attentions: Any, inputs: Any = None, *, head_fusion: str = "mean", residual: bool = True,
    batch_size: int | None = None, progress: bool | None = None,
) -> torch.Tensor:
    """Attention rollout ``(n, T, T)``: ``Ã_L ⋯ Ã_1`` with ``Ã_l = norm(½ fuse(A_l) + ½ I)``.

    ``attentions`` is the output of :func:`~pellucid.features.attention` (or one row of it),
    or a model, then called on ``inputs`` (with ``batch_size`` and ``progress``). Row ``q`` of the
    result says which input tokens output token ``q`` draws on (for a classifier reading the
    first token, ``[:, 0]``; for a ViT, ``[:, 0, 1:]`` reshaped to the patch grid).
    """
    a = _residual(_attentions(attentions, inputs, batch_size, progress), head_fusion, residual)
    rollout = a[:, 0]
    for layer in range(1, a.shape[1]):
        rollout = a[:, layer] @ rollout
    return rollout.to(torch.float32)


def attention_flow(
    attentions: Any, inputs: Any = None, *, head_fusion: str = "mean", residual: bool = True,
    output_token: int | None = None, batch_size: int | None = None, progress: bool | None = None,
) -> torch.Tensor:
    """Attention flow ``(n, T, T)`` (or ``(n, T)`` for one ``output_token``): max-flow from input
    token ``k`` to top-layer token ``q`` through the layers, capacities ``Ã_l``.

    Arguments as for :func:`attention_rollout`. Every flow is at most 1 (the rows of ``Ã`` sum
    to 1). Slower than rollout: ``n · T²`` max-flow problems (``n · T`` with ``output_token``),
    with a progress bar over the rows (``progress``).
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_flow

    a = _residual(_attentions(attentions, inputs, batch_size, progress), head_fusion, residual)
    n, layers, t, _ = a.shape
    if output_token is not None and not -t <= output_token < t:
        raise InputError(f"output_token {output_token} is out of range for {t} tokens")
    queries = range(t) if output_token is None else [output_token % t]
    caps = np.rint(a.cpu().numpy() * _SCALE).astype(np.int32)
    # Node (l, j) is l * t + j; an edge from token j of level l to token i of level l + 1 has
    # capacity Ã_{l+1}[i, j] (what i takes from j).
    src_l, dst_i, src_j = np.meshgrid(np.arange(layers), np.arange(t), np.arange(t), indexing="ij")
    rows = (src_l * t + src_j).ravel()
    cols = ((src_l + 1) * t + dst_i).ravel()
    size = (layers + 1) * t
    out = np.zeros((n, len(queries), t))
    for b in progress_bar(range(n), progress, "attention_flow", unit="row"):
        data = caps[b].ravel()  # order (l, i, j), matching the meshgrid
        graph = csr_matrix((data, (rows, cols)), shape=(size, size))
        for qi, q in enumerate(queries):
            for k in range(t):
                out[b, qi, k] = maximum_flow(graph, k, layers * t + q).flow_value / _SCALE
    result = torch.as_tensor(out, dtype=torch.float32, device=a.device)
    return result[:, 0] if output_token is not None else result
