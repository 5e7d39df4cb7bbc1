"""Matplotlib figures of explanations and of every other result.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot, so it can be
saved (``fig.savefig("x.png")``), shown in a notebook, or dropped, without leaving open figures
behind. :func:`explanation` (also ``Explanation.plot()``) picks the plot that fits ``explanation.kind``.
The figures of each package's results live in a module named after it (``plot.features``,
``plot.inspect``, ...) and are what those results' one-line ``.plot()`` call. Only this package
and :mod:`pellucid.reporting` import matplotlib.
"""
from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from .._deprecation import renamed
from ..errors import PellucidError
from .compare import compare
from .features import activation_stats, attention_heads, feature_maps, maximized, patch_heatmap, token_strip
from .image import image, images
from .inspect import figure_pixels, monitor_strip, weight_histograms
from .tabular import bars
from .text import text, text_html
from .waterfall import waterfall

__all__ = ["explanation", "image", "images", "bars", "compare", "waterfall", "text", "text_html",
           "feature_maps", "activation_stats", "maximized", "attention_heads", "token_strip",
           "patch_heatmap", "weight_histograms", "monitor_strip", "figure_pixels"]

_BY_KIND = {"image": image, "tabular": bars, "text": text}


@renamed(expl="explanation")
def explanation(explanation: Any, index: int = 0, **kwargs: Any) -> Figure:
    """Draw row ``index`` of ``explanation`` with the plot for its ``kind``; returns the ``Figure``.

    ``"image"`` goes to :func:`image`, ``"tabular"`` to :func:`bars` and ``"text"`` to :func:`text`
    (:func:`waterfall` draws additive tabular explanations on request); ``kwargs`` are passed on
    (for instance ``sign="positive"`` or ``top=10``). Other kinds raise a ``PellucidError``.
    """
    plot = _BY_KIND.get(explanation.kind)
    if plot is None:
        raise PellucidError(
            f"there is no plot for {explanation.kind!r} explanations yet (inputs shaped "
            f"{tuple(explanation.inputs.shape)}); plots exist for kind 'image' (plot.image), "
            f"'tabular' (plot.bars, plot.waterfall) and 'text' (plot.text). Set Explanation.kind if "
            "it was guessed wrong."
        )
    return plot(explanation, index, **kwargs)
