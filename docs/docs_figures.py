"""Pictures for the docs pages, made while the docs build (imported by the pages' code blocks).

`figure(x)` is the HTML a markdown-exec block with `html="1"` prints to put `x` on the page: a
matplotlib Figure as an inline base64 PNG, or anything with `to_svg()` (a structure graph) as
inline SVG. The pages call it on a line hidden from the reader,
`print(figure(fig, "alt text"))  # markdown-exec: hide`. Nothing is written to docs/, so no
picture on a page can go stale.
"""
from __future__ import annotations

import base64
import html
import io
from typing import Any


def figure(obj: Any, alt: str = "", *, width: int | None = None, dpi: int = 96) -> str:
    """``obj`` as HTML: a Figure as ``<img>`` (PNG at ``dpi``), else its ``to_svg()``."""
    style = f"width:{width}px;max-width:100%" if width else "max-width:100%"
    if hasattr(obj, "savefig"):
        buffer = io.BytesIO()
        obj.savefig(buffer, format="png", dpi=dpi, facecolor="white", bbox_inches="tight")
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" style="{style}">'
    if hasattr(obj, "to_svg"):
        return f'<div class="pellucid-svg" style="{style}">{obj.to_svg()}</div>'
    raise TypeError(f"figure() draws Figures and objects with to_svg(), not {type(obj).__name__}")
