"""The engine under every model-agnostic method: coalitions in, expected outputs out.

A coalition matrix ``Z`` (``m x G`` booleans over the ``G`` groups) says, for each of ``m``
coalitions, which groups keep the row's own values; the others are filled from a background row.
:func:`coalition_values` evaluates, for every input row ``i`` and coalition ``j``,

    v_i(z_j) = sum_b w_b f_t(where(z_j[group], x_i, background_b))

building the ``n·m·B`` masked rows chunk by chunk (never more than ``batch_size`` rows at once) with
one batched ``torch.where`` each, running one forward pass per chunk and averaging over the
background by an ``index_add``. Occlusion, LIME, exact/Kernel/permutation Shapley all reduce to
choosing ``Z`` (and the background) and post-processing ``v``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..errors import BaselineError
from ..model import Model

__all__ = ["resolve_background", "coalition_values", "expected_output"]


def resolve_background(
    background: Any, x: torch.Tensor, *, max_rows: int | None = None, seed: int = 0,
    name: str = "background", required: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Background rows flattened to ``(B, F)`` in ``x``'s dtype, and their weights ``(B,)``.

    ``background`` is a number (one row filled with it), one row shaped like ``x[0]``, or rows
    shaped ``(B, *x.shape[1:])``. With more than ``max_rows`` rows it is summarised by k-means
    (scikit-learn, seeded) into ``max_rows`` centres weighted by their cluster sizes, as shap's
    ``kmeans`` does; integer rows (token ids) are subsampled instead.
    """
    row = tuple(x.shape[1:])
    f = math.prod(row)
    if background is None:
        if required:
            raise BaselineError(f"this method needs background=: rows (B, {', '.join(map(str, row))}) "
                                "whose values stand in for absent features, or a number")
        background = 0
    if isinstance(background, (int, float)) and not isinstance(background, bool):
        bg = torch.full((1, f), background, dtype=x.dtype, device=x.device)
        return bg, torch.ones(1, dtype=torch.float64, device=x.device)
    if hasattr(background, "to_numpy"):
        background = background.to_numpy()
    try:
        b = background.detach() if isinstance(background, torch.Tensor) else torch.as_tensor(np.asarray(background))
    except (TypeError, ValueError, RuntimeError) as err:
        raise BaselineError(f"the {name} could not be read as numbers: {err}") from err
    if b.dtype == torch.bool or b.is_complex():
        raise BaselineError(f"the {name} must be numeric")
    b = b.to(device=x.device, dtype=x.dtype)
    if tuple(b.shape) == row:
        b = b[None]
    if b.dim() != len(row) + 1 or tuple(b.shape[1:]) != row:
        if b.dim() == 2 and len(row) == 1:
            raise BaselineError(f"the {name} rows have {b.shape[1]} features but the inputs have "
                                f"{row[0]}; give background rows with the same columns as the inputs")
        raise BaselineError(f"the {name} must be rows shaped (B, {', '.join(map(str, row))}) like the "
                            f"inputs, one such row, or a number; got shape {tuple(b.shape)}")
    if len(b) == 0:
        raise BaselineError(f"the {name} has no rows")
    if b.is_floating_point() and not bool(torch.isfinite(b).all()):
        raise BaselineError(f"the {name} contains NaN or inf values")
    b = b.reshape(len(b), f)
    w = torch.full((len(b),), 1.0 / len(b), dtype=torch.float64, device=x.device)
    if max_rows is not None and len(b) > max_rows:
        b, w = _summarise(b, max_rows, seed)
    return b, w


def _summarise(b: torch.Tensor, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """k-means centres of ``b`` weighted by cluster size (a seeded subsample for integer rows)."""
    if not b.is_floating_point():
        g = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(b), generator=g)[:k].to(b.device)
        return b[pick], torch.full((k,), 1.0 / k, dtype=torch.float64, device=b.device)
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=3, random_state=seed % (2**31)).fit(b.detach().cpu().double().numpy())
    counts = np.bincount(km.labels_, minlength=k).astype(np.float64)
    keep = counts > 0
    centres = torch.as_tensor(km.cluster_centers_[keep], dtype=b.dtype, device=b.device)
    w = torch.as_tensor(counts[keep] / counts.sum(), dtype=torch.float64, device=b.device)
    return centres, w


