"""Occlusion (Zeiler & Fergus 2014): how much the output drops when a patch is hidden."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from .._common import resolve_baseline
from ..adapters import wrap
from ..errors import InputError
from ..explanation import Explanation
from ..model import gather, select_target
from ..registry import register
from ._coalitions import coalition_values
from ._groups import resolve_groups, spread

__all__ = ["occlusion", "window_masks"]


def _per_dim(value: int | Sequence[int], row: tuple[int, ...], name: str) -> tuple[int, ...]:
    vals = (value,) * len(row) if isinstance(value, int) else tuple(value)
    if len(vals) != len(row) or any(not isinstance(v, int) or v < 1 for v in vals):
        raise InputError(f"{name} must be a positive int or one positive int per dimension of a "
                         f"row {row}; got {value!r}")
    return vals


def window_masks(row: tuple[int, ...], window: Sequence[int], stride: Sequence[int]) -> torch.Tensor:
    """Every window position as a ``(W, *row)`` bool mask, positions as Captum's ``Occlusion``
    places them: ``ceil((L − w) / s) + 1`` starts per dimension at multiples of the stride, the
    last window clipped to the row."""
    masks = torch.ones(1, dtype=torch.bool)
    for length, w, s in zip(row, window, stride):
        if w > length:
            raise InputError(f"the window {tuple(window)} is larger than a row {row}")
        starts = torch.arange(math.ceil((length - w) / s) + 1) * s
        pos = torch.arange(length)
        along = (pos[None, :] >= starts[:, None]) & (pos[None, :] < starts[:, None] + w)  # (c, L)
        a = masks.unsqueeze(1).unsqueeze(-1)  # (W, 1, *dims so far, 1)
        b = along.view(1, len(starts), *([1] * (masks.dim() - 1)), length)
        masks = (a & b).reshape(-1, *a.shape[2:-1], length)
    return masks


@register("occlusion")
def occlusion(
    model: Any, inputs: Any, *, target: Any = None, window: int | Sequence[int] | None = None,
    stride: int | Sequence[int] = 1, baseline: Any = 0, groups: Any = None,
    batch_size: int | None = None, progress: bool | None = None,
) -> Explanation:
    """Occlusion: ``value(e) = mean over windows W ∋ e of f_t(x) − f_t(x with W set to the baseline)``.

    ``window`` is the patch shape, one size per dimension of a row (``(3, 4, 4)`` for RGB
    images) or one int for all; ``stride`` likewise (default 1). Windows are placed as Captum's
    ``Occlusion`` places them, so the values agree with it. ``baseline`` fills the hidden patch:
    a number (default 0), one row, or one row per input.

    With ``groups=`` instead of ``window`` (see :mod:`._groups`), each group is hidden in turn
    (feature ablation) and its drop is spread equally over its members; the group values are in
    ``per_row["group_values"]`` and the group map in ``meta["groups"]``.

    Cost: ``n · W`` model rows for ``W`` windows (or groups), plus ``n``. Reference: Zeiler &
    Fergus 2014, "Visualizing and Understanding Convolutional Networks".
    """
    m = wrap(model, batch_size=batch_size)
    with m.explaining():
        x = m.prepare(inputs)
        n, row = len(x), tuple(x.shape[1:])
        base = resolve_baseline(baseline, x)
        shared = isinstance(baseline, (int, float)) or base.stride(0) == 0
        fill = (base[:1] if shared else base).reshape(1 if shared else n, -1)
        out = m.outputs(x, batch_size=batch_size, progress=False)
        t = select_target(out, target)
        fx = gather(out, t).double()
        ones = torch.ones(1, dtype=torch.float64, device=x.device)
        if window is None:
            if groups is None:
                raise InputError("occlusion needs window= (the patch shape) or groups=")
            gmap, g = resolve_groups(groups, x)
            z = ~torch.eye(g, dtype=torch.bool, device=x.device)
            v = coalition_values(m, x, t, z, fill, ones, gmap=gmap, per_row_fill=not shared,
                                 batch_size=batch_size, progress=progress, desc="occlusion")
            drop = fx[:, None] - v
            values, meta = spread(drop, gmap, row), {"groups": gmap, "n_groups": g}
            per_row, count = {"group_values": drop}, g
        else:
            win = _per_dim(window, row, "window")
            strides = _per_dim(stride, row, "stride")
            masks = window_masks(row, win, strides).to(x.device).reshape(-1, math.prod(row))
            v = coalition_values(m, x, t, ~masks, fill, ones, per_row_fill=not shared,
                                 batch_size=batch_size, progress=progress, desc="occlusion")
            drop = fx[:, None] - v  # (n, W)
            mf = masks.double()
            covered = mf.sum(0)
            values = ((drop @ mf) / covered.clamp(min=1)).reshape(n, *row)
            meta, per_row, count = {"windows": len(masks)}, {}, len(masks)
    dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    return Explanation(
        values=values.to(dtype), inputs=x, target=t, outputs=fx.to(dtype),
        meta={**meta, "forward_rows": n * count + n},
        per_row={k: v.to(dtype) for k, v in per_row.items()},
    )
