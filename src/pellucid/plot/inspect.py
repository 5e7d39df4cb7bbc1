"""Figures for :mod:`pellucid.inspect`: parameter histograms, a monitor's time strip, and any
figure as pixels (what TensorBoard stores).

Every function takes the result object and returns a :class:`matplotlib.figure.Figure` built
without pyplot (:func:`figure_pixels` returns an array).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .image import draw
from .tabular import draw_bars

__all__ = ["weight_histograms", "monitor_strip", "figure_pixels"]


def weight_histograms(weights: Any, *, columns: int = 4, log: bool = False) -> Figure:
    """A grid of histograms of :func:`pellucid.inspect.weights`, one per tensor, with mean ± std
    in each title; ``log`` puts the counts on a log scale."""
    n = len(weights.tensors)
    cols = max(1, min(columns, n))
    rows = max(1, math.ceil(n / cols))
    fig = Figure(figsize=(3.2 * cols, 2.3 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, t in zip(axes.flat, weights.tensors):
        ax.bar(t.edges[:-1], t.counts, width=np.diff(t.edges), align="edge", color="#4393c3",
               edgecolor="none", log=log)
        ax.axvline(0.0, color="0.3", linewidth=0.7)
        ax.set_title(f"{t.name}\n{t.mean:+.2g} ± {t.std:.2g}", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle(f"{weights.model}: parameter histograms", fontsize=10)
    return fig


def monitor_strip(monitor: Any, method: str | None = None, *, rows: int = 4) -> Figure:
    """A :class:`pellucid.inspect.Monitor`'s maps of ``method`` (default: its first) as a time
    strip: one row per probe input (at most ``rows``), one column per recorded step."""
    by_step = monitor.explanations(method)
    method = method or monitor.methods[0]
    n = min(rows, len(monitor.inputs))
    fig = Figure(figsize=(1.6 * len(by_step) + 0.5, 1.6 * n + 0.5), layout="constrained")
    axes = fig.subplots(n, len(by_step), squeeze=False)
    for j, (step, explanation) in enumerate(by_step.items()):
        for i in range(n):
            title = f"step {step}" if i == 0 else None
            if explanation.kind == "image":
                draw(axes[i, j], explanation, i, title=title)
            else:
                draw_bars(axes[i, j], explanation, i, top=8, title=title)
    fig.suptitle(f"{method} over training", fontsize=10)
    return fig


def figure_pixels(fig: Figure) -> np.ndarray:
    """``fig`` rendered to an ``(H, W, 3)`` uint8 array (Agg canvas, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