def expected_output(m: Model, fill: torch.Tensor, weights: torch.Tensor, row_shape, target: torch.Tensor,
                    *, batch_size: int | None) -> torch.Tensor:
    """``sum_b w_b f_t(background_b)`` for every row's target: ``(n,)`` in float64.

    With inputs carried along (an attention mask) the background rows are run with each row's own
    carried inputs, so the value is per row: the empty coalition of :func:`coalition_values`.
    """
    if m.carried is not None:
        n = len(target)
        empty = torch.zeros(1, math.prod(row_shape), dtype=torch.bool, device=fill.device)
        x = fill[:1].expand(n, -1).reshape(n, *row_shape)  # never read: no member is present
        return coalition_values(m, x, target, empty, fill, weights, batch_size=batch_size)[:, 0]
    out = m.outputs(fill.reshape(len(fill), *row_shape), progress=False,
                    batch_size=m.batch_rows(row_shape, forward_only=True, batch_size=batch_size))
    mean = (weights[:, None] * out.double()).sum(0)  # (k,)
    return mean[target]


def coalition_values(
    m: Model, x: torch.Tensor, target: torch.Tensor, z: torch.Tensor, fill: torch.Tensor,
    weights: torch.Tensor, *, gmap: torch.Tensor | None = None, per_row_fill: bool = False,
    batch_size: int | None = None, progress: bool | None = None, desc: str = "coalitions",
) -> torch.Tensor:
    """``v[i, j] = sum_b w_b f_{t_i}(where(z_j, x_i, fill_b))`` as an ``(n, m)`` float64 tensor.

    ``z`` is ``(m, G)`` bool (or ``(n, m, G)``, one set per row); ``gmap`` the group map
    ``(1 or n, F)`` (``None``: groups are the elements, ``G = F``). ``fill`` is ``(B, F)`` shared
    by all rows with weights ``(B,)``, or with ``per_row_fill`` one fill row per input row
    ``(n, F)`` (``B = 1``). Costs ``n·m·B`` model rows.
    """
    n = x.shape[0]
    row = tuple(x.shape[1:])
    xf = x.reshape(n, -1)
    mz = z.shape[-2]
    nb = 1 if per_row_fill else fill.shape[0]
    fill = fill.to(xf.dtype)
    wt = weights.to(device=x.device, dtype=torch.float64)
    vals = torch.zeros(n * mz, dtype=torch.float64, device=x.device)
    total = n * mz * nb
    if total == 0:
        return vals.view(n, mz)
    shared_map = gmap is not None and gmap.shape[0] == 1

    def members(i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        member = z[i, j] if z.dim() == 3 else z[j]
        if gmap is not None:
            member = member.gather(1, gmap.expand(len(i), -1) if shared_map else gmap[i])
        return member

    size = m.batch_rows(row, forward_only=True, batch_size=batch_size)
    if nb <= size:
        # Whole (row, coalition) blocks of B background rows per chunk: one broadcast where()
        # builds the chunk, and the background average is a matrix-vector product.
        for s, _ in m.chunks(n * mz, row, batch_size=size // nb, progress=progress, desc=desc):
            ij = torch.arange(s.start, s.stop, device=x.device)
            i = ij // mz
            member = members(i, ij - i * mz)
            if per_row_fill:
                pts = torch.where(member, xf[i], fill[i])
            else:
                pts = torch.where(member[:, None, :], xf[i][:, None, :], fill[None])
            c = len(ij)
            out = m.forward(pts.reshape(c * nb, *row), i.repeat_interleave(nb))
            sel = out.view(c, nb, -1).gather(2, target[i].view(c, 1, 1).expand(c, nb, 1))
            vals[s] = sel.view(c, nb).double() @ wt
        return vals.view(n, mz)
    for s, _ in m.chunks(total, row, batch_size=size, progress=progress, desc=desc):
        flat = torch.arange(s.start, s.stop, device=x.device)
        ij = flat // nb
        i = ij // mz
        b = flat - ij * nb
        pts = torch.where(members(i, ij - i * mz), xf[i], fill[b])
        out = m.forward(pts.view(len(flat), *row), i)
        sel = out.gather(1, target[i][:, None]).squeeze(1).double() * wt[b]
        vals.index_add_(0, ij, sel)
    return vals.view(n, mz)
