"""Model inspection for `evaluate`: permutation importance of the raw inputs, partial
dependence (scikit-learn's `brute` method on raw inputs through the model's transform),
ROC and PR curves, calibration and the distribution of predictions (`curves.json`)."""

from __future__ import annotations

from typing import Any

from .metrics import LOWER_IS_BETTER, Outcomes, overall


def score(o: Outcomes, metric: str) -> float:
    value = overall(o)[metric]
    return float("nan") if value is None else value


def permutation_importance(
    model, frame, y_true, positive, metric: str, repeats: int, seed: int
) -> dict[str, float]:
    """Drop in `metric` when each raw input column is shuffled (mean over repeats)."""
    import numpy as np
    import polars as pl

    def outcome(df) -> Outcomes:
        pred, proba = model.predict_frame(df)
        return Outcomes(model.task, y_true, pred, proba, model.class_names, positive)

    base = score(outcome(frame), metric)
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    out = {}
    for j, col in enumerate(model.transform.inputs):
        drops = []
        for r in range(repeats):
            perm = np.random.default_rng(seed + 1000 * j + r).permutation(frame.height)
            # gather keeps the column's type and its nulls (numpy would turn them into NaN)
            shuffled = frame.with_columns(frame[col].gather(pl.Series(perm, dtype=pl.UInt32)))
            drops.append(sign * (base - score(outcome(shuffled), metric)))
        out[col] = float(np.mean(drops))
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def partial_dependence(
    model, frame, columns: list[str], grid: int, positive
) -> list[dict[str, Any]]:
    """Average prediction as one column is set to each grid value for every row:
    scikit-learn's `brute` method, on raw inputs through the model's transform.

    `average`: P(positive) for a binary task (or a multiclass one given `positive`), the
    mean prediction for regression; a multiclass task also gets `classes`, the average
    probability of every class (or the share of rows predicted as it, without
    probabilities), as scikit-learn reports one curve per class."""
    import numpy as np
    import polars as pl

    from ..core.missing import missing_as_null

    out = []
    names = model.class_names
    pos_index = names.index(positive) if positive is not None and names else None
    for col in columns:
        s = frame.select(missing_as_null(col, frame.schema[col])).to_series().drop_nulls()
        if s.len() == 0:
            continue
        ctype = model.transform.inputs[col]
        values: list[Any]
        if ctype in ("int", "float"):
            grid_values = np.unique(
                np.quantile(s.cast(pl.Float64).to_numpy(), np.linspace(0.05, 0.95, grid))
            )
            values = [int(round(v)) if ctype == "int" else float(v) for v in grid_values]
            values = list(dict.fromkeys(values))
        else:
            values = s.value_counts(sort=True).head(grid)[col].to_list()
        averages: list[float] = []
        per_class: list[list[float]] = []
        for v in values:
            df = frame.with_columns(pl.lit(v, dtype=frame.schema[col]).alias(col))
            pred, proba = model.predict_frame(df)
            if model.task == "regression":
                averages.append(float(np.mean(pred)))
                continue
            if proba is None:  # the share of rows predicted as each class
                index = {c: i for i, c in enumerate(names)}
                hits = np.zeros(len(names))
                for i in (index[canonical(p)] for p in pred):
                    hits[i] += 1
                mean = hits / max(1, len(pred))
            else:
                mean = np.asarray(proba, dtype=float).mean(axis=0)
            per_class.append([float(x) for x in mean])
            if pos_index is not None:
                averages.append(float(mean[pos_index]))
        entry: dict[str, Any] = {
            "column": col,
            "values": [v.isoformat() if hasattr(v, "isoformat") else v for v in values],
            "average": averages if model.task == "regression" or pos_index is not None else None,
        }
        if model.task == "classification" and len(names) > 2:
            entry["classes"] = {c: [row[i] for row in per_class] for i, c in enumerate(names)}
        out.append(entry)
    return out


def canonical(value) -> str:
    from ..core.hashing import canonical_text

    return str(canonical_text(value))


def curves(o: Outcomes) -> dict[str, Any]:
    """ROC and PR points, calibration bins and the distribution of predictions."""
    import numpy as np
    from sklearn import metrics as m

    out: dict[str, Any] = {"format": "mlstage-curves/1", "task": o.task}
    if o.task == "regression":
        counts, edges = np.histogram(o.pred, bins=20)
        res_counts, res_edges = np.histogram(o.pred - o.y, bins=20)
        out["predictions"] = {"edges": edges.tolist(), "counts": counts.tolist()}
        out["residuals"] = {"edges": res_edges.tolist(), "counts": res_counts.tolist()}
        return out
    if o.proba is None:
        return out
    targets = [o.pos] if o.binary else list(range(len(o.classes)))
    out["roc"], out["pr"], out["calibration"] = {}, {}, {}
    for c in targets:
        name = o.classes[c]
        truth = (o.y == c).astype(int)
        p = o.proba[:, c]
        counts, edges = np.histogram(p, bins=20, range=(0, 1))
        out.setdefault("predictions", {})[name] = {
            "edges": edges.tolist(),
            "counts": counts.tolist(),
        }
        if 0 < truth.sum() < truth.size:
            fpr, tpr, thr = m.roc_curve(truth, p)
            keep = _thin(fpr.size)
            out["roc"][name] = {
                "fpr": fpr[keep].tolist(),
                "tpr": tpr[keep].tolist(),
                "thresholds": np.clip(thr[keep], 0, 1).tolist(),
            }
            prec, rec, _ = m.precision_recall_curve(truth, p)
            keep = _thin(prec.size)
            out["pr"][name] = {"precision": prec[keep].tolist(), "recall": rec[keep].tolist()}
        bins = np.clip((p * 10).astype(int), 0, 9)
        out["calibration"][name] = [
            {"bin": [b / 10, (b + 1) / 10], "rows": int((bins == b).sum()),
             "mean_predicted": float(p[bins == b].mean()) if (bins == b).any() else None,
             "fraction_positive": float(truth[bins == b].mean()) if (bins == b).any() else None}
            for b in range(10)
        ]  # fmt: skip
    return out


def _thin(n: int, most: int = 200):
    import numpy as np

    return np.unique(np.linspace(0, n - 1, min(n, most)).astype(int))
