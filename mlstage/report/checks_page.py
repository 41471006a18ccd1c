"""The anomalies and monitor reports: what was found, coloured by severity, the drift
measured per column against its threshold, and for drifted columns the two
distributions overlaid (summaries computed here; no row is copied into the page)."""

from __future__ import annotations

from html import escape
from typing import Any

from ..validation.drift import THRESHOLD_KEYS
from . import charts
from .page import Section, grid, num, result, table, verdict


def anomalies_table(anomalies: list[dict[str, Any]]) -> str:
    if not anomalies:
        return '<p class="ok">no anomalies</p>'
    rows = [[a["split"], a["column"] or "", a["type"], ("html", f'<span class="{a["severity"]}">{a["severity"]}</span>'),
             a["description"], num(a.get("value")) if not isinstance(a.get("value"), list) else str(a["value"]),
             num(a.get("threshold")) if not isinstance(a.get("threshold"), list) else str(a["threshold"])]
            for a in anomalies]  # fmt: skip
    return table(["split", "column", "type", "severity", "description", "value", "threshold"], rows,
                 sortable=True, row_classes=[a["severity"] for a in anomalies])  # fmt: skip


def drift_bars(drift: dict[str, dict[str, Any]], title: str, thresholds: dict[str, Any]) -> str:
    """One bar per column: its gating measure (JSD or L-infinity; a numeric column's mean
    shift, SMD, in the note) and its tests' p-values, red when it drifted (past a
    threshold and significant)."""
    names, values, notes, colours = [], [], [], []
    for col, m in sorted(drift.items(), key=lambda kv: -_gating(kv[1])[1]):
        metric, value = _gating(m)
        p = m.get("p_value")
        note = f"{metric} {value:.3f}" + (f", {m.get('test')} p {p:.2g}" if p is not None else "")
        if m.get("smd") is not None:
            pm = m.get("mean_p_value")
            note += f"; mean shift {m['smd']:.3f} sd" + (
                f", welch p {pm:.2g}" if pm is not None else ""
            )
        names.append(col)
        values.append(value)
        notes.append(note)
        colours.append(charts.BAD if _drifted(m, metric, value, thresholds) else charts.CURRENT)
    if not names:
        return '<p class="muted">no drift measured</p>'
    return charts.hbars(names, values, title=title, xlabel="drift (JSD for numbers, L-infinity for categories)",
                        notes=notes, colours=colours)  # fmt: skip


def _drifted(m: dict[str, Any], metric: str, value: float, thresholds: dict[str, Any]) -> bool:
    """What the checker decided (`drifted`); files written before it recorded that: the
    gating measure past its threshold and its test significant."""
    if "drifted" in m:
        return bool(m["drifted"])
    limit = thresholds.get(THRESHOLD_KEYS[metric])
    p, alpha = m.get("p_value"), m.get("significance")
    return limit is not None and value > limit and (p is None or alpha is None or p < alpha)


def _gating(m: dict[str, Any]) -> tuple[str, float]:
    if "jsd" in m:
        return "jsd", m["jsd"] or 0.0
    return "linf", m.get("linf") or 0.0


def _overlay(column: str, data_values, base: dict[str, Any], split: str) -> str:
    """The data's distribution of `column` over the baseline's (from its statistics)."""
    import numpy as np
    import polars as pl

    s = data_values.drop_nulls()
    if base["type"] in ("int", "float") and s.dtype.is_numeric():
        v = s.cast(pl.Float64).to_numpy()
        v = v[np.isfinite(v)]
        if v.size == 0 or "histogram" not in base:
            return ""
        counts, edges = np.histogram(v, bins=30)
        h = base["histogram"]
        return charts.histogram(edges.tolist(), counts.tolist(), label=split, title=column,
                                overlay=(h["edges"], h["counts"], "baseline"))  # fmt: skip
    vc = s.cast(pl.String).value_counts(sort=True)
    total = s.len() or 1
    shown = [(str(v), c / total) for v, c in vc.head(12).iter_rows()]
    bt = base["count"] or 1
    return charts.value_bars(shown, label=split, title=column,
                             overlay=({str(v): c / bt for v, c in base.get("values", [])}, "baseline"))  # fmt: skip


def anomalies_sections(doc: dict[str, Any], manifest: dict[str, Any], st) -> list[Section]:
    errors = sum(a["severity"] == "error" for a in doc["anomalies"])
    head = (f"<p>{verdict(doc['ok'], 'ok', 'anomalies found')} {errors} errors, "
            f"{len(doc['anomalies']) - errors} warnings, environment "
            f"<b>{escape(doc.get('environment', 'training'))}</b>.</p>")  # fmt: skip
    out = [Section("anomalies", "Anomalies", head + anomalies_table(doc["anomalies"]))]
    drift = doc.get("drift") or {}
    thresholds = _schema_drift(manifest, st)
    if any(drift.values()):
        out.append(Section("drift", "Drift", grid(
            [drift_bars(d, f"Drift of split {split} against the baseline", thresholds) for split, d in drift.items() if d])))  # fmt: skip
    drifted = [
        (a["split"], a["column"]) for a in doc["anomalies"] if a["type"] in ("drift", "label_drift")
    ]
    if drifted:
        out.append(Section("drifted", "Drifted columns", _drifted_cards(drifted, manifest, st)))
    return out


