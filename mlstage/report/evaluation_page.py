"""The evaluation report: the blessing and its checks, headline metrics (beside the
baseline's), curves, the confusion matrix, slices, fairness, importance and partial
dependence. Everything comes from metrics.json, curves.json and blessing.json."""

from __future__ import annotations

from html import escape
from typing import Any

from ..model.metrics import FAIRNESS
from . import charts
from .page import Section, grid, num, result, table, verdict

HEADLINE = {"classification": "accuracy", "regression": "mae"}


def checks_table(blessing: dict[str, Any]) -> str:
    """Every check of a blessing: value (with its interval), threshold, result."""
    rows, classes = [], []
    for c in blessing["checks"]:
        bound = ", ".join(f"{k} {num(v)}" for k, v in c["threshold"].items())
        value = num(c["value"]) if not isinstance(c["value"], list) else str(c["value"])
        if c.get("kind") == "change" and "baseline_value" in c:
            value = f"{value} (baseline {num(c['baseline_value'])}, change {num(c['change'])})"
        if c.get("interval"):
            lo, hi = c["interval"]
            value += f" [{num(lo)}, {num(hi)}]"
        if c.get("on", "point") != "point":
            bound += f" on the {c['on']} bound"
        rows.append([c["metric"], c["slice"] or "overall", value, bound,
                     result(c["passed"]), c.get("note") or ""])  # fmt: skip
        classes.append("error" if c["passed"] is False else "")
    if not rows:
        return '<p class="muted">no thresholds: blessed by default</p>'
    return table(
        ["metric", "slice", "value", "threshold", "result", "note"], rows, row_classes=classes
    )


def _headline(metrics: dict[str, Any], baseline: tuple[dict[str, Any], str] | None) -> str:
    overall = {k: v for k, v in metrics["overall"].items() if k != "confusion_matrix"}
    other = baseline[0]["overall"] if baseline else None
    spans = metrics.get("intervals") or {}
    level = (metrics.get("bootstrap") or {}).get("level", 0.95)
    headers = ["metric", "model"] + ([f"{level:.0%} interval"] if spans else [])
    headers += [baseline[1], "change"] if other else []
    rows = []
    for k, v in overall.items():
        row = [k, v]
        if spans:
            span = spans.get(k)
            row.append(f"{num(span[0])} – {num(span[1])}" if span else "")
        if other is not None:
            b = other.get(k)
            row += [b, v - b if isinstance(v, int | float) and isinstance(b, int | float) else None]
        rows.append(row)
    return table(headers, rows, numeric={1} | set(range(3 if spans else 2, len(headers))))


def _confusion(metrics: dict[str, Any]) -> str:
    cm = metrics["overall"].get("confusion_matrix")
    classes = metrics.get("classes") or []
    if not cm:
        return ""
    top = max(max(r) for r in cm) or 1
    head = "".join(f"<th>{escape(str(c))}</th>" for c in classes)
    body = []
    for c, row in zip(classes, cm, strict=True):
        cells = "".join(
            f'<td style="background: rgba(59,111,182,{0.08 + 0.8 * v / top:.2f});'
            f'color: {"#fff" if v / top > 0.5 else "#1d2330"}">{v:,}</td>'
            for v in row
        )
        body.append(f"<tr><th>{escape(str(c))}</th>{cells}</tr>")
    return (f'<h3>Confusion matrix</h3><p class="muted">rows: true class; columns: predicted</p>'
            f'<table class="matrix"><thead><tr><th></th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')  # fmt: skip


def _curves(
    curves: dict[str, Any], base_curves: dict[str, Any] | None, base_label: str
) -> list[str]:
    cards = []
    for key, title, x, y, xl, yl in (("roc", "ROC curve", "fpr", "tpr", "false positive rate", "true positive rate"),
                                     ("pr", "Precision-recall curve", "recall", "precision", "recall", "precision")):  # fmt: skip
        for cls, pts in (curves.get(key) or {}).items():
            series = [(pts[x], pts[y], f"model ({cls})")]
            if base_curves and cls in (base_curves.get(key) or {}):
                b = base_curves[key][cls]
                series.append((b[x], b[y], f"{base_label} ({cls})"))
            cards.append(charts.lines(series, title=f"{title}: {cls}", xlabel=xl, ylabel=yl,
                                      diagonal=key == "roc", unit_square=True))  # fmt: skip
    for cls, bins in (curves.get("calibration") or {}).items():
        pts = [b for b in bins if b["mean_predicted"] is not None]
        if pts:
            cards.append(charts.lines(
                [([b["mean_predicted"] for b in pts], [b["fraction_positive"] for b in pts], f"model ({cls})")],
                title=f"Calibration: {cls}", xlabel="mean predicted probability",
                ylabel="fraction positive", diagonal=True, unit_square=True, markers=True))  # fmt: skip
    preds = curves.get("predictions") or {}
    if "edges" in preds:  # regression: one histogram of predictions
        cards.append(charts.histogram(preds["edges"], preds["counts"], label="predictions",
                                      title="Distribution of predictions"))  # fmt: skip
    else:
        for cls, h in preds.items():
            cards.append(charts.histogram(h["edges"], h["counts"], label=cls,
                                          title=f"Predicted probability of {cls}"))  # fmt: skip
    if "residuals" in curves:
        r = curves["residuals"]
        cards.append(
            charts.histogram(
                r["edges"], r["counts"], label="residuals", title="Residuals (prediction - truth)"
            )
        )
    return cards


