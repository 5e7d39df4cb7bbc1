"""Figures for :mod:`pellucid.evaluate`: a comparison's methods × metrics grid and a score's
curves (or per-row values).

Every function takes the result object and returns a :class:`matplotlib.figure.Figure` built
without pyplot.
"""
from __future__ import annotations

import math
import textwrap
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

__all__ = ["comparison", "score"]


def _fmt(value: float, digits: int) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.{digits}g}"


def comparison(result: Any, *, cmap: str = "RdYlGn", digits: int = 3,
               cell: tuple[float, float] = (1.6, 0.55)) -> Figure:
    """Methods × metrics grid of a :class:`~pellucid.evaluate.Comparison`, the mean scores
    written in the cells.

    Cells are coloured by rank within their metric (``cmap``'s top end, green by default, is
    always the best method, whether the metric rises or falls), so colours compare across
    columns while the numbers keep their own units.
    """
    ranks = result.ranks()
    n, k = ranks.shape
    fig = Figure(figsize=(1.8 + cell[0] * k, 0.9 + cell[1] * n), layout="constrained")
    ax = fig.subplots()
    colormap = matplotlib.colormaps[cmap].with_extremes(bad="#dddddd")  # NaN: grey
    # the ends of the map are too saturated to read text on: leave a margin either side
    image = ax.imshow(np.ma.masked_invalid(ranks), cmap=colormap, vmin=-0.15, vmax=1.15,
                      aspect="auto")
    mapped = image.cmap(image.norm(np.nan_to_num(ranks, nan=0.5)))
    for i, method in enumerate(result.methods):
        for j, metric in enumerate(result.metrics):
            r, g, b, _ = mapped[i, j]
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
            ax.text(j, i, _fmt(result.means[method][metric], digits), ha="center", va="center",
                    fontsize=10, color="white" if dark else "black",
                    fontweight="bold" if ranks[i, j] == 1.0 else "normal")
    headers = result.headers()
    ax.set_xticks(range(k), [textwrap.fill(headers[m].replace("_", " "), 16) for m in result.metrics])
    ax.set_yticks(range(n), [m.replace("_", " ") for m in result.methods])
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    ax.set_xticks(np.arange(-0.5, k), minor=True)
    ax.set_yticks(np.arange(-0.5, n), minor=True)
    ax.grid(which="minor", color="white", linewidth=2)
    ax.tick_params(which="minor", length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_xlabel("colour: rank within each metric (green = best) · ↑ higher / ↓ lower is better",
                  fontsize=8, color="#555555")
    return fig


def score(result: Any, *, rows: int = 50, figsize: tuple[float, float] = (5.0, 3.2)) -> Figure:
    """A :class:`~pellucid.evaluate.Score`: its curves where it has them (the first ``rows``
    rows thin, the mean over all rows thick; x is the removed fraction for deletion-like curves,
    the randomised layer for randomisation), else a histogram of the per-row values."""
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    arrow = "↑" if result.higher_is_better else "↓"
    ax.set_title(f"{result.name.replace('_', ' ')} {arrow}  (mean {_fmt(result.mean, 4)})", fontsize=10)
    if result.curves is None:
        values = result.values.detach().cpu().double().numpy()
        ax.hist(values[np.isfinite(values)], bins="auto", color="#4393c3")
        ax.set_xlabel("score per row")
        ax.set_ylabel("rows")
        return fig
    curves = result.curves.detach().cpu().double().numpy()
    layers = result.meta.get("layers")
    x = np.asarray(result.meta.get("fractions", np.arange(curves.shape[1])), dtype=float)
    if layers is not None and len(layers) == curves.shape[1]:
        x = np.arange(1, curves.shape[1] + 1)
        ax.set_xticks(x, [textwrap.shorten(str(name), 14) for name in layers], rotation=45,
                      ha="right", fontsize=7)
        ax.set_xlabel("layer randomised" if result.meta.get("mode") == "independent"
                      else "randomised down to layer")
    else:
        ax.set_xlabel("fraction removed" if "fractions" in result.meta else "step")
    ax.plot(x, curves[:rows].T, color="#92c5de", linewidth=0.6, alpha=0.7)
    ax.plot(x, np.nanmean(curves, axis=0), color="#b2182b", linewidth=2, label="mean")
    ax.legend(fontsize=8, frameon=False)
    return fig
