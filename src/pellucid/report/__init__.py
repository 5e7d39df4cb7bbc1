"""``pellucid.report``: one self-contained HTML file from explanations, structures, tables and plots.

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
import sys
import types
from pathlib import Path
from typing import Any, Iterable

from ..errors import InputError
from ._items import figure_html, render, table_html
from ._page import page

__all__ = ["report", "figure_html", "table_html"]


def _heading(item: Any) -> str:
    from ..explanation import Explanation

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
    ``{heading: item}``. An item is an :class:`~pellucid.Explanation` (up to ``max_rows`` rows are
    drawn), a matplotlib Figure, a table (list of dicts, dict), a string, or any result with
    ``to_html()``, ``to_svg()``, ``table()`` or ``plot()`` (structures, weights, comparisons,
    monitors, attack curves). Pictures are embedded; the page needs no network. Every table sorts
    when its header is clicked. All user strings are HTML-escaped.
    """
    pairs = list(items.items()) if isinstance(items, dict) else list(items)
    if not pairs:
        raise InputError("report needs at least one item")
    sections = []
    used: set[str] = set()
    for entry in pairs:
        heading, item = entry if (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str)) \
            else (_heading(entry), entry)
        anchor = re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-") or "section"
        base, k = anchor, 2
        while anchor in used:
            anchor, k = f"{base}-{k}", k + 1
        used.add(anchor)
        sections.append((anchor, html.escape(heading), render(item, max_rows)))
    from .. import __version__

    intro = f'<p class="note">Made by pellucid {html.escape(__version__)}.</p>'
    if description:
        intro = "".join(f"<p>{html.escape(p)}</p>" for p in description.split("\n\n")) + intro
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page(title or "pellucid report", intro, sections), encoding="utf-8")
    return path


class _CallableModule(types.ModuleType):
    """``pellucid.report`` is this package *and* the function: ``pellucid.report(items, path)``."""

    def __call__(self, *args: Any, **kwargs: Any) -> Path:
        return report(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
