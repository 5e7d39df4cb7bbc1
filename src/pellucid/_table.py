"""One plain-text table renderer for every result's ``__str__``.

Results keep their table as rows of dictionaries (``table() -> list[dict]``, what pandas, the
report and a test read); :func:`text_table` lays such rows out as aligned text: numbers
right-aligned, floats to ``digits`` significant figures, ``None``/NaN as ``-``.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["text_table", "format_cell"]


def format_cell(value: Any, digits: int = 4) -> str:
    """One cell as text: floats to ``digits`` significant figures, ``None``/NaN as ``-``, shapes
    (tuples of ints) as ``8x8``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, int) for v in value):
        return "x".join(map(str, value))
    return str(value)


def _numeric(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def text_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    formats: Mapping[str, Callable[[Any], str]] | None = None,
    digits: int = 4,
    title: str | None = None,
    max_rows: int | None = None,
) -> str:
    """``rows`` as an aligned text table.

    ``columns`` picks and orders the keys (default: the first row's); ``headers`` renames them
    for display; ``formats`` gives a column its own formatter (``{"dead": "{:.1%}".format}``).
    A column whose every value is a number (or missing) is right-aligned. ``title`` goes on a
    line of its own above the table; beyond ``max_rows`` rows a last line says how many more
    there are; no rows at all print ``(none)``.
    """
    if not rows:
        return "\n".join(([title] if title else []) + ["(none)"])
    more = len(rows) - max_rows if max_rows is not None and len(rows) > max_rows else 0
    rows = rows[: len(rows) - more]
    columns = list(columns if columns is not None else (rows[0].keys() if rows else ()))
    headers = headers or {}
    formats = formats or {}
    head = [headers.get(c, c.replace("_", " ")) for c in columns]
    cells = [
        [formats[c](r.get(c)) if c in formats and r.get(c) is not None else format_cell(r.get(c), digits)
         for c in columns]
        for r in rows
    ]
    right = [bool(rows) and all(_numeric(r.get(c)) for r in rows) for c in columns]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(head)]

    def line(parts: Sequence[str]) -> str:
        return "  ".join(p.rjust(w) if right[i] else p.ljust(w)
                         for i, (p, w) in enumerate(zip(parts, widths))).rstrip()

    out = [title] if title else []
    out += [line(head), line(["-" * w for w in widths])] + [line(row) for row in cells]
    if more:
        out.append(f"... ({more} more rows)")
    return "\n".join(out)
