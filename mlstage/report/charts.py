"""Charts as inline SVG, drawn with matplotlib.

matplotlib is the standard Python plotting library and writes SVG itself, so a chart is
vector markup inside the page: no JavaScript, no network, prints sharply. Text stays
text (`svg.fonttype: none`), ids are salted with a fixed string and the date is left
out, so the same report is the same bytes. Figures are made with `Figure`, not pyplot:
no global state, no GUI backend.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

CURRENT = "#3b6fb6"
BASELINE = "#e08a3c"
GOOD, BAD = "#3a9a5b", "#c8423b"
SERIES = (CURRENT, BASELINE, "#6a51a3", "#2a9d8f", "#b5179e", "#7f7f7f")
_STYLE = {
    "svg.fonttype": "none",
    "svg.hashsalt": "mlstage",
    "font.size": 9,
    "font.family": "sans-serif",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "legend.frameon": False,
    "legend.fontsize": 8,
}


def _figure(width: float = 4.6, height: float = 2.4, left: float = 0.14):
    import matplotlib

    matplotlib.rcParams.update(_STYLE)
    from matplotlib.figure import Figure

    # Fixed margins: constrained layout would triple the time per chart.
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left, right=0.97, top=0.88, bottom=0.2)
    return fig, fig.subplots()


def _svg(fig, label: str) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    svg = text[text.index("<svg") :]
    # An accessible name for the chart (and a handle for tests).
    return svg.replace("<svg ", f'<svg role="img" aria-label="{_attr(label)}" class="chart" ', 1)


def _attr(text: str) -> str:
    from html import escape

    return escape(str(text), quote=True)


def _short(text: str, n: int = 28) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 1] + "…"


def histogram(
    edges: Sequence[float],
    counts: Sequence[float],
    *,
    label: str,
    title: str = "",
    overlay: tuple[Sequence[float], Sequence[float], str] | None = None,
) -> str:
    """A histogram; with `overlay` (edges, counts, label) both as densities, overlaid."""
    fig, ax = _figure()
    series = [(edges, counts, label, CURRENT)]
    if overlay is not None:
        series.insert(0, (overlay[0], overlay[1], overlay[2], BASELINE))
    for e, c, name, colour in series:
        total = sum(c)
        if overlay is not None and total:
            widths = [max(b - a, 1e-300) for a, b in zip(e[:-1], e[1:], strict=True)]
            c = [x / total / w for x, w in zip(c, widths, strict=True)]
        ax.stairs(c, e, fill=True, alpha=0.45 if overlay else 0.8, color=colour, label=name)
        ax.stairs(c, e, color=colour, linewidth=1)
    ax.set_ylabel("density" if overlay is not None else "rows")
    if title:
        ax.set_title(title, loc="left")
    if overlay is not None:
        ax.legend()
    return _svg(fig, title or label)


def value_bars(
    values: Sequence[tuple[str, float]],
    *,
    label: str,
    title: str = "",
    overlay: tuple[dict[str, float], str] | None = None,
    xlabel: str = "fraction of rows",
) -> str:
    """Horizontal bars of (value, fraction), most frequent on top; `overlay` (a mapping
    value -> fraction, and its name) adds the baseline's bar beside each."""
    names = [_short(v) for v, _ in values]
    fig, ax = _figure(4.6, 0.8 + 0.26 * max(1, len(values)) * (1.6 if overlay else 1), left=0.3)
    ys = list(range(len(values)))
    h = 0.38 if overlay else 0.7
    ax.barh([y + (h / 2 if overlay else 0) for y in ys], [f for _, f in values], height=h,
            color=CURRENT, label=label)  # fmt: skip
    if overlay is not None:
        ax.barh([y - h / 2 for y in ys], [overlay[0].get(v, 0.0) for v, _ in values], height=h,
                color=BASELINE, label=overlay[1])  # fmt: skip
        ax.legend(loc="lower right")
    ax.set_yticks(ys, names)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title, loc="left")
    return _svg(fig, title or label)


def hbars(
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    title: str,
    xlabel: str = "",
    notes: Sequence[str] | None = None,
    threshold: float | None = None,
    colours: Sequence[str] | None = None,
    intervals: Sequence[Sequence[float] | None] | None = None,
) -> str:
    """One horizontal bar per label (e.g. a metric per slice), with an optional note
    after each bar (row counts), a threshold line, and optional confidence intervals
    drawn as whiskers across the bars' ends."""
    vals = [
        v if v is not None and not (isinstance(v, float) and math.isnan(v)) else 0.0 for v in values
    ]
    fig, ax = _figure(4.6, 0.9 + 0.24 * max(1, len(labels)), left=0.36)
    ys = list(range(len(labels)))
    ax.barh(ys, vals, height=0.7, color=list(colours) if colours else CURRENT)
    ax.set_yticks(ys, [_short(x, 34) for x in labels])
    ax.invert_yaxis()
    ends = list(vals)
    for i, span_ in enumerate(intervals or []):
        if span_ is not None and None not in span_:
            lo, hi = float(span_[0]), float(span_[1])
            ax.plot([lo, hi], [ys[i], ys[i]], color="#1d2330", linewidth=1.2,
                    marker="|", markersize=7)  # fmt: skip
            ends[i] = max(ends[i], hi)
    if notes:
        span = max([abs(v) for v in ends] + [1e-12])
        for y, v, note in zip(ys, ends, notes, strict=True):
            ax.text(v + span * 0.01, y, note, va="center", fontsize=7, color="#555")
        ax.set_xlim(right=max(ends + [0]) + span * 0.25)
    if threshold is not None:
        ax.axvline(threshold, color=BAD, linestyle="--", linewidth=1)
    ax.set_xlabel(xlabel)
    ax.set_title(title, loc="left")
    return _svg(fig, title)


def lines(
    series: Sequence[tuple[Sequence[float], Sequence[float], str]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    diagonal: bool = False,
    unit_square: bool = False,
    markers: bool = False,
) -> str:
    """Curves (ROC, PR, calibration, partial dependence), one colour per series."""
    fig, ax = _figure(3.6, 3.0 if unit_square else 2.4, left=0.17)
    for i, (x, y, name) in enumerate(series):
        ax.plot(x, y, color=SERIES[i % len(SERIES)], label=name, linewidth=1.5,
                marker="o" if markers else None, markersize=3)  # fmt: skip
    if diagonal:
        ax.plot([0, 1], [0, 1], color="#999", linestyle=":", linewidth=1)
    if unit_square:
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, loc="left")
    if len(series) > 1 or (series and series[0][2]):
        ax.legend(loc="best")
    return _svg(fig, title)
