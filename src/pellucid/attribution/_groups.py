"""Features and groups for the model-agnostic methods.

A *group map* gives every input element the index of the group (player) it belongs to: a
LongTensor shaped ``(1, F)`` (one map shared by all rows) or ``(n, F)`` (one per row, e.g. SLIC
superpixels of each image), where ``F`` is the number of elements in one row, with labels
``0 .. G-1``. Methods attribute to the ``G`` groups and spread each group's value equally over its
members, so values come back shaped like the inputs and sum to the same total.

``groups`` may be given as:

* ``None`` — every element its own feature for tabular and text rows; for images (rows shaped
  ``(C, H, W)``) a regular grid of patches (:func:`grid_groups`, about 8 x 8 patches through all
  channels).
* ``"features"`` — every element its own feature; ``"grid"`` — the default grid; ``"slic"`` —
  SLIC superpixels of each image (:func:`slic_groups`, needs scikit-image).
* a list of lists of feature indices (tabular): each list one group; together they must cover
  every feature exactly once.
* an integer array shaped like one row (shared) or like the inputs (one map per row): any labels,
  renumbered ``0 .. G-1`` in order of first appearance value.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import InputError

__all__ = ["grid_groups", "slic_groups", "resolve_groups", "spread", "is_image"]


def is_image(x: torch.Tensor) -> bool:
    """Rows shaped ``(C, H, W)`` with 1, 3 or 4 channels."""
    return x.dim() == 4 and x.shape[1] in (1, 3, 4)


def grid_groups(row_shape: Sequence[int], patch: int | Sequence[int] | None = None) -> torch.Tensor:
    """A regular grid of ``patch``-sized squares over an image row ``(C, H, W)``, all channels
    together: a LongTensor shaped ``(C, H, W)`` of patch labels, row-major.

    ``patch`` is an int (square), ``(ph, pw)``, or ``None`` for about 8 x 8 patches.
    """
    if len(row_shape) != 3:
        raise InputError(f"grid groups need image rows shaped (C, H, W); got {tuple(row_shape)}")
    c, h, w = row_shape
    if patch is None:
        patch = (max(1, math.ceil(h / 8)), max(1, math.ceil(w / 8)))
    ph, pw = (patch, patch) if isinstance(patch, int) else tuple(patch)
    if ph < 1 or pw < 1:
        raise InputError(f"patch sizes must be positive, got {patch!r}")
    rows = torch.arange(h) // ph
    cols = torch.arange(w) // pw
    labels = rows[:, None] * math.ceil(w / pw) + cols[None, :]
    return labels.expand(c, h, w).clone()


def slic_groups(images: Any, *, n_segments: int = 50, compactness: float = 10.0,
                sigma: float = 1.0) -> torch.Tensor:
    """SLIC superpixels (Achanta et al. 2012, scikit-image) of each image ``(n, C, H, W)``: a
    LongTensor shaped like the images, one label map per image, repeated over channels."""
    try:
        from skimage.segmentation import slic
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise InputError("SLIC superpixels need scikit-image (pip install scikit-image); "
                         "use groups='grid' instead") from err
    x = torch.as_tensor(images).detach().cpu()
    if x.dim() != 4:
        raise InputError(f"slic_groups takes images shaped (n, C, H, W); got {tuple(x.shape)}")
    arr = x.permute(0, 2, 3, 1).double().numpy()
    maps = []
    for img in arr:  # scikit-image segments one image at a time
        channel_axis = -1 if img.shape[-1] > 1 else None
        seg = slic(img if channel_axis is not None else img[..., 0], n_segments=n_segments,
                   compactness=compactness, sigma=sigma, start_label=0,
                   channel_axis=channel_axis)
        maps.append(torch.from_numpy(np.asarray(seg, dtype=np.int64)))
    seg = torch.stack(maps)[:, None].expand(-1, x.shape[1], -1, -1)
    return seg.clone()


def _relabel(labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Labels per row renumbered 0..G_i-1; G is the largest G_i (rows with fewer groups get
    empty groups, which are dummy players and receive zero)."""
    out = torch.empty_like(labels)
    counts = []
    for i in range(labels.shape[0]):  # one unique per row map; n maps at most
        uniq, inv = torch.unique(labels[i], return_inverse=True)
        out[i] = inv
        counts.append(len(uniq))
    return out, max(counts)


