"""One self-contained HTML file from explanations, structures, tables and plots.

:func:`report` is also ``pellucid.report``: ``pellucid.report(items, path)``.

>>> import torch, pellucid, tempfile, os
>>> net = torch.nn.Linear(3, 2)
>>> e = pellucid.integrated_gradients(net, torch.rand(2, 3), steps=4)
>>> path = pellucid.report([e, ("the model", pellucid.inspect.structure(net, torch.zeros(1, 3)))],
...                        os.path.join(tempfile.mkdtemp(), "r.html"), title="tiny")
>>> path.read_text().count("<section")
2
"""
from __future__ import annotations

import html
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .._common import check_positive_int
from .._version import __version__
from ..errors import InputError
from ..explanation import Explanation
from ._items import figure_html, render, table_html
from ._page import page

__all__ = ["report", "figure_html", "table_html"]


def _heading(item: Any) -> str:
    if isinstance(item, Explanation):
        return f"{item.method or 'attribution'}"
    name = getattr(item, "model", None)
    if isinstance(name, str):
        return f"{type(item).__name__} of {name}"
    return type(item).__name__


def report(
    items: Iterable[Any] | dict[str, Any], path: str | Path, *, title: str | None = None,
    description: str | None = None, max_rows: int = 8,
) -> Path:
    """Write ``items`` to ``path`` as one HTML page with a table of contents; returns the path.

    ``items``: a list whose entries are items or ``(heading, item)`` pairs, or a dict
    ``{heading: item}``. An item is any result pellucid returns — an :class:`~pellucid.Explanation`
    (up to ``max_rows`` rows are drawn), a structure, weights, a monitor, statistics, an attack, a
    score, a comparison, a simplification report, ... — or a matplotlib Figure, a table (list of
    dicts, dict), a string, or a list of these; any object with ``to_html()``, ``to_svg()``,
    ``table()`` or ``plot()`` works too (see :mod:`pellucid.reporting._items` for the protocol).
    Pictures are embedded; the page needs no network. Every table sorts when its header is
    clicked. All user strings are HTML-escaped.
    """
    max_rows = check_positive_int(max_rows, "max_rows")
    pairs = list(items.items()) if isinstance(items, dict) else list(items)
    if not pairs:
        raise InputError("report needs at least one item")
    sections = []
    used: set[str] = set()
    for entry in pairs:
        paired = isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str)
        heading, item = entry if paired else (_heading(entry), entry)
        anchor = re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-") or "section"
        base, k = anchor, 2
        while anchor in used:
            anchor, k = f"{base}-{k}", k + 1
        used.add(anchor)
        sections.append((anchor, html.escape(heading), render(item, max_rows)))
    intro = f'<p class="note">Made by pellucid {html.escape(__version__)}.</p>'
    if description:
        intro = "".join(f"<p>{html.escape(p)}</p>" for p in description.split("\n\n")) + intro
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page(title or "pellucid report", intro, sections), encoding="utf-8")
    return path
