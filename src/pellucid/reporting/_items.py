"""Turn one report item into HTML, through one protocol that every result of the package follows.

Plain values first: a matplotlib ``Figure`` is its picture, a string its paragraphs, a list of
dicts (or a dict of plain values) a table, a dict of results one sub-section per key, any other
list or tuple its items in turn under one heading (so a ``(model, report)`` pair shows both), a
torch module its parameter statistics (:func:`pellucid.inspect.weights`), a tensor or array
(attention maps, activations) a table of its values when it has at most two dimensions and of its
shape and range otherwise. Everything else is asked, in this order:

1. ``to_html()``: the object's own HTML, used as it is;
2. an :class:`~pellucid.Explanation`: its rows (up to ``max_rows``) drawn as its ``kind`` calls for
   (images side by side; a waterfall per tabular row when additive, bars otherwise; coloured
   tokens for text), a table of the values per feature and one of the rows' targets and outputs;
3. a picture, from ``to_svg()`` (a model's graph) or else from ``plot()`` (a ``Figure``), and a
   table, from ``table()`` (a list of dicts), each used when it can be called with no argument;
   a dataclass without ``table()`` (or with an empty one) is tabulated from its fields: its
   per-row tensors one row per input (up to ``max_rows``), its single values as name / value
   pairs;
4. ``__str__``, as preformatted text, when none of the above gave anything.

Every string that comes from the user (feature names, tokens, labels, table cells) is escaped.
"""
from __future__ import annotations

import base64
import dataclasses
import html
import inspect
import io
import numbers
from collections import Counter
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from .. import plot
from ..errors import InputError
from ..explanation import Explanation
from ..inspect import weights

__all__ = ["render", "figure_html", "table_html"]

_WIDE = 8  # a per-row tensor with at most this many columns is tabulated column by column


def figure_html(fig: Figure, alt: str = "", caption: str | None = None) -> str:
    """The figure as an inline PNG (``<figure><img src="data:...">``)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, facecolor="white")
    src = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{src}" alt="{html.escape(alt)}">{cap}</figure>'


def _cell(value: Any) -> str:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
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


def _note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def _explanation(expl: Explanation, max_rows: int) -> str:
    parts = []
    n = min(len(expl.values), max_rows)
    about = (f"{html.escape(expl.method or 'attribution')} on {len(expl.values)} row(s)"
             + (f", showing {n}" if n < len(expl.values) else "")
             + "".join(f"; {html.escape(str(k))}={html.escape(str(v))}" for k, v in expl.params.items()
                       if isinstance(v, (int, float, str, bool)) and k not in ("progress",)))
    parts.append(_note(about))
    if expl.kind == "image":
        parts.append(figure_html(plot.images(expl, list(range(n)), ncols=min(n, 8)), alt=expl.method))
    elif expl.kind == "text":
        parts += [plot.text_html(expl, i) for i in range(n)]
    elif expl.kind == "tabular":
        for i in range(n):
            additive = expl.baseline_outputs is not None
            fig = plot.waterfall(expl, i) if additive else plot.explanation(expl, i)
            parts.append(figure_html(fig, alt=f"{expl.method} row {i}"))
    if expl.kind in ("tabular", "text", "sequence") and expl.values.dim() >= 2:
        # one value per feature, token or time step (trailing dimensions summed)
        names = expl.feature_names or [f"x{j}" for j in range(expl.values.shape[1])]
        values = expl.values[:n].detach().cpu().double()
        values = values.reshape(n, values.shape[1], -1).sum(-1)
        rows = [{"feature": str(name), **{f"row {i}": float(values[i, j]) for i in range(n)}}
                for j, name in enumerate(names)]
        parts.append(table_html(rows))
    parts.append(table_html(_explained_rows(expl, n)))
    return "\n".join(parts)


def _explained_rows(expl: Explanation, n: int) -> list[dict[str, Any]]:
    """Per row: the target, the explained output, Σ values and, for additive methods, the gap."""
    total = expl.values[:n].detach().reshape(n, -1).double().sum(1).cpu()
    rows = []
    for i in range(n):
        row = {"row": i, "target": int(expl.target[i]), "output": float(expl.outputs[i]),
               "sum of values": float(total[i])}
        if expl.baseline_outputs is not None:
            row["baseline output"] = float(expl.baseline_outputs[i])
            row["not explained"] = float(expl.outputs[i] - expl.baseline_outputs[i]) - float(total[i])
        rows.append(row)
    return rows


def _callable_bare(item: Any, name: str) -> Any:
    """``item.name`` if it is a method callable with no argument, else ``None``."""
    method = getattr(item, name, None)
    if not callable(method):
        return None
    try:
        sig = inspect.signature(method)
    except (TypeError, ValueError):
        return None
    bare = all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
               for p in sig.parameters.values())
    return method if bare else None


def _scalar(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.dim() == 0
    return isinstance(value, (numbers.Number, str)) or value is None


def _per_row(columns: dict[str, torch.Tensor], max_rows: int) -> str:
    """One table row per input (up to ``max_rows``) from tensors shaped ``(n,)`` or ``(n, k)``;
    a tensor of another length than most is left out."""
    n = Counter(len(v) for v in columns.values()).most_common(1)[0][0]
    shown = min(n, max_rows)
    rows = []
    for i in range(shown):
        row: dict[str, Any] = {"row": i}
        for label, v in columns.items():
            if len(v) == n and v.dim() == 1:
                row[label] = v[i].item()
            elif len(v) == n:
                row.update({f"{label}[{j}]": v[i, j].item() for j in range(v.shape[1])})
        rows.append(row)
    note = _note(f"showing {shown} of {n} rows") if shown < n else ""
    return note + table_html(rows)


def _fields_table(item: Any, max_rows: int) -> str:
    """A dataclass's fields: per-row tensors as one row per input, single values as pairs."""
    columns: dict[str, torch.Tensor] = {}
    single: list[dict[str, Any]] = []
    for f in dataclasses.fields(item):
        value = getattr(item, f.name)
        named = value.items() if isinstance(value, dict) else [("", value)]
        for key, v in named:
            label = f"{f.name}.{key}" if key else f.name
            if isinstance(v, torch.Tensor) and v.dim() in (1, 2) and (v.dim() == 1 or v.shape[1] <= _WIDE):
                columns[label] = v.detach().cpu()
            elif _scalar(v):
                single.append({"name": label, "value": v})
    parts = [_per_row(columns, max_rows)] if columns else []
    if single:
        parts.append(table_html(single))
    return "\n".join(parts)


