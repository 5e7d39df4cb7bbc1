"""What a counterfactual may change, and what a change costs.

The user's constraints of :func:`pellucid.probe.counterfactual`, checked and turned into tensors:
immutable features, per-feature ``ranges``, ``categorical`` features with their allowed values,
and the per-feature ``scale`` of the distance ``dist(x', x) = ||(x' - x) / scale||`` (L1 or L2).
Both searches (:mod:`._wachter` and :mod:`._growing_spheres`) use them.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..errors import InputError

__all__ = ["immutable_features", "feature_ranges", "categorical_values", "feature_scale", "snap",
           "distance"]


def _feature(f: Any, d: int, where: str) -> int:
    """Feature ``f`` as an index in ``0..d-1`` (negative counts from the end)."""
    if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or not -d <= f < d:
        raise InputError(f"unknown feature {f!r} in {where}: features are indices 0 to {d - 1}")
    return int(f) % d


def immutable_features(immutable: Any, d: int) -> list[int]:
    """The sorted, unique indices of the features that never change."""
    if immutable is None:
        return []
    if isinstance(immutable, (int, np.integer)) and not isinstance(immutable, bool):
        immutable = [immutable]
    out = []
    for f in immutable:
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or not -d <= f < d:
            raise InputError(f"unknown immutable feature {f!r}: features are indices 0 to {d - 1}")
        out.append(int(f) % d)
    return sorted(set(out))


def _as_tensor(values: Any, like: torch.Tensor) -> torch.Tensor:
    """A user's numbers (tensor, array or sequence) as a float tensor on ``like``'s device."""
    arr = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype=float)
    return torch.as_tensor(arr).to(device=like.device, dtype=like.dtype)


def feature_ranges(ranges: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(low, high)`` per feature from ``{feature: (low, high)}`` or a ``(d, 2)`` array; ``None``
    bounds nothing. Every original value must lie inside."""
    if ranges is None:
        return None
    d = x.shape[1]
    lo = torch.full((d,), -math.inf, dtype=x.dtype, device=x.device)
    hi = torch.full((d,), math.inf, dtype=x.dtype, device=x.device)
    if isinstance(ranges, dict):
        for f, bounds in ranges.items():
            j = _feature(f, d, "ranges")
            try:
                a, b = bounds
                a = -math.inf if a is None else float(a)
                b = math.inf if b is None else float(b)
            except (TypeError, ValueError) as err:
                raise InputError(f"ranges[{f}] must be a pair (low, high), got {bounds!r}") from err
            lo[j], hi[j] = a, b
    else:
        r = _as_tensor(ranges, x)
        if r.shape != (d, 2):
            raise InputError(f"ranges must be a dict {{feature: (low, high)}} or shaped ({d}, 2); "
                             f"got shape {tuple(r.shape)}")
        lo, hi = r[:, 0].clone(), r[:, 1].clone()
    if bool(torch.isnan(lo).any() | torch.isnan(hi).any()) or bool((lo > hi).any()):
        raise InputError("ranges must have low <= high for every feature")
    outside = (x < lo) | (x > hi)
    if bool(outside.any()):
        i, j = torch.nonzero(outside)[0].tolist()
        raise InputError(
            f"ranges exclude the original value of feature {j} in row {i} ({float(x[i, j]):g} not "
            f"in [{float(lo[j]):g}, {float(hi[j]):g}]); widen the range to contain the inputs"
        )
    return lo, hi


def categorical_values(categorical: Any, x: torch.Tensor, frozen: list[int],
                       bounds: tuple[torch.Tensor, torch.Tensor] | None) -> list[tuple[int, torch.Tensor]]:
    """``[(feature, sorted allowed values)]`` for the mutable categorical features."""
    if categorical is None:
        return []
    if not isinstance(categorical, dict):
        raise InputError(f"categorical must be a dict {{feature: allowed values}}, got {categorical!r}")
    d = x.shape[1]
    out = {}
    for f, values in categorical.items():
        j = _feature(f, d, "categorical")
        try:
            v = _as_tensor(values if isinstance(values, torch.Tensor) else list(values), x).ravel()
        except (TypeError, ValueError) as err:
            raise InputError(f"categorical[{f}] must be a sequence of numbers, got {values!r}") from err
        if v.numel() == 0:
            raise InputError(f"categorical[{f}] is empty: give at least one allowed value")
        if not bool(torch.isfinite(v).all()):
            raise InputError(f"categorical[{f}] must hold finite values, got {values!r}")
        v = torch.unique(v)
        ok = (x[:, j, None] == v).any(1)
        if not bool(ok.all()):
            i = int(torch.nonzero(~ok)[0])
            raise InputError(
                f"categorical[{f}] does not allow the original value of feature {j} in row {i} "
                f"({float(x[i, j]):g}); allowed: {v.tolist()}"
            )
        if bounds is not None:  # only values inside ranges; the originals are, so none is empty
            v = v[(v >= bounds[0][j]) & (v <= bounds[1][j])]
        if j not in frozen:  # immutable wins
            out[j] = v
    return sorted(out.items())


def feature_scale(scale: Any, x: torch.Tensor) -> torch.Tensor:
    """The per-feature divisor of the distance: ``scale`` as given, else the std of each feature
    over the rows (1 for a constant feature, and for all features of a single row)."""
    d = x.shape[1]
    if scale is not None:
        s = _as_tensor(scale, x)
        s = s.expand(d) if s.dim() == 0 else s
        if s.shape != (d,) or not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
            raise InputError(f"scale must be positive and finite, one per feature ({d}); got {scale!r}")
        return s
    if len(x) < 2:
        return torch.ones(d, dtype=x.dtype, device=x.device)
    s = x.std(dim=0)
    return torch.where(s > 1e-12, s, torch.ones_like(s))


def snap(c: torch.Tensor, cats: list[tuple[int, torch.Tensor]]) -> torch.Tensor:
    """``c`` (..., d) with each categorical feature moved to its nearest allowed value."""
    if not cats:
        return c
    c = c.clone()
    for j, v in cats:
        idx = (c[..., j, None] - v).abs().argmin(-1)
        c[..., j] = v[idx]
    return c


def distance(delta: torch.Tensor, scale: torch.Tensor, kind: str) -> torch.Tensor:
    """``||delta / scale||`` over the last dimension, L1 (``kind="l1"``) or L2."""
    z = delta / scale
    if kind == "l1":
        return z.abs().sum(-1)
    return (z.pow(2).sum(-1) + 1e-12).sqrt()