def resolve_groups(groups: Any, x: torch.Tensor) -> tuple[torch.Tensor | None, int]:
    """``(group map, G)``: the map shaped ``(1 or n, F)`` on ``x``'s device, or ``None`` when
    every element is its own group (then ``G = F``)."""
    row = tuple(x.shape[1:])
    f = math.prod(row)
    if groups is None:
        groups = "grid" if is_image(x) else "features"
    if isinstance(groups, str):
        if groups == "features":
            return None, f
        if groups == "grid":
            if not is_image(x):
                raise InputError(f"groups='grid' needs image rows (C, H, W); the rows are {row}")
            g = grid_groups(row)
        elif groups == "slic":
            if not is_image(x):
                raise InputError(f"groups='slic' needs image rows (C, H, W); the rows are {row}")
            g = slic_groups(x)
        else:
            raise InputError(f"groups must be None, 'features', 'grid', 'slic', a list of feature "
                             f"index lists or an integer map; got {groups!r}")
        return _as_map(g, x)
    if isinstance(groups, (list, tuple)) and groups and all(
            isinstance(gr, (list, tuple, range, np.ndarray, torch.Tensor)) for gr in groups):
        labels = torch.full((f,), -1, dtype=torch.long)
        for k, members in enumerate(groups):
            idx = torch.as_tensor(np.asarray(members, dtype=np.int64).reshape(-1))
            if len(idx) == 0:
                raise InputError(f"group {k} is empty; every group needs at least one feature")
            if bool(((idx < 0) | (idx >= f)).any()):
                raise InputError(f"group {k} names feature indices outside 0..{f - 1}: "
                                 f"{idx[(idx < 0) | (idx >= f)].tolist()}")
            if bool((labels[idx] >= 0).any()) or len(torch.unique(idx)) != len(idx):
                raise InputError(f"group {k} repeats features already in a group; each feature "
                                 "must belong to exactly one group")
            labels[idx] = k
        missing = torch.nonzero(labels < 0).flatten().tolist()
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
            raise InputError(f"the groups do not cover the features: {len(missing)} feature(s) "
                             f"belong to no group ({shown}); add them to a group or a group of "
                             "their own")
        return labels[None].to(x.device), len(groups)
    return _as_map(groups, x)


def _as_map(groups: Any, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    n, row = x.shape[0], tuple(x.shape[1:])
    try:
        g = groups.detach().cpu() if isinstance(groups, torch.Tensor) else torch.as_tensor(np.asarray(groups))
    except (TypeError, ValueError) as err:
        raise InputError(f"groups could not be read as an integer map: {err}") from err
    if g.is_floating_point() or g.dtype == torch.bool:
        raise InputError("a group map must hold integer labels")
    if tuple(g.shape) == row:
        g = g[None]
    elif tuple(g.shape) != (n,) + row:
        raise InputError(f"a group map must be shaped like one row {row} or like the inputs "
                         f"{(n,) + row}; got {tuple(g.shape)} (the groups do not cover the "
                         "features)")
    g, count = _relabel(g.reshape(g.shape[0], -1).long())
    return g.to(x.device), count


def spread(group_values: torch.Tensor, gmap: torch.Tensor | None, row_shape: Sequence[int]
           ) -> torch.Tensor:
    """Group values ``(n, G)`` spread equally over each group's members: ``(n, *row_shape)``."""
    n, g = group_values.shape
    if gmap is None:
        return group_values.reshape(n, *row_shape)
    gm = gmap.expand(n, -1)
    sizes = torch.zeros(gm.shape[0], g, dtype=group_values.dtype, device=gm.device)
    sizes.scatter_add_(1, gm, torch.ones_like(gm, dtype=group_values.dtype))
    per = group_values / sizes.clamp(min=1)
    return per.gather(1, gm).reshape(n, *row_shape)
