"""Turn one report item into HTML: explanations, figures, tables, structures, anything with a view.

Dispatch, first match wins:

- :class:`~pellucid.Explanation`: its rows (up to ``max_rows``) drawn as its ``kind`` calls for
  (images side by side; a waterfall per tabular row when additive, bars otherwise; coloured
  tokens for text) and a table of the values with the feature names.
- a matplotlib ``Figure``: the picture.
- objects with ``to_svg()`` (a model structure): the drawing; ``to_html()``: its table;
  ``plot()`` taking no argument: its figure (weights, monitors, comparisons, curves).
- a ``table()`` method or a ``table`` attribute (a list of dicts, or a dict of dicts): a table.
- a list of dicts or a dict: a table; a string: a paragraph; any other list: its items in turn,
  under one heading.

Every string that comes from the user (feature names, tokens, labels, table cells) is escaped.
"""
from __future__ import annotations

import base64
import html
import inspect
import io
import numbers
from typing import Any

from matplotlib.figure import Figure

from ..errors import InputError

__all__ = ["render", "figure_html", "table_html"]


def figure_html(fig: Figure, alt: str = "", caption: str | None = None) -> str:
    """The figure as an inline PNG (``<figure><img src="data:...">``)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, facecolor="white")
    src = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{src}" alt="{html.escape(alt)}">{cap}</figure>'


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return f"<td>{html.escape(str(value))}</td>"
    if isinstance(value, numbers.Integral):
        return f'<td class="num">{int(value):,}</td>'
    if isinstance(value, numbers.Real):
        return f'<td class="num" data-sort="{float(value)!r}">{float(value):.4g}</td>'
    if isinstance(value, (tuple, list)) and all(isinstance(v, numbers.Integral) for v in value):
        return f"<td>{html.escape('×'.join(map(str, value)))}</td>"
    return f"<td>{html.escape(str(value))}</td>"


def table_html(rows: Any, index_name: str = "") -> str:
    """A sortable table from a list of dicts, or a dict of dicts (keys become the first column)."""
    if isinstance(rows, dict):
        if all(isinstance(v, dict) for v in rows.values()):
            rows = [{index_name or "": k, **v} for k, v in rows.items()]
        else:
            rows = [{"name": k, "value": v} for k, v in rows.items()]
    rows = list(rows)
    if not rows:
        return '<p class="note">(empty table)</p>'
    columns: list[str] = []
    for r in rows:
        columns += [c for c in r if c not in columns]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "\n".join("<tr>" + "".join(_cell(r.get(c, "")) for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


def _explanation(expl: Any, max_rows: int) -> str:
    from .. import plot

    parts = []
    n = min(len(expl.values), max_rows)
    about = (f"{html.escape(expl.method or 'attribution')} on {len(expl.values)} row(s)"
             + (f", showing {n}" if n < len(expl.values) else "")
             + "".join(f"; {html.escape(str(k))}={html.escape(str(v))}" for k, v in expl.params.items()
                       if isinstance(v, (int, float, str, bool)) and k not in ("progress",)))
    parts.append(f'<p class="note">{about}</p>')
    if expl.kind == "image":
        parts.append(figure_html(plot.images(expl, list(range(n)), ncols=min(n, 8)), alt=expl.method))
    for i in range(0 if expl.kind == "image" else n):
        if expl.kind == "text":
            parts.append(plot.text_html(expl, i))
        else:
            additive = expl.kind == "tabular" and expl.baseline_outputs is not None
            fig = plot.waterfall(expl, i) if additive else plot.explanation(expl, i)
            parts.append(figure_html(fig, alt=f"{expl.method} row {i}"))
    if expl.kind in ("tabular", "text") and expl.values.dim() >= 2:
        names = expl.feature_names or [f"x{j}" for j in range(expl.values.shape[1])]
        values = expl.values[:n].detach().cpu().double()
        values = values.reshape(n, values.shape[1], -1).sum(-1)
        rows = [{"feature": str(name), **{f"row {i}": float(values[i, j]) for i in range(n)}}
                for j, name in enumerate(names)]
        parts.append(table_html(rows))
    return "\n".join(parts)


def _takes_no_arguments(method: Any) -> bool:
    try:
        sig = inspect.signature(method)
    except (TypeError, ValueError):
        return False
    return all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
               for p in sig.parameters.values())


def render(item: Any, max_rows: int = 8) -> str:
    """HTML for one item (see the module docstring for what is accepted)."""
    from ..explanation import Explanation

    if isinstance(item, Explanation):
        return _explanation(item, max_rows)
    if isinstance(item, Figure):
        return figure_html(item)
    if isinstance(item, str):
        return "".join(f"<p>{html.escape(p)}</p>" for p in item.split("\n\n"))
    if isinstance(item, (list, tuple)) and item and all(isinstance(r, dict) for r in item):
        return table_html(item)
    if isinstance(item, list):  # several items under one heading (a caption and its figure, ...)
        return "\n".join(render(part, max_rows) for part in item)
    if isinstance(item, dict):
        return table_html(item)
    parts = []
    if callable(getattr(item, "to_svg", None)):
        parts.append(f'<div class="graph">{item.to_svg()}</div>')
    if callable(getattr(item, "to_html", None)):
        parts.append(item.to_html())
    elif callable(getattr(item, "table", None)) and _takes_no_arguments(item.table):
        parts.append(table_html(item.table()))
    elif isinstance(getattr(item, "table", None), (dict, list)):
        parts.append(table_html(item.table, "method"))
    if callable(getattr(item, "plot", None)) and _takes_no_arguments(item.plot):
        fig = item.plot()
        if isinstance(fig, Figure):
            parts.append(figure_html(fig, alt=type(item).__name__))
    if not parts:
        raise InputError(
            f"the report cannot show a {type(item).__name__}: give an Explanation, a matplotlib "
            "Figure, a table (list of dicts or dict), a string, or an object with to_html(), "
            "table() or plot()"
        )
    return "\n".join(parts)
