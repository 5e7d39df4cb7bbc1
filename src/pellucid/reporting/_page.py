"""The HTML page around the report's sections: style, table of contents, click-to-sort tables.

Everything is inline (CSS, the sorting script, pictures as data URIs), so the file opens from disk
with no network. The script makes every ``<table>`` with a header row sortable: a click on a
header sorts by that column (numbers numerically, text alphabetically), a second click reverses.
"""
from __future__ import annotations

import html

__all__ = ["page"]

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 76rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.4; }
nav { background: #f6f6f6; padding: 0.6rem 1rem; border-radius: 6px; }
nav ol { margin: 0.3rem 0; }
section { margin: 2rem 0; border-top: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.55rem; text-align: left; }
th { background: #f0f0f0; cursor: pointer; user-select: none; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img, svg { max-width: 100%; height: auto; }
figure { margin: 1rem 0; }
figcaption, .note { color: #555; }
p.tokens { line-height: 2; }
span.tok { padding: 0.1rem 0.2rem; border-radius: 3px; }
""".strip()

SORT_SCRIPT = """
(function () {
  function key(cell) {
    var t = (cell.getAttribute("data-sort") || cell.textContent).trim();
    var n = parseFloat(t.replace(/,/g, "").replace("\\u2212", "-"));
    return isNaN(n) || !/^[-+\\u2212]?[\\d.,]+(e[-+]?\\d+)?%?$/i.test(t) ? t.toLowerCase() : n;
  }
  function sortBy(table, col, th) {
    var body = table.tBodies[0];
    if (!body) return;
    var rows = Array.prototype.slice.call(body.rows);
    var asc = th.getAttribute("aria-sort") !== "ascending";
    rows.sort(function (a, b) {
      var x = key(a.cells[col]), y = key(b.cells[col]);
      if (typeof x !== typeof y) { x = String(x); y = String(y); }
      return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(th.parentNode.cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
  }
  document.querySelectorAll("table").forEach(function (table) {
    var head = table.tHead ? table.tHead.rows[0] : null;
    if (!head) return;
    Array.prototype.forEach.call(head.cells, function (th, col) {
      th.addEventListener("click", function () { sortBy(table, col, th); });
    });
  });
})();
""".strip()


def page(title: str, intro: str, sections: list[tuple[str, str, str]]) -> str:
    """A whole HTML document: ``sections`` are ``(anchor, escaped heading, body html)``."""
    toc = "\n".join(f'<li><a href="#{a}">{h}</a></li>' for a, h, _ in sections)
    body = "\n".join(f'<section id="{a}"><h2>{h}</h2>\n{b}\n</section>' for a, h, b in sections)
    t = html.escape(title)
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{t}</title><style>{STYLE}</style></head>
<body>
<h1>{t}</h1>
{intro}
<nav><strong>Contents</strong><ol>
{toc}
</ol></nav>
{body}
<script>{SORT_SCRIPT}</script>
</body>
</html>
"""
