"""Drift of a served model's predictions against its evaluation's, for `monitor`: the
predicted class mix (L-infinity) and the positive class's probability histogram (JSD on
the evaluation's 20 bins) for classification, the prediction histogram for regression;
each also tested (chi-squared on the counts), and drifted only when the effect passes
its threshold and the test rejects, as column drift is."""

from __future__ import annotations

from typing import Any

DEFAULT_PREDICTION_LINF = 0.1
DEFAULT_PREDICTION_JSD = 0.1


def prediction_drift(frame, metrics: dict[str, Any], curves: dict[str, Any], rules) -> dict:
    """Live predictions against the evaluation's: measures, thresholds, and what drifted."""
    import numpy as np
    import polars as pl

    from ..core.hashing import canonical_text
    from ..validation.drift import DEFAULT_SIGNIFICANCE, chi2_p_value, jensen_shannon

    drift_cfg = rules.get("drift", {})
    jsd_limit = drift_cfg.get("numeric_jsd", DEFAULT_PREDICTION_JSD)
    # both prediction measures share the significance level (Bonferroni), as columns do
    alpha = drift_cfg.get("significance", DEFAULT_SIGNIFICANCE) / 2
    out: dict[str, Any] = {"rows": frame.height, "measures": {}, "drifted": []}
    if "prediction" not in frame.columns or frame.height == 0:
        return out

    def significant(name: str, evaluation: list, live: list) -> bool:
        """A chi-squared test of the live counts against the evaluation's (per class or
        per bin): the measure's record gets its p-value; True when it rejects."""
        base = {"values": [[str(i), int(c)] for i, c in enumerate(evaluation)],
                "count": int(sum(evaluation))}  # fmt: skip
        p = chi2_p_value(base, {str(i): int(c) for i, c in enumerate(live)})
        out["measures"][name].update(test="chi2", p_value=p, significance=alpha,
                                     n=int(sum(live)), n_baseline=base["count"])  # fmt: skip
        return p is None or p < alpha  # no test possible: the effect decides alone

    def histogram_jsd(name: str, values, hist: dict[str, Any]) -> None:
        edges = np.asarray(hist["edges"], dtype=float)
        # Open outer bins, as for column drift: every live value lands in some bin.
        idx = np.clip(np.searchsorted(edges[1:-1], values, side="right"), 0, len(edges) - 2)
        live = np.bincount(idx, minlength=len(edges) - 1).tolist()
        value = jensen_shannon(list(hist["counts"]), live)
        out["measures"][name] = {
            "metric": "jsd",
            "value": value,
            "threshold": jsd_limit,
            "edges": hist["edges"],
            "evaluation": hist["counts"],
            "live": live,
        }
        tested = significant(name, hist["counts"], live)
        if jsd_limit is not None and value > jsd_limit and tested:
            out["drifted"].append(name)

    if metrics["task"] == "regression":
        values = frame["prediction"].cast(pl.Float64).drop_nulls().to_numpy()
        if "predictions" in curves and values.size:
            histogram_jsd("prediction", values, curves["predictions"])
        return out
    classes = metrics["classes"]
    limit = drift_cfg.get("label_linf", drift_cfg.get("categorical_linf", DEFAULT_PREDICTION_LINF))
    predicted = np.asarray(metrics["overall"]["confusion_matrix"]).sum(axis=0)
    expected = predicted / predicted.sum() if predicted.sum() else predicted
    live_counts = dict.fromkeys(classes, 0)
    for v, n in frame["prediction"].value_counts().iter_rows():
        if v is not None:
            live_counts[canonical_text(v)] = live_counts.get(canonical_text(v), 0) + n
    total = sum(live_counts.values()) or 1
    freqs = {c: {"evaluation": float(expected[i]), "live": live_counts.get(c, 0) / total}
             for i, c in enumerate(classes)}  # fmt: skip
    worst = max(freqs, key=lambda c: abs(freqs[c]["evaluation"] - freqs[c]["live"]))
    value = abs(freqs[worst]["evaluation"] - freqs[worst]["live"])
    out["measures"]["predicted_class"] = {
        "metric": "linf", "value": value, "threshold": limit, "at": worst, "frequencies": freqs,
    }  # fmt: skip
    live = [live_counts.get(c, 0) for c in classes]
    if (
        limit is not None
        and value > limit
        and significant("predicted_class", predicted.tolist(), live)
    ):
        out["drifted"].append("predicted_class")
    positive = metrics.get("positive")
    column = f"proba_{positive}"
    if positive and column in frame.columns and positive in curves.get("predictions", {}):
        values = frame[column].cast(pl.Float64).drop_nulls().to_numpy()
        if values.size:
            histogram_jsd(f"proba_{positive}", values, curves["predictions"][positive])
    return out
