"""Localisation: does the attribution fall on the evidence planted in the input?

Each metric compares an attribution with a boolean ground-truth ``mask`` (the pixels of the
object, the informative features, the decisive word): see ``pellucid.zoo.planted`` for data
with such masks. None of them evaluates the model; all are batched over rows.

Shapes. Attributions are pooled to the mask's shape first: with ``values`` shaped
``(n, C, *S)`` (channels first: images, CAMs ``(n, 1, H, W)``) the channels are summed, and a
mask ``(n, C, *S)`` or ``(n, 1, *S)`` is reduced to ``(n, *S)`` by "any channel"; with a mask
``(n, *S)`` and values ``(n, *S, C)`` (channels last: one-hot tokens, embeddings) the last axis
is summed. Equal 2-D or 3-D shapes are compared entry by entry.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .._common import check_positive_int
from ..errors import InputError
from ..explanation import Explanation
from ._metric import metric, without_model
from ._score import Score

__all__ = ["pointing_game", "relevance_mass", "relevance_rank"]


def _tensor(obj: Any, name: str) -> torch.Tensor:
    if isinstance(obj, Explanation):
        obj = obj.values
    if hasattr(obj, "to_numpy"):
        obj = obj.to_numpy()
    t = obj.detach() if isinstance(obj, torch.Tensor) else torch.as_tensor(np.asarray(obj))
    if t.dim() < 2:
        raise InputError(f"{name} must be a batch shaped (n, ...), got shape {tuple(t.shape)}")
    return t


def pooled(explanation: Any, mask: Any, *, abs: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Attributions and mask brought to one shape ``(n, *S)``: ``(a, m)``.

    ``a`` is float64 (``|values|`` before pooling with ``abs=True``), ``m`` is boolean. The
    pooling rules are in the module docstring.
    """
    a = _tensor(explanation, "the attributions")
    m = _tensor(mask, "mask").to(a.device)
    a = a.double().abs() if abs else a.double()
    m = m if m.dtype == torch.bool else m != 0
    if len(a) != len(m):
        raise InputError(f"{len(a)} attribution rows but {len(m)} mask rows")
    if a.dim() == m.dim():
        if a.shape == m.shape and a.dim() < 4:
            return a, m
        if a.dim() >= 3 and a.shape[2:] == m.shape[2:] and (
            a.shape[1] == m.shape[1] or 1 in (a.shape[1], m.shape[1])
        ):
            return a.sum(dim=1), m.any(dim=1)
    elif a.dim() == m.dim() + 1:
        if a.shape[2:] == m.shape[1:]:
            return a.sum(dim=1), m
        if a.shape[1:-1] == m.shape[1:]:
            return a.sum(dim=-1), m
    raise InputError(_mismatch(a, m))


def _mismatch(a: torch.Tensor, m: torch.Tensor) -> str:
    return (
        f"attributions shaped {tuple(a.shape)} do not match a mask shaped {tuple(m.shape)}: give "
        "a mask shaped like the inputs, like one channel (n, 1, *spatial), or (n, *spatial); a CAM "
        "at the layer's resolution must be upsampled first (grad_cam(..., upsample=True))"
    )


def _dilate(m: torch.Tensor, shape: tuple[int, ...], tolerance: int) -> torch.Tensor:
    """``m`` (n, F) grown by every point within Euclidean distance ``tolerance`` (in ``shape``)."""
    if tolerance == 0:
        return m
    dims = len(shape)
    if dims > 3:
        raise InputError(f"tolerance needs at most 3 spatial dimensions, got {dims}")
    offsets = torch.arange(-tolerance, tolerance + 1, dtype=torch.float32, device=m.device)
    grids = torch.meshgrid(*([offsets] * dims), indexing="ij")
    ball = (sum(g * g for g in grids) <= tolerance * tolerance).float()
    conv = (F.conv1d, F.conv2d, F.conv3d)[dims - 1]
    grown = conv(m.float().view(len(m), 1, *shape), ball[None, None], padding=tolerance)
    return (grown > 0.5).reshape(len(m), -1)


