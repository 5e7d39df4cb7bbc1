"""Token colouring for text explanations: each token on a background coloured by its attribution.

One value per token (values shaped (tokens,) per row, or (tokens, embedding) summed over the
embedding, as integrated gradients through an embedding layer gives). The colour map is the
diverging RdBu_r centred on zero, scaled to the row's largest |value|, as for image overlays.
Tokens come from ``explanation.feature_names`` (``t0, t1, …`` otherwise); WordPiece continuations
(``##ing``) join the previous token without a space. :func:`text_html` gives the same as HTML
spans for the report.
"""
from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, to_hex
from matplotlib.figure import Figure

from .._deprecation import renamed
from ..errors import PellucidError
from ._colors import CMAPS, check_sign, limits, signed_part

__all__ = ["text", "text_html", "token_values", "draw_tokens"]

_CHAR_IN = 0.6 * 9 / 72  # advance of one monospace character at 9 pt, in inches


def token_values(explanation: Any, index: int = 0) -> tuple[list[str], np.ndarray]:
    """``(tokens, values)`` for row ``index``: one value per token (trailing dims summed)."""
    v = explanation.values[index].detach().cpu().double().numpy()
    if v.ndim == 0:
        raise PellucidError("a text explanation needs one value per token; got a scalar row")
    v = v.reshape(v.shape[0], -1).sum(axis=1)
    names = (list(explanation.feature_names) if explanation.feature_names is not None
             else [f"t{j}" for j in range(v.size)])
    if len(names) != v.size:
        raise PellucidError(f"{len(names)} tokens in feature_names for {v.size} values per row")
    return [str(n) for n in names], v


def _colours(values: np.ndarray, sign: str = "all", clip: float = 100.0
             ) -> tuple[list[str], list[bool], Normalize, str]:
    """Hex colour per value, whether it is dark (white ink), the norm and the colour map's name."""
    check_sign(sign)
    shown = signed_part(values, sign)
    lo, hi = limits(shown, sign, clip)
    norm, name = Normalize(lo, hi, clip=True), CMAPS[sign]
    rgba = [colormaps[name](norm(float(v))) for v in shown]
    return [to_hex(c) for c in rgba], [sum(c[:3]) < 1.2 for c in rgba], norm, name


def _pieces(tokens: list[str], skip: tuple[str, ...]) -> list[tuple[int, str, bool]]:
    """(token index, text shown, glued to the previous) for the tokens that are drawn."""
    out = []
    for j, tok in enumerate(tokens):
        if tok in skip:
            continue
        glued = tok.startswith("##")
        out.append((j, tok[2:] if glued else tok, glued))
    return out


def draw_tokens(
    tokens: Sequence[str], values: Any, *, width: int = 80, skip: tuple[str, ...] = ("[PAD]",),
    sign: str = "all", clip: float = 100.0, title: str | None = None,
) -> Figure:
    """``tokens`` on backgrounds coloured by ``values`` (one per token), wrapped at ``width``
    characters; the shared core of :func:`text` and :func:`pellucid.plot.token_strip`.

    ``sign`` and ``clip`` as for image overlays: ``"all"`` is RdBu_r centred on zero, scaled to
    the ``clip``-th percentile of |value| (100: the largest).
    """
    tokens = [str(t) for t in tokens]
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size != len(tokens):
        raise PellucidError(f"{len(tokens)} tokens for {values.size} values")
    colours, dark, norm, cmap = _colours(values, sign, clip)
    pieces = _pieces(tokens, skip)
    lines, line, used = [], [], 0
    for j, shown, glued in pieces:
        need = len(shown) + (0 if glued or not line else 1)
        if line and used + need > width:
            lines.append(line)
            line, used, glued = [], 0, False
            need = len(shown)
        line.append((j, shown, glued))
        used += need
    if line:
        lines.append(line)
    height = 0.45 * max(1, len(lines)) + 1.1
    longest = max((sum(len(p[1]) + 1 for p in ln) for ln in lines), default=10)
    inches = max(4.0, min(width, longest) * _CHAR_IN + 0.3)
    fig = Figure(figsize=(inches, height), layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_xlim(0, (inches - 0.3) / _CHAR_IN)  # x in characters, so boxes sit a space apart
    ax.set_ylim(len(lines) + 0.2, -0.6)
    for row, items in enumerate(lines):
        col = 0.0
        for j, shown, glued in items:
            if col and not glued:
                col += 1
            ax.text(col, row, shown, family="monospace", fontsize=9, va="center", ha="left",
                    color="white" if dark[j] else "black",  # readable on dark cells
                    bbox={"boxstyle": "square,pad=0.15", "facecolor": colours[j], "edgecolor": "none"})
            col += len(shown)
    if title:
        ax.set_title(title, fontsize=10)
    fig.colorbar(ScalarMappable(norm, cmap=cmap), ax=ax, orientation="horizontal",
                 fraction=0.08, shrink=0.5, label="attribution")
    return fig


@renamed(expl="explanation")
def text(
    explanation: Any, index: int = 0, *, width: int = 80, skip: tuple[str, ...] = ("[PAD]",),
    sign: str = "all", clip: float = 100.0, title: str | None = None,
) -> Figure:
    """The row's tokens on coloured backgrounds, wrapped at ``width`` characters; returns the Figure.

    >>> import torch, pellucid
    >>> from pellucid import plot
    >>> e = pellucid.gradient_x_input(torch.nn.Linear(3, 2), torch.rand(1, 3))
    >>> e.feature_names = ["good", "movie", "!"]
    >>> len(plot.text(e).axes)
    2
    """
    tokens, values = token_values(explanation, index)
    if title is None:
        title = f"{explanation.method or 'attribution'} · target {int(explanation.target[index])}"
    return draw_tokens(tokens, values, width=width, skip=skip, sign=sign, clip=clip, title=title)


@renamed(expl="explanation")
def text_html(explanation: Any, index: int = 0, *, skip: tuple[str, ...] = ("[PAD]",)) -> str:
    """The row as HTML: one ``<span>`` per token, background coloured, value in the tooltip."""
    tokens, values = token_values(explanation, index)
    colours = _colours(values)[0]
    out = []
    for j, shown, glued in _pieces(tokens, skip):
        sep = "" if glued or not out else " "
        out.append(f'{sep}<span class="tok" style="background:{colours[j]}" '
                   f'title="{values[j]:+.4g}">{html.escape(shown)}</span>')
    return '<p class="tokens">' + "".join(out) + "</p>"
