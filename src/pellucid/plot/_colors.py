"""Colour scales for attributions: which colormap, and limits that put zero where it belongs.

A signed attribution is drawn with a diverging map whose centre (white) is exactly zero, so red
always means "raised the explained output" and blue "lowered it", whatever the method. The limits
are ``±`` the ``clip``-th percentile of ``|values|``: one extreme pixel does not wash out the rest.
"""
from __future__ import annotations

import numpy as np

from .._common import check_choice
from ..errors import InputError

SIGNS = ("all", "positive", "negative", "absolute")

#: Colormap per ``sign``. Every map is white (or nearly) at zero so the input shows through.
CMAPS = {"all": "RdBu_r", "positive": "Reds", "negative": "Blues", "absolute": "Purples"}


def check_sign(sign: str) -> str:
    """``sign`` itself if it is one of :data:`SIGNS`; an :class:`~pellucid.errors.InputError` otherwise."""
    return check_choice(sign, "sign", SIGNS)


def signed_part(values: np.ndarray, sign: str) -> np.ndarray:
    """The part of ``values`` that ``sign`` draws: all of it, the positive or negative part
    (as magnitudes, so both are >= 0), or the absolute value."""
    check_sign(sign)
    if sign == "all":
        return values
    if sign == "positive":
        return np.clip(values, 0, None)
    if sign == "negative":
        return np.clip(-values, 0, None)
    return np.abs(values)


def limits(values: np.ndarray, sign: str = "all", clip: float = 99.0) -> tuple[float, float]:
    """``(vmin, vmax)`` for ``values`` already passed through :func:`signed_part`.

    ``vmax`` is the ``clip``-th percentile of ``|values|`` (``clip=100`` keeps the maximum);
    ``vmin`` is ``-vmax`` for ``sign="all"`` (zero at the centre of the map) and 0 otherwise.
    An all-zero map gets limits ``±1`` rather than a degenerate scale.
    """
    if not 0 < clip <= 100:
        raise InputError(f"clip is a percentile in (0, 100]; got {clip!r}")
    finite = np.abs(values[np.isfinite(values)])
    vmax = float(np.percentile(finite, clip)) if finite.size else 0.0
    if vmax <= 0:  # percentile of a mostly-zero map: fall back to the largest value
        vmax = float(finite.max()) if finite.size else 0.0
    if vmax <= 0:
        vmax = 1.0
    return (-vmax if sign == "all" else 0.0), vmax


def normalize_image(image: np.ndarray) -> np.ndarray:
    """Min-max scale ``image`` to [0, 1] (a constant image becomes all zeros)."""
    image = np.asarray(image, dtype=np.float64)
    lo, hi = np.nanmin(image), np.nanmax(image)
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        return np.zeros_like(image)
    return (image - lo) / (hi - lo)