def _flat(a: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return a.reshape(len(a), -1), m.reshape(len(m), -1)


def _nan_if_empty(values: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return torch.where(m.any(dim=1), values, torch.full_like(values, float("nan")))


@metric("pointing_game", higher_is_better=True, needs=("mask",), adapt=without_model)
def pointing_game(
    explanation: Any, mask: Any, *, tolerance: int = 0, abs: bool = False
) -> Score:
    """Pointing game: 1 if the attribution's maximum lies in the mask, else 0, per row.

    ``hit = 1[argmax_p a_p ∈ dilate(mask, tolerance)]`` with ``a`` the attribution summed over
    channels (``|values|`` first with ``abs=True``) and the mask grown by every point within
    Euclidean distance ``tolerance`` (Zhang et al. use 15 pixels on 224x224 images). Tied maxima
    split the point: the score is the share of the tied maxima inside the mask, the expected hit
    of a random tie-break (so a constant map scores the mask's area, not a sure hit). A row with
    an empty mask scores NaN. ``meta["chance"]`` is the mean share of the (grown) mask in the
    rows: the expected score of a random map. Cost: no model evaluations.

    Reference: Zhang et al. 2018, "Top-down Neural Attention by Excitation Backprop" (IJCV).

    >>> import torch
    >>> a = torch.tensor([[[[0., 1.], [3., 2.]]]]); m = torch.tensor([[[[0, 0], [1, 0]]]])
    >>> pointing_game(a, m).values.tolist()
    [1.0]
    """
    check_positive_int(tolerance, "tolerance", minimum=0)
    a, m = pooled(explanation, mask, abs=abs)
    m = _dilate(m.reshape(len(m), -1), tuple(m.shape[1:]), tolerance)
    a = a.reshape(len(a), -1)
    top = a == a.max(dim=1, keepdim=True).values
    hits = (top & m).sum(dim=1).double() / top.sum(dim=1).clamp_min(1)
    return Score(
        "pointing_game", _nan_if_empty(hits, m), higher_is_better=True,
        meta={"tolerance": tolerance, "abs": abs, "chance": _chance(m)},
    )


@metric("relevance_mass", higher_is_better=True, needs=("mask",), adapt=without_model)
def relevance_mass(explanation: Any, mask: Any, *, abs: bool = False) -> Score:
    """Relevance mass accuracy: the share of the positive relevance that lies inside the mask.

    ``R_in / R_total = Σ_{p ∈ mask} max(a_p, 0) / Σ_p max(a_p, 0)``, with ``a`` the attribution
    summed over channels (of ``|values|`` with ``abs=True``). NaN for a row without positive
    relevance or with an empty mask. A random map scores about the mask's area
    (``meta["chance"]``). Cost: no model evaluations.

    Reference: Arras, Osman & Samek 2022, "CLEVR-XAI: A benchmark dataset for the ground truth
    evaluation of neural network explanations" (Information Fusion).
    """
    a, m = _flat(*pooled(explanation, mask, abs=abs))
    pos = a.clamp_min(0)
    total = pos.sum(dim=1)
    mass = (pos * m).sum(dim=1) / total
    mass = torch.where(total > 0, mass, torch.full_like(mass, float("nan")))
    return Score("relevance_mass", _nan_if_empty(mass, m), higher_is_better=True,
                 meta={"abs": abs, "chance": _chance(m)})


@metric("relevance_rank", higher_is_better=True, needs=("mask",), adapt=without_model)
def relevance_rank(explanation: Any, mask: Any, *, abs: bool = False) -> Score:
    """Relevance rank accuracy: the share of the ``K = |mask|`` highest attributions in the mask.

    ``|top_K(a) ∩ mask| / K`` per row, with ``a`` the attribution summed over channels (of
    ``|values|`` with ``abs=True``) and ``K`` the row's mask size. Ties at the K-th value are
    split evenly (the expected score of a random tie-break), so the score does not depend on
    the order of the features. NaN for an empty mask. Cost: one sort per row, no model
    evaluations.

    Reference: Arras, Osman & Samek 2022, "CLEVR-XAI" (Information Fusion).
    """
    a, m = _flat(*pooled(explanation, mask, abs=abs))
    k = m.sum(dim=1)
    desc = a.sort(dim=1, descending=True).values
    kth = desc.gather(1, (k - 1).clamp_min(0)[:, None])
    above, tied = a > kth, a == kth
    slots = (k - above.sum(dim=1)).double()
    inside = (above & m).sum(dim=1) + (tied & m).sum(dim=1) * slots / tied.sum(dim=1).clamp_min(1)
    rank = inside / k.clamp_min(1)
    return Score("relevance_rank", _nan_if_empty(rank, m), higher_is_better=True,
                 meta={"abs": abs, "chance": _chance(m)})


def _chance(m: torch.Tensor) -> float:
    share = m.double().mean(dim=1)
    return float(torch.nanmean(torch.where(m.any(dim=1), share, float("nan"))))
