"""Figures for :mod:`pellucid.probe`: adversarial examples beside their clean inputs, and a
model's accuracy against the strength of an attack.

Every function takes the result object and returns a :class:`matplotlib.figure.Figure` built
without pyplot.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..errors import InputError
from .image import input_picture

__all__ = ["attack", "robustness_curve"]

_UP, _DOWN = "#d6604d", "#4393c3"  # a raised feature, a lowered one (as the RdBu_r map)


def _np(t: Any) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def attack(result: Any, rows: Sequence[int] | None = None, *, n: int = 6) -> Figure:
    """Clean input, perturbation and adversarial input side by side, with the predictions.

    ``result`` is an :class:`~pellucid.probe.AttackResult`; ``rows`` which rows (default: the
    first ``n``). Image rows (C, H, W) are drawn as pictures, the perturbation (summed over
    channels) on a diverging map centred on zero (red raised a pixel, blue lowered it); other rows
    as bars of the perturbation.
    """
    if result.inputs is None:
        raise InputError("this result does not hold its clean inputs, so it cannot be drawn")
    rows = list(range(min(n, len(result)))) if rows is None else list(rows)
    image = result.inputs.dim() in (3, 4)
    fig = Figure(figsize=(6.0 if image else 7.0, (1.9 if image else 1.6) * len(rows) + 0.4),
                 layout="constrained")
    axes = fig.subplots(len(rows), 3 if image else 1, squeeze=False)
    for k, i in enumerate(rows):
        x, adv = _np(result.inputs[i]), _np(result.adversarial[i])
        delta = adv - x
        verdict = "success" if bool(result.success[i]) else "failed"
        before, after = int(result.original_predictions[i]), int(result.predictions[i])
        if image:
            _image_row(axes[k], x, adv, delta, f"clean · pred {before}",
                       f"adversarial · pred {after}",
                       f"perturbation · {verdict}\n" + ", ".join(
                           f"{name} {float(v[i]):.3g}" for name, v in result.perturbation_norm.items()))
        else:
            ax = axes[k, 0]
            d = delta.ravel()
            ax.bar(np.arange(d.size), d, color=np.where(d >= 0, _UP, _DOWN))
            ax.axhline(0, color="0.3", linewidth=0.7)
            ax.set_title(f"row {i}: pred {before} -> {after} ({verdict})", fontsize=8)
    fig.suptitle(f"{result.meta.get('attack', 'attack')}: success rate {result.success_rate:.0%}",
                 fontsize=10)
    return fig


def _image_row(axes: Any, x: np.ndarray, adv: np.ndarray, delta: np.ndarray, clean_title: str,
               adv_title: str, delta_title: str) -> None:
    ax0, ax1, ax2 = axes
    for ax, data, label in ((ax0, x, clean_title), (ax2, adv, adv_title)):
        pic, rgb = input_picture(data if data.ndim == 3 else data[None])
        ax.imshow(pic, cmap=None if rgb else "gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(label, fontsize=8)
    d = delta.sum(axis=0) if delta.ndim == 3 else delta
    lim = float(np.abs(d).max()) or 1.0
    ax1.imshow(d, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    ax1.set_title(delta_title, fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])


def robustness_curve(curve: Any, ax: Any = None, **line_kwargs: Any) -> Figure:
    """Accuracy against eps of a :class:`~pellucid.probe.RobustnessCurve` (drawn on ``ax`` when
    given, else on a new figure); ``line_kwargs`` go to ``ax.plot``."""
    if ax is None:
        fig = Figure(figsize=(4.5, 3.2), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    ax.plot(curve.eps, curve.accuracy, marker="o", **line_kwargs)
    ax.set_xlabel("eps")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"robustness to {curve.attack}")
    ax.grid(True, alpha=0.3)
    return fig