def _result(item: Any, max_rows: int) -> list[str]:
    """The picture and the table of a result (step 3 of the protocol)."""
    parts = []
    to_svg, to_plot = _callable_bare(item, "to_svg"), _callable_bare(item, "plot")
    if to_svg is not None:
        parts.append(f'<div class="graph">{to_svg()}</div>')
    elif to_plot is not None:
        fig = to_plot()
        if isinstance(fig, Figure):
            parts.append(figure_html(fig, alt=type(item).__name__))
    to_table = _callable_bare(item, "table")
    rows = to_table() if to_table is not None else None
    if rows:
        parts.append(table_html(rows))
    elif dataclasses.is_dataclass(item) and not isinstance(item, type):
        table = _fields_table(item, max_rows)
        if table:
            parts.append(table)
    return parts


def _tensor(value: Any, max_rows: int) -> str:
    t = torch.as_tensor(value).detach().cpu()
    if t.dim() in (1, 2) and t.shape[-1] <= 4 * _WIDE:
        return _per_row({"value" if t.dim() == 1 else "": t}, max_rows)
    finite = t[torch.isfinite(t)].double() if t.is_floating_point() else t.double()
    stats = {"shape": tuple(t.shape), "dtype": str(t.dtype).replace("torch.", "")}
    if finite.numel():
        stats.update(min=float(finite.min()), mean=float(finite.mean()), max=float(finite.max()))
    return table_html([stats])


def _plain(value: Any) -> bool:
    return _scalar(value) or (isinstance(value, (tuple, list)) and all(map(_scalar, value))) or (
        isinstance(value, dict) and all(_plain(v) for v in value.values()))


def render(item: Any, max_rows: int = 8) -> str:
    """HTML for one item (see the module docstring for what is accepted)."""
    if isinstance(item, Figure):
        return figure_html(item)
    if isinstance(item, str):
        return "".join(f"<p>{html.escape(p)}</p>" for p in item.split("\n\n"))
    if isinstance(item, (list, tuple)) and item and all(isinstance(r, dict) for r in item):
        return table_html(item)
    if isinstance(item, (list, tuple)):  # several items under one heading (a caption and its figure, ...)
        return "\n".join(render(part, max_rows) for part in item)
    if isinstance(item, (torch.Tensor, np.ndarray)):
        return _tensor(item, max_rows)
    if isinstance(item, torch.nn.Module):
        return render(weights(item), max_rows)
    if isinstance(item, dict):
        if all(_plain(v) for v in item.values()):
            return table_html(item)
        return "\n".join(f"<h3>{html.escape(str(k))}</h3>\n{render(v, max_rows)}" for k, v in item.items())
    to_html = _callable_bare(item, "to_html")
    if to_html is not None:
        return to_html()
    if isinstance(item, Explanation):
        return _explanation(item, max_rows)
    parts = _result(item, max_rows)
    if not parts and type(item).__str__ is not object.__str__:
        parts.append(f"<pre>{html.escape(str(item))}</pre>")
    if not parts:
        raise InputError(
            f"the report cannot show a {type(item).__name__}: give an Explanation, a matplotlib "
            "Figure, a table (list of dicts or dict), a string, or an object with to_html(), "
            "to_svg(), table() or plot()"
        )
    return "\n".join(parts)
