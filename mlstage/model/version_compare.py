"""Two served versions over the same window, for `monitor --compare`: the stable version
against the candidate (a canary, or a shadow), and a verdict: `promote`, `rollback`, or
`undecided`.

Each version is measured as `monitor` measures one: its predictions against its own
evaluation's, CBPE's estimates before labels, and live metrics with feedback, each
gated by that evaluation's thresholds (a version deployed without one is measured, not
gated). Between the two, the prediction mixes are compared (chi-squared for classes,
Kolmogorov–Smirnov for numbers; a shadow answers the same requests, so their agreement
is also reported). With feedback, the candidate's outcomes are tested against the
stable version's, one-sided at `SIGNIFICANCE`: for a canary (different requests) the
two-proportion z-test of accuracy or Welch's t-test of absolute errors; for a shadow
(the same requests, paired) McNemar's exact test or the paired t-test.

The verdict is `rollback` when the candidate fails a gate of its own (prediction drift
from its evaluation, an estimated or live metric past its threshold) or does
significantly worse than the stable version, whatever the number of rows: evidence of
harm is enough. Without such a reason, fewer than MIN_ROWS candidate rows is too little
to judge (`undecided`, exit 4), and otherwise the verdict is `promote`. The two
versions predicting differently is reported, not a reason: a new model is expected to.

The sides come from the registry (`versions_to_compare`): `stable` is `serving.json`'s
`version`, the candidate the running canary's or shadow's, each with the evaluation
recorded when it was deployed; a version deployed without one is measured with its task
and classes from its own `signature.json`. A shadow's rows are its logged copies
(`shadow` true) of the requests the stable version answered (`compare_section`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..errors import BadInput, opt
from ..store.refs import load_input
from .artifact import read_signature
from .evaluation_files import read_curves, read_metrics

MIN_ROWS = 100
SIGNIFICANCE = 0.05


def describe(frame, side: tuple, rules, live_of) -> dict[str, Any]:
    """One version's rows measured against its own evaluation; `side` is (version,
    (metrics, curves, config) or None, signature)."""
    from .estimate import gated_estimate
    from .prediction_drift import prediction_drift

    _, evaluation, signature = side
    out: dict[str, Any] = {"rows": frame.height, "reasons": []}
    if "prediction" in frame.columns and frame.height:
        if signature["task"] == "regression":
            s = frame["prediction"].cast(float)
            out["predictions"] = {"mean": s.mean(), "std": s.std(), "min": s.min(), "max": s.max()}
        else:
            counts = frame["prediction"].cast(str).value_counts(sort=True)
            out["predictions"] = {str(k): int(n) for k, n in counts.iter_rows()}
    if evaluation is None:
        out["note"] = "deployed without an evaluation: measured, not gated"
    else:
        metrics, curves, cfg = evaluation
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
    if live_of is not None and frame.height:
        live = live_of(frame, evaluation, signature)
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
    stable: tuple,
    candidate: tuple,
    role: str,
    rules,
    live_of=None,
    scores_of=None,
    keys: tuple[str, ...] | list[str] = (),
) -> dict[str, Any]:
    """The comparison section: each version, the difference, the verdict and its reasons.
    `stable`/`candidate` are (version, (metrics, curves, config) or None, signature);
    `live_of(rows, evaluation, signature)` gives live metrics and `scores_of(...)` the
    per-row outcomes (None without feedback)."""
    sides = {}
    for key, frame, side in (("stable", stable_frame, stable),
                             ("candidate", candidate_frame, candidate)):  # fmt: skip
        sides[key] = {"version": side[0], **describe(frame, side, rules, live_of)}
    out: dict[str, Any] = {
        "role": role,
        "stable": sides["stable"],
        "candidate": sides["candidate"],
        "difference": _difference(stable_frame, candidate_frame, role, keys),
    }
    reasons = [f"candidate {r}" for r in sides["candidate"]["reasons"]]
    if scores_of is not None and stable_frame.height and candidate_frame.height:
        task = candidate[2]["task"]
        test = outcome_test(
            scores_of(stable_frame, stable[1], stable[2]),
            scores_of(candidate_frame, candidate[1], candidate[2]),
            task, paired=role == "shadow",
        )  # fmt: skip
        if test is not None:
            out["outcome_test"] = test
            if test["significant"]:
                what = "accuracy" if task == "classification" else "mean absolute error"
                reasons.append(
                    f"candidate {what} {test['candidate']:.4g} is significantly worse than the"
                    f" stable version's {test['stable']:.4g} ({test['test']}, p {test['p_value']:.3g}"
                    f" < {SIGNIFICANCE:g})"
                )
    out["enough_traffic"] = candidate_frame.height >= MIN_ROWS
    if reasons:
        out["verdict"] = "rollback"
    else:
        out["verdict"] = "promote" if out["enough_traffic"] else "undecided"
    out["reasons"] = reasons
    return out


def _difference(a, b, role: str, keys) -> dict[str, Any]:
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
    if role == "shadow" and keys and all(k in b.columns for k in keys):
        pairs = a.select(*keys, pl.col("prediction").cast(str).alias("a")).join(
            b.select(*keys, pl.col("prediction").cast(str).alias("b")), on=keys
        )
        if pairs.height:
            out["paired_rows"] = pairs.height
            out["agreement"] = float((pairs["a"] == pairs["b"]).mean())
    return out


def outcome_test(stable, candidate, task: str, *, paired: bool) -> dict[str, Any] | None:
    """One-sided: does the candidate do worse? `stable`/`candidate` hold join keys and a
    per-row `score` (1/0 right for classes, absolute error for numbers). Paired (a
    shadow: the same rows) on the rows both have; otherwise as two samples."""
    import numpy as np
    from scipy import stats

    if stable.height == 0 or candidate.height == 0:
        return None
    out: dict[str, Any]
    if paired:
        keys = [c for c in stable.columns if c != "score"]
        both = stable.join(candidate, on=keys, suffix="_c")
        if both.height == 0:
            return None
        a, b = both["score"].to_numpy(), both["score_c"].to_numpy()
        out = {"n": both.height}
        if task == "classification":
            lost = int(((a == 1) & (b == 0)).sum())  # right before, wrong in the candidate
            won = int(((a == 0) & (b == 1)).sum())
            p = 1.0 if lost + won == 0 else float(
                stats.binomtest(lost, lost + won, 0.5, alternative="greater").pvalue)  # fmt: skip
            out.update(test="McNemar exact, one-sided", lost=lost, won=won)
        else:
            d = b - a
            p = 0.5 if np.all(d == d[0]) else float(
                stats.ttest_1samp(d, 0.0, alternative="greater").pvalue)  # fmt: skip
            out.update(test="paired t on absolute errors, one-sided")
        out.update(stable=float(a.mean()), candidate=float(b.mean()))
    else:
        a, b = stable["score"].to_numpy(), candidate["score"].to_numpy()
        out = {"n_stable": int(a.size), "n_candidate": int(b.size),
               "stable": float(a.mean()), "candidate": float(b.mean())}  # fmt: skip
        if task == "classification":
            p1, p2, n1, n2 = a.mean(), b.mean(), a.size, b.size
            pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
            se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
            p = 0.5 if se == 0 else float(stats.norm.cdf((p2 - p1) / se))
            out["test"] = "two-proportion z, one-sided"
        else:
            same = a.size < 2 or b.size < 2 or (np.all(a == a[0]) and np.all(b == b[0]))
            p = 0.5 if same else float(
                stats.ttest_ind(b, a, equal_var=False, alternative="greater").pvalue)  # fmt: skip
            out["test"] = "Welch t on absolute errors, one-sided"
    p = 1.0 if math.isnan(p) else p
    out.update(p_value=p, significant=p < SIGNIFICANCE)
    return out


# -- the sides, from the registry and the logs (monitor --compare) ----------------------
def versions_to_compare(st, folder: Path, inputs: list) -> dict[str, Any]:
    """role, and per side (version, evaluation or None, the version's signature); the
    evaluations join the stage's inputs (so a new evaluation reruns the comparison)."""
    from ..store.registry import CANARY, SHADOW, read_serving, served_evaluation

    doc = read_serving(folder) if folder.is_dir() else None
    if doc is None:
        raise BadInput("not a registry model folder (no serving.json)", file=str(folder))
    role = next((r for r in (CANARY, SHADOW) if doc.get(r)), None)
    if role is None:
        raise BadInput(
            f"{opt('compare')}: no canary or shadow runs (deploy one with --canary or --shadow)",
            file=str(folder),
        )
    out: dict[str, Any] = {"role": role}
    for key, version in (("stable", doc["version"]), ("candidate", doc[role]["version"])):
        if not (folder / str(version) / "signature.json").is_file():
            raise BadInput(f"version {version} ({key}) is not in the registry", file=str(folder))
        evaluation = None
        eid = served_evaluation(doc, version)
        if eid is not None:
            path, manifest, inp = load_input(st, f"@{eid}", "evaluation", ("evaluation",))
            inputs.append(inp)
            evaluation = (
                read_metrics(path),
                read_curves(path),
                manifest["params"].get("config", {}),
            )
        out[key] = (version, evaluation, read_signature(folder / str(version)))
    return out


def _basis(evaluation, signature: dict[str, Any]) -> dict[str, Any]:
    """The metrics document live metrics are computed against: the evaluation's, else the
    task and classes from the signature (with nothing to compare or gate)."""
    if evaluation is not None:
        return evaluation[0]
    classes = signature["label"].get("classes")
    positive = classes[1] if classes and len(classes) == 2 else None
    return {"task": signature["task"], "classes": classes, "positive": positive, "overall": {}}


def outcomes(rows, feedback, join: list[str], label: str, basis: dict[str, Any]):
    """Per logged row with a label: the join keys and its score, 1/0 for a right or wrong
    class, the absolute error for a number."""
    import numpy as np
    import polars as pl

    from ..core.missing import missing_as_null
    from .metrics import Outcomes

    keys = [pl.col(c).cast(pl.String) for c in join]
    fb = feedback.select(*keys, missing_as_null(label, feedback.schema[label]).alias("__label"))
    fb = fb.filter(pl.col("__label").is_not_null()).unique(join, keep="first", maintain_order=True)
    joined = rows.with_columns(*keys).join(fb, on=join, how="inner")
    if joined.height == 0:
        return joined.select(*join, pl.lit(0.0).alias("score"))
    o = Outcomes(basis["task"], joined["__label"].to_list(), joined["prediction"].to_list(),
                 None, basis.get("classes"), None)  # fmt: skip
    score = (o.y == o.pred).astype(float) if o.task == "classification" else np.abs(o.y - o.pred)
    return joined.select(join).with_columns(pl.Series("score", score))


def compare_section(every, frame, versions, rules, fb, st) -> dict[str, Any]:
    """The report's `comparison`. `every` holds the shadow's copies, `frame` what clients
    were answered; `fb` is (feedback frame, join columns, its path) or None."""
    import polars as pl

    from .live_metrics import live_metrics

    role = versions["role"]
    v_stable, e_stable, sig_stable = versions["stable"]
    v_cand, e_cand, sig_cand = versions["candidate"]
    keys = [c for c in ("request_id", "row") if c in frame.columns]

    def rows_of(table, version):
        if table.height == 0 or "version" not in table.columns:
            return table.clear()
        rows = table.filter(pl.col("version") == version)
        # a retried request (the same id) is one request: counted once
        return rows.unique(keys, keep="first", maintain_order=True) if keys else rows

    stable_rows = rows_of(frame, v_stable)
    if role == "shadow":
        copies = (
            every.filter(pl.col("shadow").fill_null(False))
            if "shadow" in every.columns
            else every.clear()
        )
        cand_rows = rows_of(copies, v_cand)
        cand_rows = cand_rows.drop("shadow") if "shadow" in cand_rows.columns else cand_rows
    else:
        cand_rows = rows_of(frame, v_cand)
    live_of = scores_of = None
    if fb is not None:
        fb_frame, join, ref = fb
        label = sig_stable["label"]["column"]
        if label not in fb_frame.columns:
            raise BadInput(f'no column "{label}" (the label the models predict)', file=ref)

        def live_of(rows, evaluation, signature):
            cfg = evaluation[2] if evaluation else {}
            return live_metrics(
                rows, fb_frame, join, label, _basis(evaluation, signature), cfg, ref
            )

        def scores_of(rows, evaluation, signature):
            return outcomes(rows, fb_frame, join, label, _basis(evaluation, signature))

    return compare(
        stable_rows, cand_rows,
        stable=(v_stable, e_stable, sig_stable), candidate=(v_cand, e_cand, sig_cand),
        role=role, rules=rules, live_of=live_of, scores_of=scores_of, keys=keys,
    )  # fmt: skip
