"""Image attributions: the input in grey (or colour) with the attribution map laid over it.

Figures are built with :class:`matplotlib.figure.Figure`, never through pyplot, so nothing is left
open in a pyplot session and no interactive backend is needed.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from .._deprecation import renamed
from ..errors import PellucidError
from ._colors import CMAPS, check_sign, limits, normalize_image, signed_part

__all__ = ["image", "images"]

#: Darkest grey of the input's ink (1 is black), and the exponent of the opacity ramp
#: ``alpha · (|v| / vmax) ** FADE`` (below 1: middling values still show).
INK, FADE = 0.7, 0.7


def _row(tensor: Any, index: int) -> np.ndarray:
    return tensor[index].detach().cpu().double().numpy()


def _channels_last(x: np.ndarray) -> bool:
    """Whether a 3-D input row is laid out (H, W, C) rather than (C, H, W)."""
    return x.ndim == 3 and x.shape[0] not in (1, 3, 4) and x.shape[-1] in (1, 3, 4)


def input_picture(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """The input row as something ``imshow`` draws: ``(picture, is_rgb)``, scaled to [0, 1].

    Three (or four) channels are drawn as RGB; otherwise the first channel, in grey.
    """
    if x.ndim == 2:
        return normalize_image(x), False
    if x.ndim != 3:
        raise PellucidError(f"an image row must be (C, H, W) or (H, W); got shape {x.shape}")
    if _channels_last(x):
        x = np.moveaxis(x, -1, 0)
    if x.shape[0] in (3, 4):
        return normalize_image(np.moveaxis(x[:3], 0, -1)), True
    return normalize_image(x[0]), False


def heatmap(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The attribution row as one (h, w) map: channels summed, a CAM's single channel dropped."""
    if values.ndim == 2:
        return values
    if values.ndim != 3:
        raise PellucidError(
            f"image attributions must be (C, H, W) or (H, W) per row; got shape {values.shape}"
        )
    axis = -1 if (values.shape == x.shape and _channels_last(x)) else 0
    return values.sum(axis=axis)


def draw(
    ax: Axes,
    explanation: Any,
    index: int,
    *,
    sign: str = "all",
    clip: float = 99.0,
    alpha: float = 0.8,
    title: str | None = None,
    show_input: bool = True,
) -> ScalarMappable:
    """Draw row ``index`` of ``explanation`` into ``ax``; returns the heatmap's mappable (for a colorbar).

    The heatmap is stretched over the input's extent, so a CAM at the layer's own (coarser)
    resolution still lines up with the pixels it covers. It is the last image in ``ax.images``;
    its colour limits (``get_clim()``) are those of the returned mappable.
    """
    check_sign(sign)
    x = _row(explanation.inputs, index)
    picture, rgb = input_picture(x)
    h, w = picture.shape[:2]
    extent = (-0.5, w - 0.5, h - 0.5, -0.5)
    heat = signed_part(heatmap(_row(explanation.values, index), x), sign)
    vmin, vmax = limits(heat, sign, clip)
    opacity = 1.0
    if show_input:
        # Ink at most INK dark, so colour laid over it stays readable as colour.
        ax.imshow(picture if rgb else picture * INK, cmap=None if rgb else "gray_r", vmin=0,
                  vmax=1, extent=extent, interpolation="nearest")
        # Opacity grows with |value|: where the map says little, the input shows unobscured.
        opacity = alpha * np.clip(np.abs(np.nan_to_num(heat)) / vmax, 0.0, 1.0) ** FADE
    same_size = heat.shape == (h, w)
    ax.imshow(heat, cmap=CMAPS[sign], vmin=vmin, vmax=vmax, extent=extent, alpha=opacity,
              interpolation="nearest" if same_size else "bilinear")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    # The colorbar shows the map's colours at full strength, whatever each pixel's opacity.
    mappable = ScalarMappable(Normalize(vmin, vmax), cmap=CMAPS[sign])
    return mappable


def default_title(explanation: Any, index: int) -> str:
    """``"<method> · target <t>"`` for row ``index``."""
    return f"{explanation.method or 'attribution'} · target {int(explanation.target[index])}"


def relative_colorbar(fig: Figure, axes: Any, sign: str, **kwargs: Any) -> Any:
    """One colorbar for panels that are each scaled to their own ``clip`` percentile.

    Its ticks read ``−max``, ``0`` and ``+max`` because the numbers differ from panel to panel.
    """
    lo = -1.0 if sign == "all" else 0.0
    bar = fig.colorbar(ScalarMappable(Normalize(lo, 1.0), cmap=CMAPS[sign]), ax=axes,
                       ticks=[-1.0, 0.0, 1.0] if sign == "all" else [0.0, 1.0], **kwargs)
    bar.ax.set_yticklabels(["−max", "0", "+max"] if sign == "all" else ["0", "max"])
    return bar


