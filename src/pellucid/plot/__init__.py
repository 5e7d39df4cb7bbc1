"""Matplotlib figures of explanations.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot, so it can be
saved (``fig.savefig("x.png")``), shown in a notebook, or dropped, without leaving open figures
behind. :func:`explanation` (also ``Explanation.plot()``) picks the plot that fits ``expl.kind``.
"""
from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from ..errors import PellucidError
from .compare import compare
from .image import image, images
from .tabular import bars

__all__ = ["explanation", "image", "images", "bars", "compare"]

_BY_KIND = {"image": image, "tabular": bars}


def explanation(expl: Any, index: int = 0, **kwargs: Any) -> Figure:
    """Draw row ``index`` of ``expl`` with the plot for its ``kind``; returns the ``Figure``.

    ``"image"`` goes to :func:`image` and ``"tabular"`` to :func:`bars`; ``kwargs`` are passed on
    (for instance ``sign="positive"`` or ``top=10``). Other kinds raise a ``PellucidError``.
    """
    plot = _BY_KIND.get(expl.kind)
    if plot is None:
        raise PellucidError(
            f"there is no plot for {expl.kind!r} explanations yet (inputs shaped "
            f"{tuple(expl.inputs.shape)}); plots exist for kind 'image' (plot.image) and "
            f"'tabular' (plot.bars). Set Explanation.kind if it was guessed wrong."
        )
    return plot(expl, index, **kwargs)
