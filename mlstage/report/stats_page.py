"""The statistics report: an overview table, then one card per column (a histogram or
value bars, overlaid with the reference distribution when there is one, and the drift
measure `validate` would compute)."""

from __future__ import annotations

from html import escape
from typing import Any

from ..validation.drift import THRESHOLD_KEYS
from . import charts
from .page import Section, num, pct, table

TOP_VALUES = 12


def stats_drift(
    cur: dict[str, Any], cur_sketch: dict[str, Any], ref: dict[str, Any]
) -> tuple[str, float] | None:
    """(measure, value) between two splits' statistics, as `validate` measures drift:
    JSD on the reference's quantile buckets (the current split's counts read from its
    quantile summary, within 0.2% of rank) or L-infinity on value frequencies."""
    import numpy as np

    from ..validation.compute import summary_cdf
    from ..validation.drift import baseline_buckets, jensen_shannon, linf

    numeric = ("int", "float")
    if cur["type"] in numeric and ref["type"] in numeric:
        summary = cur_sketch.get("summary") or []
        edges = ref.get("quantile_histogram", {}).get("edges") or []
        if not summary or len(edges) < 2:
            return None
        inner = np.asarray(edges[1:-1], dtype=float)
        # The share of values below each inner edge (validate buckets with side="right").
        below = summary_cdf(summary, np.nextafter(inner, -np.inf))
        finite = cur["count"] - cur.get("nan", 0) - cur.get("inf", 0)
        shares = np.diff(np.concatenate([[0.0], below, [1.0]]))
        q = [float(s * finite) for s in shares] + [cur["missing"] + cur.get("nan", 0)]
        return "jsd", jensen_shannon(baseline_buckets(ref), q)
    if "values" in cur and "values" in ref:
        return "linf", linf(ref, dict(cur["values"]))[0]
    return None


def _chart(
    name: str, col: dict[str, Any], label: str, ref: dict[str, Any] | None, ref_label: str
) -> str:
    if col["type"] in ("int", "float", "date", "datetime") and "histogram" in col:
        h = col["histogram"]
        if len(h["edges"]) < 2 or h["edges"][0] == h["edges"][-1]:
            return (
                f'<p class="muted">a single value: {num(h["edges"][0] if h["edges"] else None)}</p>'
            )
        overlay = None
        if ref is not None and "histogram" in ref and len(ref["histogram"]["edges"]) >= 2:
            overlay = (ref["histogram"]["edges"], ref["histogram"]["counts"], ref_label)
        return charts.histogram(h["edges"], h["counts"], label=label, title=name, overlay=overlay)
    if "values" in col and col["values"]:
        total = col["count"] or 1
        shown = [(str(v), c / total) for v, c in col["values"][:TOP_VALUES]]
        overlay = None
        if ref is not None and "values" in ref:
            rt = ref["count"] or 1
            overlay = ({str(v): c / rt for v, c in ref["values"]}, ref_label)
        return charts.value_bars(shown, label=label, title=name, overlay=overlay)
    return '<p class="muted">no values to draw</p>'


def _key_numbers(col: dict[str, Any], rows: int) -> str:
    pairs = [("type", col["type"]), ("present", pct(col["count"] / rows) if rows else "—"),
             ("missing", f"{num(col['missing'])} ({pct(col['missing'] / rows) if rows else '—'})")]  # fmt: skip
    if "mean" in col:
        q = col.get("quantiles", {})
        pairs += [("mean", num(col["mean"])), ("std", num(col["std"])), ("min", num(col["min"])),
                  ("median", num(q.get("0.5"))), ("max", num(col["max"])), ("zeros", num(col.get("zeros")))]  # fmt: skip
    elif "unique" in col:
        pairs += [("unique", num(col["unique"]))]
        if col.get("values"):
            top, n = col["values"][0]
            pairs.append(
                ("most frequent", f"{top} ({pct(n / col['count']) if col['count'] else '—'})")
            )
    elif "min" in col:
        pairs += [("min", num(col["min"])), ("max", num(col["max"]))]
    return table([], [[k, v] for k, v in pairs], cls="kv").replace("<thead><tr></tr></thead>", "")


def sections(
    doc: dict[str, Any],
    sketches: dict[str, Any],
    *,
    current: str,
    reference: tuple[dict[str, Any], str] | None,
    thresholds: dict[str, float],
) -> list[Section]:
    """The sections for split `current` of a stats document, against `reference`
    (a split's statistics and its label) when given."""
    split = doc["splits"][current]
    rows = split["rows"]
    ref_split, ref_label = reference if reference else (None, "")
    cur_sk = sketches.get("splits", {}).get(current, {}).get("columns", {})
    overview, cards = [], []
    for name, col in split["columns"].items():
        ref = (ref_split or {}).get("columns", {}).get(name)
        drift = stats_drift(col, cur_sk.get(name, {}), ref) if ref else None
        limit = thresholds.get(THRESHOLD_KEYS[drift[0]]) if drift else None
        flagged = drift is not None and limit is not None and drift[1] > limit
        centre = num(col.get("mean")) if "mean" in col else f"{num(col.get('unique'))} values"
        overview.append([
            ("html", f'<a href="#col-{_anchor(name)}">{escape(name)}</a>'), col["type"],
            (pct(col["missing"] / rows) if rows else "—", col["missing"] / rows if rows else 0),
            centre,
            (f"{drift[0]} {num(drift[1], 3)}" if drift else "—", drift[1] if drift else -1),
            ("html", '<span class="fail">drift</span>' if flagged else ""),
        ])  # fmt: skip
        measure = ""
        if drift:
            cls = "fail" if flagged else "ok"
            measure = (f'<p>drift against {escape(ref_label)}: <span class="{cls}">{drift[0].upper()} '
                       f'{num(drift[1], 3)}</span>{f" (threshold {num(limit)})" if limit is not None else ""}</p>')  # fmt: skip
        cards.append(
            f'<div class="card" id="col-{_anchor(name)}"><h3>{escape(name)}</h3>'
            f"{_chart(name, col, current, ref, ref_label)}{measure}{_key_numbers(col, rows)}</div>"
        )
    against = f" against {ref_label}" if reference else ""
    head = (f"<p>{num(rows)} rows, {len(split['columns'])} columns in split "
            f"<b>{escape(current)}</b>{escape(against)}. Click a header to sort.</p>")  # fmt: skip
    overview_html = head + table(
        ["column", "type", "missing", "mean / unique", "drift", ""],
        overview,
        sortable=True,
        numeric={2, 4},
    )
    slices = split.get("slices") or {}
    out = [
        Section("overview", "Overview", overview_html),
        Section("columns", "Columns", f'<div class="grid">{"".join(cards)}</div>'),
    ]
    if slices:
        out.append(Section("slices", "Slices", table(
            ["slice", "rows", "share"],
            [[k, v["rows"], pct(v["rows"] / rows) if rows else "—"] for k, v in slices.items()],
            sortable=True, numeric={1, 2})))  # fmt: skip
    return out


def _anchor(name: str) -> str:
    import hashlib

    return hashlib.sha1(str(name).encode()).hexdigest()[:10]