@renamed(expl="explanation")
def image(
    explanation: Any,
    index: int = 0,
    *,
    sign: str = "all",
    clip: float = 99.0,
    ax: Axes | None = None,
    alpha: float = 0.8,
    title: str | None = None,
    colorbar: bool = True,
) -> Figure:
    """Draw one image attribution over its input; returns the matplotlib ``Figure``.

    The input (row ``index`` of ``explanation.inputs``) is drawn in grey — its first channel — or in
    colour when it has three channels, scaled to [0, 1]. The attribution map goes on top, each
    pixel as opaque as its value is strong (up to ``alpha``), so the input shows through where
    the attribution is near zero. Attributions with several channels are summed over the channel axis; a
    CAM's ``(1, H, W)`` map is used as is (and stretched over the input when coarser).

    Options:
        index: the row to draw (default 0).
        sign: ``"all"`` (default) draws signed values with the diverging ``RdBu_r`` map centred
            on zero (red raises the explained output, blue lowers it); ``"positive"`` and
            ``"negative"`` draw that part's magnitude (``Reds`` / ``Blues``), ``"absolute"`` draws
            ``|values|`` (``Purples``).
        clip: the colour scale ends at this percentile of ``|values|`` (default 99.0; 100 keeps
            the maximum), so a few extreme pixels do not wash out the rest. With ``sign="all"``
            the limits are ``±`` that value, symmetric around zero.
        ax: draw into these axes instead of a new figure (default None: a new figure).
        alpha: opacity of the strongest attributions over the input (default 0.8); weaker ones
            fade out as ``alpha · (|v| / vmax) ** 0.7``.
        title: the axes title (default None: ``"<method> · target <t>"``; ``""`` for none).
        colorbar: add a colorbar (default True).

    >>> import torch, pellucid
    >>> from pellucid import plot
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    >>> explanation = pellucid.saliency(net, torch.rand(2, 1, 8, 8), abs=False)
    >>> fig = plot.image(explanation, 1)
    >>> len(fig.axes)  # the picture and its colorbar
    2
    """
    if explanation.kind != "image":
        raise PellucidError(
            f"plot.image draws image explanations; this one has kind {explanation.kind!r} and inputs "
            f"shaped {tuple(explanation.inputs.shape)}"
        )
    if ax is None:
        fig = Figure(figsize=(4.2 if colorbar else 3.6, 3.6), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    mappable = draw(ax, explanation, index, sign=sign, clip=clip, alpha=alpha,
                    title=default_title(explanation, index) if title is None else title)
    if colorbar:
        fig.colorbar(mappable, ax=ax, shrink=0.85)
    return fig


@renamed(expl="explanation")
def images(
    explanation: Any,
    indices: Sequence[int] | None = None,
    *,
    sign: str = "all",
    clip: float = 99.0,
    alpha: float = 0.8,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    ncols: int | None = None,
    cell_size: float = 1.9,
    colorbar: bool = True,
) -> Figure:
    """Several rows of one image explanation side by side; returns the ``Figure``.

    Each panel is drawn as by :func:`image` and scaled to its own ``clip`` percentile, so the
    (optional) shared colorbar is labelled ``−max … 0 … +max`` rather than in numbers.

    Options:
        indices: rows to draw (default None: all rows).
        sign, clip, alpha: as for :func:`image` (defaults ``"all"``, 99.0, 0.8).
        labels: one title per panel (default None: ``"target <t>"``).
        title: figure title (default None: the method's name; ``""`` for none).
        ncols: panels per line (default None: all in one line).
        cell_size: inches per panel (default 1.9).
        colorbar: add the shared relative colorbar (default True).
    """
    check_sign(sign)
    indices = list(range(len(explanation))) if indices is None else [int(i) for i in indices]
    if not indices:
        raise PellucidError("plot.images needs at least one row to draw")
    if labels is not None and len(labels) != len(indices):
        raise PellucidError(f"got {len(labels)} labels for {len(indices)} panels")
    ncols = len(indices) if ncols is None else max(1, min(int(ncols), len(indices)))
    nrows = -(-len(indices) // ncols)
    fig = Figure(figsize=(cell_size * ncols + (0.9 if colorbar else 0.2),
                          cell_size * nrows + 0.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for k, (ax, i) in enumerate(zip(axes, indices)):
        label = labels[k] if labels is not None else f"target {int(explanation.target[i])}"
        draw(ax, explanation, i, sign=sign, clip=clip, alpha=alpha, title=label)
    for ax in axes[len(indices):]:
        ax.remove()
    if colorbar:
        relative_colorbar(fig, list(axes[: len(indices)]), sign, shrink=0.85)
    heading = (explanation.method or "attribution") if title is None else title
    if heading:
        fig.suptitle(heading, fontsize="large")
    return fig