def _partial_dependence(curves: dict[str, Any]) -> list[str]:
    """One card per column: the average prediction, or one line (bar chart) per class."""
    cards = []
    for pd in curves.get("partial_dependence") or []:
        values, col = pd["values"], pd["column"]
        series = [("", pd["average"])] if pd.get("average") is not None else []
        series += [] if series else list((pd.get("classes") or {}).items())
        numeric = values and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values
        )
        if numeric and series:
            cards.append(charts.lines([(values, ys, name) for name, ys in series],
                                      title=f"Partial dependence: {col}", xlabel=col,
                                      ylabel="average prediction", markers=True))  # fmt: skip
            continue
        for name, ys in series:
            title = f"Partial dependence: {col}" + (f" (P({name}))" if name else "")
            cards.append(charts.hbars([str(v) for v in values], ys, title=title,
                                      xlabel="average prediction"))  # fmt: skip
    return cards


def sections(
    metrics: dict[str, Any],
    curves: dict[str, Any],
    blessing: dict[str, Any],
    baseline: tuple[dict[str, Any], dict[str, Any], str] | None,
) -> list[Section]:
    """`baseline`: (metrics, curves, label) of the evaluation to show beside this one."""
    task = metrics["task"]
    base_metrics = baseline[0] if baseline else None
    label = baseline[2] if baseline else "baseline"
    if base_metrics is None and metrics.get("baseline"):
        base_metrics, label = (
            metrics["baseline"],
            f"baseline model {metrics['baseline']['model'][:12]}",
        )
    summary = (f"<p>{verdict(blessing['blessed'], 'blessed', 'not blessed')} "
               f"model {escape(blessing['model'][:12])} on {num(metrics['rows'])} rows of split "
               f"<b>{escape(str(metrics.get('split', '')))}</b>.</p>")  # fmt: skip
    out = [
        Section("blessing", "Blessing", summary + checks_table(blessing)),
        Section("metrics", "Metrics", _headline(metrics, (base_metrics, label) if base_metrics else None)
                + _confusion(metrics)),
    ]  # fmt: skip
    cards = _curves(curves, baseline[1] if baseline else None, label)
    if cards:
        out.append(Section("curves", "Curves", grid(cards)))
    headline = HEADLINE[task]
    if metrics.get("slices"):
        groups: dict[str, list[dict[str, Any]]] = {}
        for s in metrics["slices"]:
            groups.setdefault(",".join(s["slice"]), []).append(s)
        cards = []
        for spec, items in groups.items():
            cards.append(charts.hbars(
                [s["name"] for s in items], [s["metrics"].get(headline) for s in items],
                title=f"{headline} by {spec}", xlabel=headline,
                notes=[f"n={s['rows']:,}" + ("" if s["gated"] else " (not gated)") for s in items],
                threshold=metrics["overall"].get(headline)))  # fmt: skip
        out.append(
            Section(
                "slices",
                "Slices",
                '<p class="muted">dashed line: the overall value</p>' + grid(cards),
            )
        )
    if metrics.get("fairness"):
        parts = []
        for col, f in metrics["fairness"].items():
            groups = f["groups"]
            disparities = [k for k in FAIRNESS if k in f]
            parts.append(f"<h3>{escape(col)}</h3><p>"
                         + ", ".join(f"{k.replace('_', ' ')} {num(f[k])}" for k in disparities) + "</p>")  # fmt: skip
            keys = [k for k in next(iter(groups.values())) if k != "rows"] if groups else []
            bar = "selection_rate" if task == "classification" else "mae"
            parts.append(grid([charts.hbars(list(groups), [g[bar] for g in groups.values()],
                                             title=f"{bar.replace('_', ' ')} by {col}", xlabel=bar.replace("_", " "),
                                             notes=[f"n={g['rows']:,}" + ("" if g.get("gated", True) else " (not gated)")
                                                    for g in groups.values()])])
                         + table(["group", "rows", *keys], [[k, g["rows"], *[g.get(x) for x in keys]]
                                                            for k, g in groups.items()],
                                 sortable=True, numeric=set(range(1, len(keys) + 2))))  # fmt: skip
        out.append(Section("fairness", "Fairness", "".join(parts)))
    imp = (metrics.get("importance") or {}).get("values") or {}
    if imp:
        names = list(imp)[:20]
        out.append(Section("importance", "Feature importance", grid([charts.hbars(
            names, [imp[n] for n in names], title=f"Permutation importance ({metrics['importance']['metric']} drop)",
            xlabel=f"decrease in {metrics['importance']['metric']}")])))  # fmt: skip
    pd = _partial_dependence(curves)
    if pd:
        out.append(Section("dependence", "Partial dependence", grid(pd)))
    return out
