"""Figures for :mod:`pellucid.features`: feature-map grids, unit statistics, maximized inputs,
attention heatmaps per head, token strips and patch heatmaps.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from ..errors import PellucidError

__all__ = ["feature_maps", "activation_stats", "maximized", "attention_heads", "token_strip",
           "patch_heatmap"]


def _np(t: Any) -> np.ndarray:
    return t.detach().cpu().double().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, float)


def _grid(k: int, cols: int) -> tuple[int, int]:
    cols = max(1, min(cols, k))
    return math.ceil(k / cols), cols


def feature_maps(
    acts: Any, index: int = 0, *, layer: str | None = None, channels: Sequence[int] | None = None,
    cols: int = 8, cmap: str = "viridis", shared_scale: bool = False, title: str | None = None,
) -> Figure:
    """A grid of the channels of one row's feature maps ``(C, H, W)``.

    ``acts`` is a tensor ``(n, C, H, W)`` or the dict of :func:`pellucid.features.activations`
    (then ``layer`` picks the entry; the only one if omitted). ``channels`` picks which (default:
    all, at most 64). Each map has its own colour scale unless ``shared_scale``.
    """
    if isinstance(acts, dict):
        if layer is None:
            if len(acts) != 1:
                raise PellucidError(f"pick one layer of {sorted(acts)} with layer=")
            layer = next(iter(acts))
        acts = acts[layer]
    a = _np(acts)[index]
    if a.ndim != 3:
        raise PellucidError(f"feature maps are (C, H, W) per row; got shape {a.shape}")
    chans = list(channels) if channels is not None else list(range(min(a.shape[0], 64)))
    rows, cols = _grid(len(chans), cols)
    fig = Figure(figsize=(1.4 * cols, 1.4 * rows + 0.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    lo, hi = (a[chans].min(), a[chans].max()) if shared_scale else (None, None)
    for ax, c in zip(axes, chans):
        ax.imshow(a[c], cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(f"{c}", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
    fig.suptitle(title or (f"{layer}: channels of row {index}" if layer else f"channels of row {index}"),
                 fontsize=10)
    return fig


def activation_stats(stats: Any, *, title: str | None = None) -> Figure:
    """Per layer: bars of dead / saturated / firing fractions, and the pre-activation histograms."""
    layers = list(stats.layers.values())
    fig = Figure(figsize=(max(6.0, 1.1 * len(layers) + 3), 6.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, height_ratios=[1, 1.2])
    x = np.arange(len(layers))
    width = 0.27
    sat = [0.0 if math.isnan(s.saturated_fraction) else s.saturated_fraction for s in layers]
    top.bar(x - width, [s.dead_fraction for s in layers], width, label="dead units", color="#444")
    top.bar(x, sat, width, label="saturated values", color="#d62728")
    top.bar(x + width, [s.positive_fraction for s in layers], width, label="positive values",
            color="#1f77b4")
    top.set_xticks(x, [f"{s.name}\n{s.module}" for s in layers], fontsize=8)
    top.set_ylim(0, 1)
    top.set_ylabel("fraction")
    top.legend(fontsize=8, ncols=3, loc="upper left")
    for s in layers:
        edges = _np(s.bin_edges)
        density = _np(s.histogram) / max(1, s.values)
        bottom.stairs(density, edges, label=f"{s.name} ({s.module}) mean {s.mean:+.2f} sd {s.std:.2f}")
    bottom.set_xlabel("pre-activation (clipped to ±6)")
    bottom.set_ylabel("share of values")
    bottom.legend(fontsize=7)
    fig.suptitle(title or f"activation statistics over {stats.rows} rows", fontsize=10)
    return fig


def maximized(vis: Any, *, cols: int = 8, cmap: str = "gray_r", title: str | None = None) -> Figure:
    """The images :func:`pellucid.features.maximize` found, and the objective's curve."""
    imgs = _np(vis.images)
    n = len(imgs)
    rows, cols = _grid(n, cols)
    fig = Figure(figsize=(max(5.0, 1.6 * cols + 3), 1.8 * rows + 0.6), layout="constrained")
    sub = fig.subfigures(1, 2, width_ratios=[max(1, cols), 2.2])
    axes = np.atleast_1d(sub[0].subplots(rows, cols, squeeze=False)).ravel()
    lo, hi = vis.params.get("value_range", (imgs.min(), imgs.max()))
    for i, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.set_frame_on(False)
            continue
        img = imgs[i]
        if img.shape[0] in (3, 4):
            ax.imshow(np.clip((np.moveaxis(img[:3], 0, -1) - lo) / (hi - lo), 0, 1))
        else:
            ax.imshow(img[0], cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(f"{float(vis.values[i]):.3g}", fontsize=8)
    ax = sub[1].subplots()
    curve = _np(vis.curve)
    ax.plot(np.arange(1, len(curve) + 1), curve, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("objective")
    fig.suptitle(title or vis.objective, fontsize=10)
    return fig


def _attention_row(att: Any, index: int) -> np.ndarray:
    a = _np(att)
    if a.ndim == 5:
        a = a[index]
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        raise PellucidError(
            f"attention must be (n, layers, heads, T, T) or (layers, heads, T, T); got {a.shape}")
    return a


def attention_heads(
    att: Any, tokens: Sequence[str] | None = None, *, layer: int = 0, index: int = 0,
    heads: Sequence[int] | None = None, cols: int = 4, cmap: str = "Blues", title: str | None = None,
) -> Figure:
    """Token-to-token heatmaps of the heads of one layer: query rows, key columns, weights 0–1.

    ``att`` is :func:`pellucid.features.attention`'s output (row ``index``) or one row of it;
    ``tokens`` label the axes (padding beyond ``len(tokens)`` is cut off).
    """
    a = _attention_row(att, index)
    if not -a.shape[0] <= layer < a.shape[0]:
        raise PellucidError(f"layer {layer} is out of range for {a.shape[0]} layers")
    t = len(tokens) if tokens is not None else a.shape[-1]
    picked = list(heads) if heads is not None else list(range(a.shape[1]))
    rows, cols = _grid(len(picked), cols)
    side = max(2.2, 0.28 * t + 1.0)
    fig = Figure(figsize=(side * cols, side * rows + 0.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    mappable = None
    for ax, h in zip(axes, picked):
        mappable = ax.imshow(a[layer, h, :t, :t], cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"head {h}", fontsize=9)
        if tokens is not None:
            ax.set_xticks(range(t), tokens, rotation=90, fontsize=7)
            ax.set_yticks(range(t), tokens, fontsize=7)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax in axes[len(picked):]:
        ax.set_axis_off()
    if mappable is not None:
        fig.colorbar(mappable, ax=axes.tolist(), shrink=0.6, label="attention weight")
    fig.suptitle(title or f"layer {layer % a.shape[0]}: attention of each head (query → key)",
                 fontsize=10)
    return fig


def token_strip(
    tokens: Sequence[str], values: Any, *, sign: str = "all", title: str | None = None,
    clip: float = 100.0,
) -> Figure:
    """Tokens in a row, each boxed in a colour for its value (red up, blue down, white zero).

    ``values`` has one number per token (e.g. ``explanation.values[i].sum(-1)`` of IG through the
    embedding layer, or a rollout row); extra values (padding) are ignored. Drawn by
    :func:`pellucid.plot.text.draw_tokens`, as :func:`pellucid.plot.text` draws explanations.
    """
    from .text import draw_tokens

    v = _np(values).ravel()[: len(tokens)]
    if len(v) < len(tokens):
        raise PellucidError(f"{len(tokens)} tokens but only {len(v)} values")
    return draw_tokens(list(tokens), v, width=max(40, sum(len(t) + 1 for t in tokens)), skip=(),
                       sign=sign, clip=clip, title=title)


def patch_heatmap(
    values: Any, *, grid: tuple[int, int] | None = None, image: Any = None, alpha: float = 0.6,
    cmap: str = "inferno", title: str | None = None,
) -> Figure:
    """Per-patch scores of a vision transformer (e.g. ``rollout[i, 0, 1:]``) as a heatmap on
    the ``grid`` of patches (square by default), stretched over ``image`` (C, H, W) if given."""
    v = _np(values).ravel()
    if grid is None:
        side = int(round(math.sqrt(len(v))))
        if side * side != len(v):
            raise PellucidError(f"{len(v)} patch values are not a square grid; give grid=(rows, cols)")
        grid = (side, side)
    if grid[0] * grid[1] != len(v):
        raise PellucidError(f"grid {grid} does not hold {len(v)} patch values")
    fig = Figure(figsize=(4, 4), layout="constrained")
    ax = fig.subplots()
    heat = v.reshape(grid)
    if image is not None:
        from .image import input_picture

        pic, rgb = input_picture(_np(image))
        ax.imshow(pic, cmap=None if rgb else "gray")
        h, w = pic.shape[:2]
        m = ax.imshow(heat, cmap=cmap, alpha=alpha, extent=(-0.5, w - 0.5, h - 0.5, -0.5))
    else:
        m = ax.imshow(heat, cmap=cmap, interpolation="nearest")
    fig.colorbar(m, ax=ax, shrink=0.7)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or "patch scores", fontsize=10)
    return fig
