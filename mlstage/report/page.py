"""The HTML page around a report: one file, styles and a little script inline.

No network at view time: no CDN, no web fonts, no external images. The only script
makes tables with class `sortable` sortable by a click on their header; everything
reads and prints without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Any

CSS = """
:root { --fg:#1d2330; --muted:#5d6675; --line:#d9dde5; --bg:#fff; --soft:#f4f6f9;
        --good:#2e7d4f; --bad:#b3261e; --warn:#9a6700; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       background: var(--bg); margin: 0; }
header { padding: 18px 28px 10px; border-bottom: 1px solid var(--line); }
header h1 { font-size: 20px; margin: 0 0 4px; }
header p { margin: 0; color: var(--muted); }
nav { padding: 8px 28px; border-bottom: 1px solid var(--line); background: var(--soft);
      position: sticky; top: 0; z-index: 1; }
nav a { margin-right: 14px; color: var(--fg); text-decoration: none; font-weight: 500; }
main { padding: 8px 28px 40px; max-width: 1180px; }
section { margin-top: 22px; }
h2 { font-size: 17px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 14px; margin: 16px 0 6px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 14px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; break-inside: avoid; }
.card h3 { margin-top: 0; }
svg.chart { width: 100%; height: auto; max-width: 520px; display: block; }
table { border-collapse: collapse; margin: 6px 0; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 10px 3px 0; text-align: left;
         vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: var(--muted); font-size: 11px; }
.pass, .ok { color: var(--good); font-weight: 600; }
.fail, .error { color: var(--bad); font-weight: 600; }
.warning, .skipped { color: var(--warn); font-weight: 600; }
tr.error td { background: #fdecea; }
tr.warning td { background: #fff6dc; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 12px; color: #fff; font-weight: 600; }
.badge.pass { background: var(--good); color: #fff; }
.badge.fail { background: var(--bad); color: #fff; }
.muted { color: var(--muted); }
.kv td:first-child { color: var(--muted); padding-right: 16px; }
table.matrix td { text-align: center; min-width: 64px; border: 1px solid #fff; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; word-break: break-all; }
ul.tree, ul.tree ul { list-style: none; margin: 0; padding-left: 18px; }
ul.tree { padding-left: 0; }
ul.tree li { margin: 3px 0; }
ul.tree ul { border-left: 1px solid var(--line); margin-left: 6px; }
.facts p { margin: 4px 0; white-space: pre-wrap; }
.facts ul { margin: 4px 0; padding-left: 20px; }
@media print {
  nav { display: none; }
  body { font-size: 11px; }
  main, header { padding-left: 0; padding-right: 0; }
  .card, tr, svg { break-inside: avoid; }
  section { break-before: auto; }
}
"""

SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var asc = th.getAttribute("data-order") !== "asc";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("data-order"); });
      th.setAttribute("data-order", asc ? "asc" : "desc");
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute("data-v") || a.cells[col].textContent;
        var y = b.cells[col].getAttribute("data-v") || b.cells[col].textContent;
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


@dataclass
class Section:
    id: str
    title: str
    html: str


def num(x: Any, digits: int = 4) -> str:
    """A number as people read it; text as is."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if math.isnan(x):
            return "NaN"
        if x != 0 and (abs(x) >= 1e6 or abs(x) < 1e-3):
            return f"{x:.{digits - 1}e}"
        return f"{x:.{digits}g}"
    return str(x)


def pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}" if x >= 0.001 or x == 0 else f"{x:.2%}"


def table(
    headers: list[str],
    rows: list[list[Any]],
    *,
    sortable: bool = False,
    numeric: set[int] | None = None,
    row_classes: list[str] | None = None,
    cls: str = "",
) -> str:
    """An HTML table. Cells are escaped text, or ("html", markup) for trusted markup,
    or (text, sort_value) to sort by a number other than the text."""
    numeric = numeric or set()
    classes = " ".join(c for c in (cls, "sortable" if sortable else "") if c)
    out = [f'<table class="{classes}">' if classes else "<table>", "<thead><tr>"]
    for i, h in enumerate(headers):
        out.append(f"<th{' class=num' if i in numeric else ''}>{escape(h)}</th>")
    out.append("</tr></thead><tbody>")
    for r, row in enumerate(rows):
        rc = row_classes[r] if row_classes else ""
        out.append(f'<tr class="{rc}">' if rc else "<tr>")
        for i, cell in enumerate(row):
            attrs = " class=num" if i in numeric else ""
            if isinstance(cell, tuple) and cell[0] == "html":
                text = cell[1]
            elif isinstance(cell, tuple):
                text = escape(str(cell[0]))
                attrs += f' data-v="{escape(str(cell[1]))}"'
            else:
                text = escape(num(cell) if not isinstance(cell, str) else cell)
            out.append(f"<td{attrs}>{text}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def grid(cards: list[str]) -> str:
    """Charts (or any blocks) as cards in a responsive grid."""
    return '<div class="grid">' + "".join(f'<div class="card">{c}</div>' for c in cards) + "</div>"


def result(passed: bool | None) -> tuple[str, str]:
    """A check's result as a table cell: pass, fail, or skipped (not gated)."""
    word = {True: "pass", False: "fail", None: "skipped"}[passed]
    return ("html", f'<span class="{word}">{word}</span>')


def verdict(ok: bool, yes: str, no: str) -> str:
    return f'<span class="badge {"pass" if ok else "fail"}">{escape(yes if ok else no)}</span>'


# Marks a page as mlstage's own: `report -o FILE` replaces only such a file.
GENERATOR = "mlstage report"


def render(title: str, subtitle: str, sections: list[Section]) -> str:
    nav = "".join(f'<a href="#{s.id}">{escape(s.title)}</a>' for s in sections)
    body = "".join(
        f'<section id="{s.id}"><h2>{escape(s.title)}</h2>{s.html}</section>' for s in sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="generator" content="{GENERATOR}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main><script>{SORT_JS}</script></body></html>\n"
    )
