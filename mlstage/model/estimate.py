"""Performance estimated before the labels arrive: Confidence-Based Performance
Estimation (CBPE; NannyML, "Estimating model performance without ground truth", and
Guillory et al., "Predicting with confidence on unseen distributions", 2021).

A calibrated probability p of the positive class says that, of many rows scored p, a
fraction p are positive. So on traffic without labels, each row predicted positive is
expected to be a true positive with probability p and a false positive with 1 - p
(and one predicted negative a false negative with p, a true negative with 1 - p). The
expected confusion matrix gives accuracy and F1; the expected ROC curve (each row
counted p positive and 1 - p negative at its score) gives ROC AUC. The estimate holds
under covariate shift (P(y | x) unchanged), which is what drift in the inputs usually
is; it cannot see concept shift, which only labels show.

Calibration first: the evaluation's reliability curve (its bins' mean predicted
probability against the fraction of positives, made monotone) is the check. When its
expected calibration error (ECE) is over CALIBRATED_ECE, probabilities are mapped
through that curve before estimating; the report says which was done.

Binary classification only (the positive class's probability); for multiclass the
expected accuracy (the mean probability of the predicted class) is given alone, from
uncalibrated probabilities; regression gets no estimate.
"""

from __future__ import annotations

from typing import Any

CALIBRATED_ECE = 0.02
ESTIMATED = ("accuracy", "roc_auc", "f1")


def calibration_map(bins: list[dict[str, Any]]):
    """(ECE, a function mapping probabilities through the reliability curve)."""
    import numpy as np
    from sklearn.isotonic import IsotonicRegression

    used = [b for b in bins if b["rows"] and b["mean_predicted"] is not None]
    if not used:
        return None, None
    rows = np.array([b["rows"] for b in used], dtype=float)
    x = np.array([b["mean_predicted"] for b in used], dtype=float)
    y = np.array([b["fraction_positive"] for b in used], dtype=float)
    ece = float((rows * np.abs(x - y)).sum() / rows.sum())
    # an isotonic fit of the bins (weighted by their rows); beyond the outer bins' means
    # their fitted fractions (not 0 and 1: an overconfident model's extreme scores are
    # exactly the ones not to believe)
    fit = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
        x, y, sample_weight=rows
    )
    return ece, lambda p: fit.predict(np.asarray(p, dtype=float))


def binary_estimate(p, predicted_positive) -> dict[str, float | None]:
    """Expected accuracy, F1 and ROC AUC from calibrated positive-class probabilities
    `p` and whether each row was predicted positive."""
    import numpy as np

    p = np.asarray(p, dtype=float)
    yes = np.asarray(predicted_positive, dtype=bool)
    n = p.size
    if n == 0:
        return dict.fromkeys(ESTIMATED)
    tp, fp = p[yes].sum(), (1 - p[yes]).sum()
    fn, tn = p[~yes].sum(), (1 - p[~yes]).sum()
    f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn > 0 else None
    # the expected ROC curve: rows by descending score, each p positive and 1 - p negative
    order = np.argsort(-p, kind="stable")
    pos, neg = p[order], 1 - p[order]
    auc = None
    if pos.sum() > 0 and neg.sum() > 0:
        # ties share their ranks: sum over groups of equal scores
        scores = p[order]
        starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])
        gp, gn = np.add.reduceat(pos, starts), np.add.reduceat(neg, starts)
        negatives_above = np.cumsum(gn) - gn
        # pairs (positive, negative) ranked wrong: the negative above; ties count half.
        # A row's own positive and negative parts are no pair: taken out (S, all ties).
        wrong = (gp * (negatives_above + gn / 2)).sum()
        pairs, own = pos.sum() * neg.sum(), float((p * (1 - p)).sum())
        auc = float((pairs - wrong - own / 2) / (pairs - own)) if pairs > own else None
    return {"accuracy": float((tp + tn) / n), "roc_auc": auc,
            "f1": None if f1 is None else float(f1)}  # fmt: skip


def cbpe(frame, metrics: dict[str, Any], curves: dict[str, Any]) -> dict[str, Any]:
    """The `estimated` section of a monitor report, from logged predictions and
    probabilities and the evaluation's metrics and curves."""
    import numpy as np

    from ..core.hashing import canonical_text

    if metrics["task"] == "regression":
        return {
            "method": None,
            "note": "no estimate for regression (CBPE needs class probabilities)",
        }
    classes, positive = metrics["classes"], metrics.get("positive")
    cols = [f"proba_{c}" for c in classes]
    if not all(c in frame.columns for c in cols) or "prediction" not in frame.columns:
        return {"method": None, "note": "the logs hold no class probabilities"}
    if frame.height == 0:
        return {"method": None, "note": "no requests"}
    import polars as pl

    # rows without probabilities (a version that gives none, in the same window) say nothing
    usable = frame.filter(pl.all_horizontal(pl.col(c).cast(pl.Float64).is_not_nan()
                                            for c in cols).fill_null(False))  # fmt: skip
    if usable.height == 0:
        return {"method": None, "note": "no logged request has class probabilities"}
    proba = usable.select(cols).to_numpy().astype(float)
    predicted = [canonical_text(v) for v in usable["prediction"].to_list()]
    out: dict[str, Any] = {"method": "CBPE", "rows": usable.height,
                           "rows_without_probabilities": frame.height - usable.height}  # fmt: skip
    if len(classes) != 2 or positive is None:
        idx = {c: i for i, c in enumerate(classes)}
        picked = [proba[i, idx[v]] for i, v in enumerate(predicted) if v in idx]
        out.update(calibration="uncalibrated (multiclass)",
                   metrics={"accuracy": float(np.mean(picked)) if picked else None})  # fmt: skip
        return out
    p = proba[:, classes.index(positive)]
    ece, mapping = calibration_map(curves.get("calibration", {}).get(positive, []))
    if mapping is not None and ece > CALIBRATED_ECE:
        p = mapping(p)
        out["calibration"] = f"mapped through the evaluation's reliability curve (ECE {ece:.3f})"
    else:
        out["calibration"] = "as given" + (f" (ECE {ece:.3f})" if ece is not None else "")
    out["ece"] = ece
    out["metrics"] = binary_estimate(p, [v == positive for v in predicted])
    return out


def gated_estimate(frame, metrics, curves, cfg) -> dict[str, Any]:
    """CBPE's estimates, with checks against the evaluation config's absolute thresholds
    (as `monitor` gates live metrics): a model getting worse is seen before its labels
    come back."""
    from .gate import bound_checks

    out = cbpe(frame, metrics, curves)
    values = out.get("metrics") or {}
    out["checks"] = [
        {"metric": m, "value": values[m], "threshold": c["threshold"], "passed": c["passed"]}
        for m, spec in cfg.get("thresholds", {}).items()
        if m in ESTIMATED and values.get(m) is not None
        for c in bound_checks(m, values[m], spec, uncomputable="skip")
    ]
    return out
