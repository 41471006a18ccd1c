"""Two served versions over the same window, for `monitor --compare`: the stable version
against the candidate (a canary, or a shadow), and a verdict, `promote` or `rollback`.

Each version is measured as `monitor` measures one: its predictions against its own
evaluation's, CBPE's estimates before labels, and live metrics with feedback, each
gated by that evaluation's thresholds. Between the two, the prediction mixes are
compared (chi-squared for classes, Kolmogorov–Smirnov for numbers; a shadow answers the
same requests, so their agreement is also reported). With feedback on both, the
candidate's live accuracy is tested against the stable's (one-sided two-proportion test
at `SIGNIFICANCE`).

The verdict is `rollback` when the candidate fails a gate of its own (prediction drift
from its evaluation, an estimated or live metric past its threshold), or is
significantly less accurate than the stable version; otherwise `promote`. The two
versions predicting differently is reported, not a reason: a new model is expected to.
Fewer than MIN_ROWS candidate rows is too little to judge (`no_traffic`).
"""

from __future__ import annotations

import math
from typing import Any

MIN_ROWS = 100
SIGNIFICANCE = 0.05


def describe(frame, evaluation: tuple | None, cfg: dict, rules, live_of) -> dict[str, Any]:
    """One version's rows measured against its own evaluation (metrics, curves)."""
    from .estimate import gated_estimate
    from .prediction_drift import prediction_drift

    out: dict[str, Any] = {"rows": frame.height, "reasons": []}
    if "prediction" in frame.columns and frame.height:
        counts = frame["prediction"].cast(str).value_counts(sort=True)
        if frame["prediction"].dtype.is_numeric() and frame["prediction"].n_unique() > 20:
            s = frame["prediction"].cast(float)
            out["predictions"] = {"mean": s.mean(), "std": s.std(), "min": s.min(), "max": s.max()}
        else:
            out["predictions"] = {str(k): int(n) for k, n in counts.iter_rows()}
    if evaluation is None:
        out["note"] = "deployed without an evaluation: nothing to gate it by"
        return out
    metrics, curves = evaluation
    drift = prediction_drift(frame, metrics, curves, rules)
    estimated = gated_estimate(frame, metrics, curves, cfg)
    out.update(prediction_drift=drift, estimated=estimated)
    for name in drift["drifted"]:
        m = drift["measures"][name]
        out["reasons"].append(
            f"prediction_drift: {name} moved from its evaluation's ({m['metric'].upper()} {m['value']:.3f})"
        )
    for c in estimated.get("checks", []):
        if c["passed"] is False:
            out["reasons"].append(
                f"estimated_metric: {c['metric']} {c['value']:.4g} fails its threshold"
            )
    live = live_of(frame, metrics, cfg) if frame.height else None
    if live is not None:
        out["live"] = live
        for c in live["checks"]:
            if c["passed"] is False:
                out["reasons"].append(
                    f"live_metric: {c['metric']} {c['value']:.4g} fails its threshold"
                )
    return out


def compare(
    stable_frame,
    candidate_frame,
    *,
    stable: tuple[int, tuple | None, dict],
    candidate: tuple[int, tuple | None, dict],
    role: str,
    rules,
    live_of,
) -> dict[str, Any]:
    """The comparison section: each version, the difference, the verdict and its reasons.
    `stable`/`candidate` are (version, (metrics, curves) or None, evaluate config)."""
    sides = {}
    for key, frame, (version, evaluation, cfg) in (
        ("stable", stable_frame, stable),
        ("candidate", candidate_frame, candidate),
    ):
        sides[key] = {"version": version, **describe(frame, evaluation, cfg, rules, live_of)}
    out: dict[str, Any] = {
        "role": role,
        "stable": sides["stable"],
        "candidate": sides["candidate"],
        "difference": _difference(stable_frame, candidate_frame, role),
    }
    reasons = [f"candidate {r}" for r in sides["candidate"]["reasons"]]
    worse = _accuracy_test(sides["stable"].get("live"), sides["candidate"].get("live"))
    if worse is not None:
        out["accuracy_test"] = worse
        if worse["significant"]:
            reasons.append(
                f"candidate live accuracy {worse['candidate']:.4f} is significantly below the"
                f" stable version's {worse['stable']:.4f} (p {worse['p_value']:.3g} < {SIGNIFICANCE:g})"
            )
    out["enough_traffic"] = candidate_frame.height >= MIN_ROWS
    out["verdict"] = "rollback" if reasons else "promote"
    out["reasons"] = reasons
    return out


def _difference(a, b, role: str) -> dict[str, Any]:
    """How the two versions' predictions differ: a test of their mixes, and for a shadow
    (the same requests) the share of rows they agree on."""
    import polars as pl
    from scipy import stats

    out: dict[str, Any] = {}
    if not (a.height and b.height and "prediction" in a.columns and "prediction" in b.columns):
        return out
    pa, pb = a["prediction"], b["prediction"]
    if pa.dtype.is_float() or (pa.dtype.is_numeric() and pa.n_unique() > 20):
        ks = stats.ks_2samp(pa.cast(float).to_numpy(), pb.cast(float).to_numpy())
        out.update(test="ks", statistic=float(ks.statistic), p_value=float(ks.pvalue))
    else:
        ca = dict(pa.cast(str).value_counts().iter_rows())
        cb = dict(pb.cast(str).value_counts().iter_rows())
        classes = sorted(set(ca) | set(cb))
        table = [[ca.get(c, 0) for c in classes], [cb.get(c, 0) for c in classes]]
        linf = max(abs(ca.get(c, 0) / a.height - cb.get(c, 0) / b.height) for c in classes)
        out.update(test="chi2", linf=linf)
        if len(classes) > 1:
            res = stats.chi2_contingency(table)
            out.update(statistic=float(res.statistic), p_value=float(res.pvalue))
    if role == "shadow" and "request_id" in a.columns and "request_id" in b.columns:
        keys = [c for c in ("request_id", "row") if c in a.columns and c in b.columns]
        pairs = a.select(*keys, pl.col("prediction").cast(str).alias("a")).join(
            b.select(*keys, pl.col("prediction").cast(str).alias("b")), on=keys
        )
        if pairs.height:
            out["paired_rows"] = pairs.height
            out["agreement"] = float((pairs["a"] == pairs["b"]).mean())
    return out


def _accuracy_test(stable_live, candidate_live) -> dict[str, Any] | None:
    """One-sided two-proportion z-test: is the candidate less accurate than stable?"""
    from scipy import stats

    def acc(live):
        m = (live or {}).get("metrics") or {}
        return m.get("accuracy"), (live or {}).get("joined", 0)

    (p1, n1), (p2, n2) = acc(stable_live), acc(candidate_live)
    if p1 is None or p2 is None or not n1 or not n2:
        return None
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p = 0.5 if se == 0 else float(stats.norm.cdf((p2 - p1) / se))
    return {"test": "two-proportion z, one-sided", "stable": p1, "candidate": p2,
            "n_stable": n1, "n_candidate": n2, "p_value": p,
            "significant": p < SIGNIFICANCE}  # fmt: skip
