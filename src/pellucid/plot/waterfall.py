"""Waterfall plot of one additive explanation, as shap users know it.

It starts at the baseline output ``E[f]`` (``explanation.baseline_outputs``: the output at the baseline,
or its expectation over a background) and adds one feature's value at a time, largest |value|
nearest the top, until it reaches the explained output ``f(x)``. Features beyond ``top`` are
summed into one grey step. When the values do not sum exactly to ``f(x) − E[f]`` (an
approximation, a finite number of IG steps), the gap is drawn as its own step and labelled, so the
plot never pretends to a completeness the numbers lack.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._common import check_positive_int
from .._deprecation import renamed
from ..errors import PellucidError
from .tabular import NEGATIVE, POSITIVE, REST

__all__ = ["waterfall"]


@renamed(expl="explanation")
def waterfall(
    explanation: Any, index: int = 0, *, top: int = 10, ax: Axes | None = None, title: str | None = None,
) -> Figure:
    """Waterfall from ``E[f]`` to ``f(x)`` for row ``index``; returns the ``Figure``.

    Needs an additive explanation (one with ``baseline_outputs``: integrated gradients, the
    Shapley methods, DeepLIFT). Values of any shape are flattened to features; names come from
    ``explanation.feature_names`` (``x0, x1, …`` otherwise) with the input value.

    >>> import torch, pellucid
    >>> from pellucid import plot
    >>> explanation = pellucid.integrated_gradients(torch.nn.Linear(4, 2), torch.rand(1, 4), target=0)
    >>> len(plot.waterfall(explanation).axes)
    1
    """
    if explanation.baseline_outputs is None:
        raise PellucidError(
            f"a waterfall needs an additive explanation with baseline_outputs (E[f]); "
            f"{explanation.method or 'this explanation'} has none. Use integrated_gradients, deeplift or a "
            "Shapley method, or plot.bars for any attribution."
        )
    top = check_positive_int(top, "top")
    values = explanation.values[index].detach().cpu().double().numpy().ravel()
    start = float(explanation.baseline_outputs[index])
    end = float(explanation.outputs[index])
    names = list(explanation.feature_names) if explanation.feature_names is not None else []
    if len(names) != values.size:
        names = [f"x{j}" for j in range(values.size)]
    x = explanation.inputs[index].detach().cpu().numpy().ravel() if explanation.inputs is not None else None
    if x is not None and x.size == values.size:
        names = [f"{n} = {v:.3g}" for n, v in zip(names, x)]
    order = np.argsort(-np.abs(values), kind="stable")[:top]
    steps = [(names[j], values[j], POSITIVE if values[j] >= 0 else NEGATIVE) for j in order]
    if values.size > len(order):
        rest = np.delete(values, order).sum()
        steps.append((f"sum of {values.size - len(order)} other features", rest, REST))
    gap = end - start - values.sum()
    if abs(gap) > 1e-6 * max(1.0, abs(end), abs(start)):
        steps.append(("not explained (f(x) − E[f] − Σ values)", gap, "#999999"))
    if ax is None:
        fig = Figure(figsize=(7.0, 0.36 * len(steps) + 1.4), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    # drawn bottom-up in reverse so the largest step sits at the top, ending at f(x)
    level = start
    lefts, widths = [], []
    for _, v, _ in reversed(steps):
        lefts.append(level)
        widths.append(v)
        level += v
    positions = np.arange(len(steps))
    ax.barh(positions, widths, left=lefts, color=[c for _, _, c in reversed(steps)], height=0.7)
    for pos, left, width in zip(positions, lefts, widths):
        ax.text(max(left, left + width), pos, f" {width:+.3g}", va="center", ha="left", fontsize=8)
    ax.set_yticks(positions, [n for n, _, _ in reversed(steps)])
    ax.axvline(start, color="0.5", linestyle=":", linewidth=0.9)
    ax.axvline(end, color="0.2", linestyle="--", linewidth=0.9)
    ax.set_xlabel(f"output   E[f] = {start:.4g}  →  f(x) = {end:.4g}")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.use_sticky_edges = False  # barh pins its left edges, which would cut the labels off
    ax.margins(x=0.12, y=0.04)
    if title is None:
        title = f"{explanation.method or 'attribution'} · target {int(explanation.target[index])}"
    if title:
        ax.set_title(title)
    return fig
