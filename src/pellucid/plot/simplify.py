"""Figures for :mod:`pellucid.simplify`: what pruning removed, training curves, quantized sizes,
global importance, the rules of a surrogate tree and the tree itself.

Every function takes the result object and returns a :class:`matplotlib.figure.Figure` built
without pyplot (the results' ``.plot()`` call these).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .._common import check_positive_int
from .tabular import NEGATIVE, POSITIVE, REST

__all__ = ["pruning", "training", "distillation", "quantization", "importance", "rules", "tree"]


def _axes(figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _open(ax: Axes) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def pruning(report: Any) -> Figure:
    """Share removed per layer of a :class:`~pellucid.simplify.PruneReport`, as horizontal bars,
    titled with the accuracy before and after."""
    fig, ax = _axes((6.0, 0.4 * len(report.layers) + 1.4))
    pos = np.arange(len(report.layers))[::-1]
    ax.barh(pos, [100 * layer["sparsity"] for layer in report.layers], color=NEGATIVE, height=0.7)
    ax.set_yticks(pos, [layer["name"] for layer in report.layers])
    ax.set_xlim(0, 100)
    ax.set_xlabel("removed (%)")
    acc = "" if report.accuracy_before is None else (
        f"\naccuracy {100 * report.accuracy_before:.1f}% → {100 * report.accuracy_after:.1f}%")
    ax.set_title(f"{report.method}{acc}", fontsize=10)
    _open(ax)
    return fig


def _losses(losses: Sequence[float], ylabel: str, title: str | None, marker: str) -> Figure:
    fig, ax = _axes((4.5, 3.2))
    ax.plot(range(1, len(losses) + 1), losses, marker=marker)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return fig


def training(report: Any) -> Figure:
    """Mean training loss per epoch of a :class:`~pellucid.simplify.TrainReport`."""
    return _losses(report.losses, "mean training loss", None, "o")


def distillation(report: Any) -> Figure:
    """Distillation loss per epoch of a :class:`~pellucid.simplify.DistillReport`, titled with
    the student's held-out fidelity and how many times fewer parameters it has."""
    title = f"fidelity {_pct(report.fidelity)} · {report.compression:.1f}x fewer parameters"
    return _losses(report.losses, "distillation loss", title, ".")


def quantization(report: Any) -> Figure:
    """Bytes of the quantized layers' weights before and after, of a
    :class:`~pellucid.simplify.QuantizeReport`, titled with the agreement."""
    fig, ax = _axes((4.5, 3.2))
    ax.bar(["float32", report.dtype], [report.weight_bytes_before, report.weight_bytes_after],
           color=[REST, NEGATIVE])
    ax.set_ylabel("bytes of quantized layers' weights")
    ax.set_title(f"{report.compression:.1f}x smaller · agreement {_pct(report.agreement)}")
    return fig


def importance(result: Any, *, top: int = 20, ax: Axes | None = None) -> Figure:
    """Horizontal bars of a :class:`~pellucid.simplify.Importance`, largest ``|value|`` on top,
    with the spread (``std``) as error bars; beyond ``top`` the rest are summed into one grey bar.

    Options:
        top: how many features get their own bar (default 20).
        ax: draw into these axes instead of a new figure.
    """
    top = check_positive_int(top, "top")
    values = result.values.detach().cpu().double().numpy()
    spread = result.std.detach().cpu().double().numpy()
    order = np.argsort(-np.abs(values), kind="stable")[:top]
    rest = len(values) > len(order)
    if ax is None:
        fig, ax = _axes((6.0, 0.32 * (len(order) + rest) + 1.2))
    else:
        fig = ax.figure
    shown = list(values[order]) + ([float(np.delete(values, order).sum())] if rest else [])
    labels = [result.feature_names[j] for j in order] + ([f"sum of {len(values) - len(order)} other features"]
                                                         if rest else [])
    colors = [POSITIVE if v >= 0 else NEGATIVE for v in values[order]] + ([REST] if rest else [])
    pos = np.arange(len(shown))[::-1]  # largest at the top
    ax.barh(pos, shown, color=colors, height=0.7)
    ax.set_yticks(pos, labels)
    ax.errorbar(values[order], pos[:len(order)], xerr=spread[order], fmt="none", ecolor="0.25",
                elinewidth=0.8, capsize=2)
    ax.axvline(0.0, color="0.3", linewidth=0.8)
    ax.margins(y=0.02)
    ax.set_xlabel(f"importance ({result.method})")
    ax.set_title(f"global importance · {result.method}")
    _open(ax)
    return fig


def rules(result: Any, *, top: int = 20) -> Figure:
    """One bar per rule of a :class:`~pellucid.simplify.Rules` (its support), coloured by class,
    labelled with the rule and its confidence; the ``top`` rules of largest support."""
    shown = result.rules[:top]
    labels = [f"{r.describe(joiner=' ∧ ', digits=3)} ⇒ {r.class_name}" for r in shown]
    fig, ax = _axes((4.0 + 0.065 * max((len(label) for label in labels), default=10),
                     0.38 * len(shown) + 1.5))
    cmap = colormaps["tab10"]
    pos = np.arange(len(shown))[::-1]
    ax.barh(pos, [100 * r.support for r in shown], height=0.7, color=[cmap(r.prediction % 10) for r in shown])
    ax.set_yticks(pos, labels, fontsize=8)
    for p, r in zip(pos, shown):
        ax.text(100 * r.support, p, f" {100 * r.confidence:.0f}%", va="center", fontsize=7)
    seen = sorted({r.prediction for r in shown})
    ax.legend(handles=[Patch(color=cmap(c % 10), label=result.class_names.get(c, str(c))) for c in seen],
              loc="lower right", fontsize=8, frameon=False)
    ax.set_xlim(0, 115 * max(r.support for r in shown) if shown else 100)
    ax.set_xlabel("support (% of rows) · number: confidence")
    fig.suptitle("rules of the surrogate tree" + (
        "" if result.fidelity is None else f" · fidelity {100 * result.fidelity:.1f}%"))
    _open(ax)
    return fig


def tree(surrogate: Any, *, fontsize: float | None = None) -> Figure:
    """A :class:`~pellucid.simplify.SurrogateTree` drawn by ``sklearn.tree.plot_tree``, titled
    with its fidelity."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from sklearn.tree import plot_tree

    width = max(6.0, min(24.0, 1.6 * surrogate.leaves))
    fig, ax = _axes((width, 1.6 * (surrogate.depth + 1) + 0.6))
    FigureCanvasAgg(fig)  # plot_tree measures text, which needs a canvas with a renderer
    plot_tree(surrogate.tree, feature_names=surrogate.feature_names, class_names=surrogate.class_names,
              filled=True, impurity=False, proportion=True, rounded=True, ax=ax, fontsize=fontsize)
    ax.set_title(f"surrogate tree · fidelity {100 * surrogate.fidelity:.1f}%")
    return fig
