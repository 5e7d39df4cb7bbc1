"""Tabular attributions: one horizontal bar per feature, largest |value| on top."""
from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._common import check_positive_int
from .._deprecation import renamed
from ..errors import PellucidError

__all__ = ["bars"]

# The ends of RdBu_r, so a bar chart and an image map agree on what red and blue mean.
POSITIVE, NEGATIVE, REST = "#d6604d", "#4393c3", "#bdbdbd"


def draw_bars(ax: Axes, explanation: Any, index: int, *, top: int = 20, title: str | None = None) -> None:
    """Draw the bars of row ``index`` into ``ax`` (see :func:`bars`)."""
    top = check_positive_int(top, "top")
    values = explanation.values[index].detach().cpu().double().numpy()
    if values.ndim != 1:
        raise PellucidError(
            f"plot.bars needs one value per feature (values shaped (n, features)); got a row "
            f"shaped {values.shape}"
        )
    n = values.shape[0]
    names = list(explanation.feature_names) if explanation.feature_names is not None else [f"x{j}" for j in range(n)]
    if len(names) != n:
        raise PellucidError(f"{len(names)} feature_names for {n} features")
    x = explanation.inputs[index].detach().cpu().numpy() if explanation.inputs is not None else None
    if x is not None and x.shape == values.shape:
        names = [f"{name} = {v:.3g}" for name, v in zip(names, x)]
    order = np.argsort(-np.abs(values), kind="stable")[:top]
    labels = [names[j] for j in order]
    shown = values[order]
    colors = [POSITIVE if v >= 0 else NEGATIVE for v in shown]
    if n > len(order):  # what the hidden features add up to, as SHAP's waterfall shows it
        rest = np.delete(values, order)
        labels.append(f"sum of {len(rest)} other features")
        shown = np.append(shown, rest.sum())
        colors.append(REST)
    positions = np.arange(len(shown))[::-1]  # largest at the top
    ax.barh(positions, shown, color=colors, height=0.7)
    ax.set_yticks(positions, labels)
    ax.axvline(0.0, color="0.3", linewidth=0.8)
    ax.set_xlabel("attribution")
    ax.margins(y=0.02)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title)


@renamed(expl="explanation")
def bars(
    explanation: Any,
    index: int = 0,
    *,
    top: int = 20,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Horizontal bars of one tabular attribution, sorted by ``|value|``; returns the ``Figure``.

    Positive values are red and negative blue (as in :func:`pellucid.plot.image`). Features are
    labelled by ``explanation.feature_names`` (``x0, x1, …`` when absent) with the row's input value;
    beyond the ``top`` largest, the rest are summed into one grey bar.

    Options:
        index: the row to draw (default 0).
        top: how many features get their own bar (default 20).
        ax: draw into these axes instead of a new figure (default None: a new figure).
        title: the axes title (default None: ``"<method> · target <t>"``; ``""`` for none).

    >>> import torch, pellucid
    >>> from pellucid import plot
    >>> explanation = pellucid.gradient_x_input(torch.nn.Linear(5, 2), torch.rand(3, 5))
    >>> len(plot.bars(explanation, top=3).axes)
    1
    """
    if ax is None:
        shown = min(top, explanation.values.shape[-1]) + (explanation.values.shape[-1] > top)
        fig = Figure(figsize=(6.0, 0.32 * shown + 1.2), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    if title is None:
        title = f"{explanation.method or 'attribution'} · target {int(explanation.target[index])}"
    draw_bars(ax, explanation, index, top=top, title=title)
    return fig
