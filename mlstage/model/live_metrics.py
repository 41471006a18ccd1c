"""Live metrics for `monitor`: feedback labels that arrived later, joined to the logged
predictions on the request id (and `row`), scored with scikit-learn's metrics beside the
evaluation's, and gated by its absolute thresholds."""

from __future__ import annotations

from typing import Any

from ..errors import BadInput, opt


def live_metrics(
    frame,
    feedback,
    join: list[str],
    label: str,
    metrics: dict[str, Any],
    cfg: dict[str, Any],
    ref: str,
) -> dict[str, Any]:
    """Join feedback labels to the logged predictions; metrics and the evaluation's thresholds."""
    import polars as pl

    from ..model import metrics as ev
    from ..model.gate import bound_checks

    for col in join:
        for side, table, where in (("requests", frame, None), ("feedback", feedback, ref)):
            if col not in table.columns:
                raise BadInput(f"{opt('join')} {col}: no such column in the {side}", file=where)
    if label not in feedback.columns:
        raise BadInput(f'no column "{label}" (the label the model predicts)', file=ref)
    from ..core.missing import missing_as_null

    keys = [pl.col(c).cast(pl.String) for c in join]
    # feedback without a label (null, or NaN) says nothing: left out and counted
    fb = feedback.select(*keys, missing_as_null(label, feedback.schema[label]).alias("__label"))
    unlabelled = fb["__label"].null_count()
    fb = fb.filter(pl.col("__label").is_not_null())
    dup = fb.group_by(join).len().filter(pl.col("len") > 1)
    if dup.height:
        raise BadInput(
            f"feedback for {dict(zip(join, dup.row(0)[:-1], strict=True))} appears {dup.row(0)[-1]} times"
            + (
                f" (add {opt('join')} row: a request of several rows has one label per row)"
                if "row" not in join
                else ""
            ),
            file=ref,
        )
    logged = frame.with_columns(*keys)
    many = logged.group_by(join).len().filter(pl.col("len") > 1)
    if many.height:
        hint = f" (add {opt('join')} row)" if "row" in frame.columns and "row" not in join else ""
        raise BadInput(
            f"{dict(zip(join, many.row(0)[:-1], strict=True))} matches {many.row(0)[-1]} logged rows:"
            f" the join columns must name one request row{hint}",
            file=ref,
        )
    joined = logged.join(fb, on=join, how="inner")
    out: dict[str, Any] = {
        "feedback_rows": fb.height,
        "unlabelled_rows": unlabelled,
        "joined": joined.height,
        "metrics": None,
        "checks": [],
    }
    if joined.height == 0:
        out["note"] = "no feedback label matches a logged request"
        return out
    classes, positive = metrics.get("classes") or [], metrics.get("positive")
    proba = None
    if metrics["task"] == "classification" and all(f"proba_{c}" in joined.columns for c in classes):
        proba = joined.select([f"proba_{c}" for c in classes]).to_numpy()
    y_true = joined["__label"].to_list()
    outcome = ev.Outcomes(
        metrics["task"], y_true, joined["prediction"].to_list(), proba, classes, positive
    )
    if metrics["task"] == "classification" and (outcome.y < 0).any():
        unknown = sorted({str(v) for v, i in zip(y_true, outcome.y, strict=True) if i < 0})[:5]
        raise BadInput(
            f"label values the model has no class for: {', '.join(unknown)}", file=ref, column=label
        )
    live = ev.overall(outcome)
    out["metrics"] = live
    out["evaluation"] = metrics["overall"]
    for metric, spec in cfg.get("thresholds", {}).items():
        if metric in ev.FAIRNESS:
            continue  # needs the sensitive columns, which logs usually exclude
        value = live.get(metric)
        for check in bound_checks(
            metric,
            value,
            spec,
            uncomputable="skip",
            uncomputable_note="not computable on the joined rows",
        ):
            out["checks"].append({"metric": metric, "value": value,
                                  "evaluation_value": metrics["overall"].get(metric),
                                  "threshold": check["threshold"], "passed": check["passed"],
                                  "note": check["note"]})  # fmt: skip
    return out
