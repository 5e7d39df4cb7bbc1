"""Draw a layer graph as SVG: one box per row, top to bottom in execution order.

An edge between consecutive rows is a short vertical arrow; an edge that skips rows (a residual
connection, a reused input) is drawn as a curve on the right, each in its own lane so that
parallel skips do not overlap. Pure string building: no graphviz, no matplotlib.
"""
from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

__all__ = ["draw_graph"]

_BOX_W, _BOX_H, _GAP, _LANE, _PAD = 300, 34, 18, 14, 12

_COLOURS = {  # fill by family, so convolutions, activations and joins stand apart at a glance
    "conv": "#dbe9f6", "linear": "#dcefdc", "norm": "#f6ecd6", "pool": "#ece0f3",
    "act": "#fbe3e3", "join": "#fff6bf", "other": "#f2f2f2", "input": "#ffffff",
}


def _family(kind: str) -> str:
    k = kind.lower()
    for family, keys in (
        ("conv", ("conv",)), ("linear", ("linear", "bilinear", "embedding")),
        ("norm", ("norm",)), ("pool", ("pool",)),
        ("act", ("relu", "gelu", "sigmoid", "tanh", "silu", "elu", "softmax", "softplus", "mish")),
        ("join", ("add", "cat", "mul", "stack", "sub", "matmul")),
    ):
        if any(key in k for key in keys):
            return family
    return "other"


def draw_graph(layers: Sequence[Any]) -> str:
    """SVG text for ``layers`` (objects with ``name``, ``kind``, ``output_shape``, ``params``, ``inputs``)."""
    names = ["input"] + [r.name for r in layers]
    index = {name: i for i, name in enumerate(names)}

    def source(name: str) -> int:
        return index.get(name, 0)  # a name that is no row is a model input (an fx placeholder)

    skips = []
    for i, r in enumerate(layers, start=1):
        for src in r.inputs:
            j = source(src)
            if j != i - 1 and j < i:
                skips.append((j, i))
    lanes: list[int] = []  # lane of each skip, chosen so that overlapping spans differ
    ends: list[int] = []
    for j, i in sorted(skips):
        lane = next((k for k, end in enumerate(ends) if end <= j), len(ends))
        if lane == len(ends):
            ends.append(i)
        else:
            ends[lane] = i
        lanes.append(lane)
    width = _PAD * 2 + _BOX_W + _LANE * (len(ends) + 1)
    height = _PAD * 2 + len(names) * (_BOX_H + _GAP) - _GAP
    y = lambda i: _PAD + i * (_BOX_H + _GAP)  # noqa: E731
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
    ]
    x0, xr = _PAD, _PAD + _BOX_W
    for i, r in enumerate(layers, start=1):
        if any(source(src) == i - 1 for src in r.inputs) or (i == 1 and not r.inputs):
            parts.append(f'<line x1="{x0 + _BOX_W / 2}" y1="{y(i - 1) + _BOX_H}" x2="{x0 + _BOX_W / 2}" '
                         f'y2="{y(i)}" stroke="#555" marker-end="url(#arrow)"/>')
    for (j, i), lane in zip(sorted(skips), lanes):
        xl = xr + _LANE * (lane + 1)
        y1, y2 = y(j) + _BOX_H / 2, y(i) + _BOX_H / 2
        parts.append(f'<path d="M{xr},{y1} C{xl},{y1} {xl},{y1} {xl},{y1 + _GAP} L{xl},{y2 - _GAP} '
                     f'C{xl},{y2} {xl},{y2} {xr},{y2}" fill="none" stroke="#c0392b" '
                     f'marker-end="url(#arrow)"/>')
    for i, name in enumerate(names):
        if i == 0:
            kind, shape, params, fill = "input", "", 0, _COLOURS["input"]
        else:
            r = layers[i - 1]
            kind, params, fill = r.kind, r.params, _COLOURS[_family(r.kind)]
            shape = "×".join(map(str, r.output_shape)) if r.output_shape else "–"
        parts.append(f'<rect x="{x0}" y="{y(i)}" width="{_BOX_W}" height="{_BOX_H}" rx="4" '
                     f'fill="{fill}" stroke="#777"/>')
        title = html.escape(name if i == 0 or name == kind else f"{name} · {kind}")
        parts.append(f'<text x="{x0 + 8}" y="{y(i) + 14}" font-weight="bold">{title}</text>')
        detail = html.escape(shape + (f"  ·  {params:,} params" if params else ""))
        parts.append(f'<text x="{x0 + 8}" y="{y(i) + 28}" fill="#444">{detail}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