def _drifted_cards(drifted: list[tuple[str, str]], manifest: dict[str, Any], st) -> str:
    import polars as pl

    from ..data.splits import splits_of
    from ..errors import MlstageError
    from ..validation.statsfile import training_stats

    ids = {i["role"]: i["id"] for i in manifest["inputs"]}
    try:
        data_path, data_manifest = st.load(f"@{ids['data']}")
        base, _ = training_stats(st, f"@{ids['baseline']}", "baseline")
    except (MlstageError, KeyError):
        return '<p class="muted">the data or the baseline is no longer in the store: no distributions to draw</p>'
    splits = splits_of(data_path, data_manifest)
    cards = []
    for split, column in dict.fromkeys(drifted):
        if split in splits and column in base["columns"]:
            values = pl.read_parquet(splits[split].parts, columns=[column]).to_series()
            cards.append(_overlay(column, values, base["columns"][column], split))
    return grid([c for c in cards if c])


def _schema_drift(manifest: dict[str, Any], st) -> dict[str, Any]:
    """The drift thresholds of the schema the artifact was checked with (the defaults
    `schema` writes when there was none, or it is no longer in the store)."""
    import json

    from ..errors import MlstageError
    from ..validation.schema_rules import DEFAULT_DRIFT

    schema_id = next((i["id"] for i in manifest["inputs"] if i["role"] == "schema"), None)
    if schema_id is None:
        return DEFAULT_DRIFT
    try:
        path, _ = st.load(f"@{schema_id}")
        return json.loads((path / "schema.json").read_text()).get("drift", {})
    except (MlstageError, OSError, ValueError):
        return DEFAULT_DRIFT


def monitor_sections(doc: dict[str, Any], manifest: dict[str, Any], st) -> list[Section]:
    req = doc["requests"]
    w = req.get("window")
    span = f"from {w['since']} to {w['until']} ({w['length']})" if w else "all logged requests"
    reasons = "".join(f"<li>{escape(r)}</li>" for r in doc["reasons"])
    head = (f"<p>{verdict(not doc['retrain'], 'no retraining needed', 'retraining called for')}</p>"
            + (f"<ul>{reasons}</ul>" if reasons else ""))  # fmt: skip
    info = table(["", ""], [["requests", req["rows"]], ["window", span], ["files", req["files"]],
                            ["model", req.get("model") or "—"],
                            ["versions", ", ".join(f"v{k}: {n:,}" for k, n in (req.get("versions") or {}).items()) or "—"],
                            ["first / last", f"{req.get('first') or '—'} / {req.get('last') or '—'}"]],
                 cls="kv").replace("<thead><tr><th></th><th></th></tr></thead>", "")  # fmt: skip
    out = [Section("verdict", "Verdict", head + info),
           Section("anomalies", "Input anomalies (serving environment)", anomalies_table(doc["anomalies"]))]  # fmt: skip
    thresholds = _schema_drift(manifest, st)
    if doc.get("drift"):
        out.append(Section("drift", "Drift over the window", grid([drift_bars(doc["drift"], "Drift per column against training", thresholds)])
                           + table(["column", "measures"], [[c, ", ".join(f"{k} {num(v, 3)}" for k, v in m.items() if isinstance(v, float))]
                                                             for c, m in doc["drift"].items()], sortable=True)))  # fmt: skip
    preds = doc.get("predictions")
    if preds and preds.get("measures"):
        cards = []
        for name, m in preds["measures"].items():
            flag = "fail" if name in preds["drifted"] else "ok"
            caption = f'<p>{m["metric"].upper()} <span class="{flag}">{num(m["value"], 3)}</span> (threshold {num(m["threshold"])})</p>'
            if "frequencies" in m:
                f = m["frequencies"]
                chart = charts.value_bars([(c, v["live"]) for c, v in f.items()], label="live", title="Predicted classes",
                                          overlay=({c: v["evaluation"] for c, v in f.items()}, "evaluation"))  # fmt: skip
            else:
                chart = charts.histogram(m["edges"], m["live"], label="live", title=name,
                                         overlay=(m["edges"], m["evaluation"], "evaluation"))  # fmt: skip
            cards.append(chart + caption)
        out.append(Section("predictions", "Predictions against the evaluation", grid(cards)))
    est = doc.get("estimated")
    if est and est.get("metrics"):
        text = (
            f"<p>Estimated by {escape(est['method'])} from the model's own probabilities on"
            f" {est['rows']:,} requests, before any label: {escape(est.get('calibration') or '')}.</p>"
        )
        text += table(["metric", "estimated", "threshold", "result"],
                      [[m, v, ", ".join(f"{k} {num(x)}" for k, x in c["threshold"].items()) if c else "",
                        result(c["passed"]) if c else ""]
                       for m, v in est["metrics"].items()
                       for c in [next((c for c in est.get("checks", []) if c["metric"] == m), None)]],
                      numeric={1})  # fmt: skip
        out.append(Section("estimated", "Performance estimated before labels", text))
    elif est and est.get("note"):
        out.append(Section("estimated", "Performance estimated before labels",
                           f'<p class="muted">{escape(est["note"])}</p>'))  # fmt: skip
    live = doc.get("live")
    if live:
        text = f"<p>{live['joined']:,} of {live['feedback_rows']:,} feedback labels joined to logged requests.</p>"
        if live.get("metrics"):
            ev = live.get("evaluation") or {}
            text += table(["metric", "live", "evaluation"],
                          [[k, v, ev.get(k)] for k, v in live["metrics"].items() if k != "confusion_matrix"],
                          numeric={1, 2})  # fmt: skip
        if live["checks"]:
            rows = [[c["metric"], c["value"], c.get("evaluation_value"), ", ".join(f"{k} {num(v)}" for k, v in c["threshold"].items()),
                     result(c["passed"])]
                    for c in live["checks"]]  # fmt: skip
            text += "<h3>Thresholds</h3>" + table(["metric", "live", "evaluation", "threshold", "result"], rows,
                                                  row_classes=["error" if c["passed"] is False else "" for c in live["checks"]])  # fmt: skip
        out.append(Section("live", "Live metrics from feedback", text))
    return out
