"""Model metrics: overall (scikit-learn's own functions), per slice and per sensitive group
(per-group sums of confusion counts and per-row losses, so 100 slices cost one pass,
not 100), permutation importance and partial dependence.

Classification metrics treat classes by their text (booleans `true`/`false`).
`precision`, `recall` and `f1` are for `positive` in a binary task (by default the
second class in sorted order, e.g. `>50K`, `yes`, `true`, `1`) and macro-averaged
otherwise. Fairness follows Fairlearn's definitions, one-vs-rest for `positive`:
demographic parity difference = max - min selection rate across groups, ratio = min /
max, equalized odds difference = the larger of the TPR and FPR differences.
"""

from __future__ import annotations

from typing import Any

from ..errors import BadInput

CLASSIFICATION = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss",
                  "brier", "confusion_matrix")  # fmt: skip
REGRESSION = ("mae", "rmse", "r2", "mape", "max_error")
PROBABILITY_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier")
CLASSIFICATION_FAIRNESS = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
)
# Regression: the largest difference between groups of each error metric.
REGRESSION_FAIRNESS = ("mae_difference", "rmse_difference")
FAIRNESS = CLASSIFICATION_FAIRNESS + REGRESSION_FAIRNESS
LOWER_IS_BETTER = {"log_loss", "brier", "mae", "rmse", "mape", "max_error", "demographic_parity_difference",
                   "equalized_odds_difference", "mae_difference", "rmse_difference"}  # fmt: skip
EPS = 2.220446049250313e-16  # float64 epsilon, as scikit-learn's log_loss and mape


def metric_names(task: str) -> tuple[str, ...]:
    if task == "classification":
        return CLASSIFICATION + CLASSIFICATION_FAIRNESS
    return REGRESSION + REGRESSION_FAIRNESS


class Outcomes:
    """What a model predicted on a dataset, in the forms the metrics need."""

    def __init__(
        self,
        task: str,
        y_true: list,
        y_pred: list,
        proba,
        classes: list[str] | None,
        positive: str | None,
    ):
        import numpy as np

        self.task = task
        self.classes: list[str] = list(classes or [])  # empty for regression
        self.positive = positive
        self.pos: int = -1  # the positive class's index; -1 without one
        if task == "regression":
            self.y = np.asarray(y_true, dtype=float)
            self.pred = np.asarray(y_pred, dtype=float)
            self.proba = None
            return
        from ..core.hashing import canonical_text

        index = {c: i for i, c in enumerate(self.classes)}
        self.y = np.array([index.get(str(canonical_text(v)), -1) for v in y_true], dtype=np.int64)
        self.pred = np.array([index[str(canonical_text(v))] for v in y_pred], dtype=np.int64)
        self.proba = None
        if proba is not None:
            # float32 probabilities sum to 1 only within float32 rounding: renormalise in float64
            p = np.asarray(proba, dtype=float)
            self.proba = p / p.sum(axis=1, keepdims=True)
        if positive is not None:
            self.pos = index[positive]

    def subset(self, idx) -> Outcomes:
        out = object.__new__(Outcomes)
        out.__dict__.update(self.__dict__)
        out.y, out.pred = self.y[idx], self.pred[idx]
        out.proba = None if self.proba is None else self.proba[idx]
        return out

    @property
    def binary(self) -> bool:
        return len(self.classes) == 2


def overall(o: Outcomes) -> dict[str, Any]:
    """Every metric of the task, with scikit-learn's functions."""
    import warnings

    # A class absent from this data (a rare one, a small slice) is handled here (labels,
    # zero_division, metrics left None); scikit-learn's warnings about it say nothing more.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _overall(o)


def _overall(o: Outcomes) -> dict[str, Any]:
    import numpy as np
    from sklearn import metrics as m

    if o.task == "regression":
        return {
            "mae": float(m.mean_absolute_error(o.y, o.pred)),
            "rmse": float(np.sqrt(m.mean_squared_error(o.y, o.pred))),
            "r2": float(m.r2_score(o.y, o.pred)) if o.y.size > 1 else None,
            "mape": float(m.mean_absolute_percentage_error(o.y, o.pred)),
            "max_error": float(m.max_error(o.y, o.pred)),
        }
    labels = list(range(len(o.classes)))
    avg = {"average": "binary", "pos_label": o.pos} if o.binary else {"average": "macro"}
    out: dict[str, Any] = {
        "accuracy": float(m.accuracy_score(o.y, o.pred)),
        "balanced_accuracy": float(m.balanced_accuracy_score(o.y, o.pred)),
        "precision": float(m.precision_score(o.y, o.pred, zero_division=0, **avg)),
        "recall": float(m.recall_score(o.y, o.pred, zero_division=0, **avg)),
        "f1": float(m.f1_score(o.y, o.pred, zero_division=0, **avg)),
        "confusion_matrix": m.confusion_matrix(o.y, o.pred, labels=labels).tolist(),
        "roc_auc": None, "pr_auc": None, "log_loss": None, "brier": None,
    }  # fmt: skip
    present = np.unique(o.y)
    if o.proba is not None:
        out["log_loss"] = float(m.log_loss(o.y, o.proba, labels=labels))
        if o.binary:
            p = o.proba[:, o.pos]
            truth = (o.y == o.pos).astype(int)
            out["brier"] = float(m.brier_score_loss(truth, p))
            if present.size == 2:
                out["roc_auc"] = float(m.roc_auc_score(truth, p))
                out["pr_auc"] = float(m.average_precision_score(truth, p))
        else:
            onehot = np.eye(len(labels))[o.y]
            out["brier"] = float(np.mean(np.sum((o.proba - onehot) ** 2, axis=1)))
            if present.size == len(labels):
                out["roc_auc"] = float(
                    m.roc_auc_score(o.y, o.proba, multi_class="ovr", average="macro", labels=labels)
                )
                out["pr_auc"] = float(m.average_precision_score(onehot, o.proba, average="macro"))
    return out


# -- grouped (slices and fairness groups) -----------------------------------------------


def grouped(o: Outcomes, keys) -> dict[str, dict[str, Any]]:
    """Metrics per value of `keys` (one entry per row), from per-group sums.

    The sums are numpy's `bincount`, which adds each group's rows in row order: the same
    data gives the same bits every run (polars' parallel group-by may add a group's
    floats in another order from one run to the next, and a metric's last digit, hence
    the artifact's id, would change)."""
    import numpy as np

    names, group = np.unique(np.asarray(keys, dtype=object), return_inverse=True)
    rows = np.bincount(group, minlength=names.size)

    def total(x):
        return np.bincount(group, weights=np.asarray(x, dtype=float), minlength=names.size)

    if o.task == "regression":
        err = o.pred - o.y
        sse = total(err * err)
        worst = np.zeros(names.size)
        np.maximum.at(worst, group, np.abs(err))
        # SST from deviations about the group's own mean (sum y^2 - (sum y)^2/n loses precision)
        mean_y = total(o.y) / rows
        sst = total((o.y - mean_y[group]) ** 2)
        mae = total(np.abs(err)) / rows
        mape = total(np.abs(err) / np.maximum(np.abs(o.y), EPS)) / rows
        out = {}
        for g, name in enumerate(names):
            r2 = 1 - sse[g] / sst[g] if sst[g] > 0 and rows[g] > 1 else None
            errors = {"mae": float(mae[g]), "rmse": float(np.sqrt(sse[g] / rows[g])),
                      "max_error": float(worst[g]), "mape": float(mape[g])}  # fmt: skip
            out[name] = {
                "rows": int(rows[g]),
                "metrics": {k: errors[k] for k in REGRESSION if k != "r2"} | {"r2": r2},
            }
        return out
    k = len(o.classes)
    correct = np.bincount(group, weights=(o.y == o.pred), minlength=names.size)
    tp_all = [
        np.bincount(group[(o.y == c) & (o.pred == c)], minlength=names.size) for c in range(k)
    ]
    pred_all = [np.bincount(group[o.pred == c], minlength=names.size) for c in range(k)]
    true_all = [np.bincount(group[o.y == c], minlength=names.size) for c in range(k)]
    log_loss = brier = None
    if o.proba is not None:
        ll = -np.log(np.clip(o.proba[np.arange(o.y.size), np.clip(o.y, 0, None)], EPS, 1))
        log_loss = total(ll) / rows
        if o.binary:
            brier = total((o.proba[:, o.pos] - (o.y == o.pos)) ** 2) / rows
    out = {}
    for g, name in enumerate(names):
        tp = [int(tp_all[c][g]) for c in range(k)]
        pred = [int(pred_all[c][g]) for c in range(k)]
        true = [int(true_all[c][g]) for c in range(k)]
        prec = [tp[c] / pred[c] if pred[c] else 0.0 for c in range(k)]
        rec = [tp[c] / true[c] if true[c] else 0.0 for c in range(k)]
        f1 = [2 * tp[c] / (pred[c] + true[c]) if pred[c] + true[c] else 0.0 for c in range(k)]
        seen = [c for c in range(k) if pred[c] or true[c]]
        metrics: dict[str, float | None] = {
            "accuracy": float(correct[g]) / int(rows[g]),
            "balanced_accuracy": sum(rec[c] for c in range(k) if true[c])
            / max(1, sum(1 for c in range(k) if true[c])),
        }
        if o.binary:
            metrics.update(precision=prec[o.pos], recall=rec[o.pos], f1=f1[o.pos])
        else:
            metrics.update(precision=_mean(prec, seen), recall=_mean(rec, seen), f1=_mean(f1, seen))
        metrics["log_loss"] = None if log_loss is None else float(log_loss[g])
        metrics["brier"] = None if brier is None else float(brier[g])
        out[name] = {
            "rows": int(rows[g]),
            "metrics": metrics,
            "counts": {"tp": tp, "pred": pred, "true": true},
        }
    _add_aucs(o, keys, out)
    return out


def _mean(values: list[float], idx: list[int]) -> float:
    return sum(values[i] for i in idx) / len(idx) if idx else 0.0


def _add_aucs(o: Outcomes, keys, out: dict[str, dict[str, Any]]) -> None:
    """ROC and PR AUC need the ranking within each group: computed per group's rows."""
    import numpy as np
    from sklearn import metrics as m

    if o.proba is None or not o.binary:
        for v in out.values():
            v["metrics"].update(roc_auc=None, pr_auc=None)
        return
    keys = np.asarray(keys, dtype=object)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    bounds = np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1
    for idx in np.split(order, bounds):
        g = keys[idx[0]]
        truth = (o.y[idx] == o.pos).astype(int)
        both = 0 < truth.sum() < truth.size
        p = o.proba[idx, o.pos]
        out[g]["metrics"]["roc_auc"] = float(m.roc_auc_score(truth, p)) if both else None
        out[g]["metrics"]["pr_auc"] = float(m.average_precision_score(truth, p)) if both else None


def fairness(o: Outcomes, groups, min_size: int = 1) -> dict[str, Any]:
    """Per-group metrics and the disparities between groups of at least `min_size` rows.

    Classification: selection rate, TPR, FPR, accuracy and Fairlearn's disparity metrics.
    Regression: MAE and RMSE per group and the largest difference between groups.
    A group under `min_size` rows is reported (`"gated": false`) but takes no part in
    the disparities: a handful of rows would decide them by luck.
    """
    per = grouped(o, groups)
    table = {}
    for g, v in sorted(per.items(), key=lambda kv: str(kv[0])):
        n = v["rows"]
        if o.task == "regression":
            table[g] = {"rows": n, "mae": v["metrics"]["mae"], "rmse": v["metrics"]["rmse"]}
        else:
            c, pos = v["counts"], o.pos
            negatives = n - c["true"][pos]
            table[g] = {
                "rows": n,
                "selection_rate": c["pred"][pos] / n,
                "tpr": c["tp"][pos] / c["true"][pos] if c["true"][pos] else None,
                "fpr": (c["pred"][pos] - c["tp"][pos]) / negatives if negatives else None,
                "accuracy": v["metrics"]["accuracy"],
            }
        table[g]["gated"] = n >= min_size
    gated = [t for t in table.values() if t["gated"]]

    def spread(key: str) -> float | None:
        xs = [t[key] for t in gated if t[key] is not None]
        return max(xs) - min(xs) if len(xs) >= 2 else None

    if o.task == "regression":
        return {
            "mae_difference": spread("mae"),
            "rmse_difference": spread("rmse"),
            "min_group_size": min_size,
            "groups": table,
        }
    rates = [t["selection_rate"] for t in gated]
    tpr, fpr = spread("tpr"), spread("fpr")
    return {
        "demographic_parity_difference": spread("selection_rate"),
        "demographic_parity_ratio": min(rates) / max(rates)
        if len(rates) >= 2 and max(rates) > 0
        else None,
        "equalized_odds_difference": None
        if tpr is None and fpr is None
        else max(x for x in (tpr, fpr) if x is not None),
        "min_group_size": min_size,
        "groups": table,
    }


# -- model inspection ------------------------------------------------------------------


def check_metric(name: str, task: str, where: str) -> None:
    if name not in metric_names(task) or name == "confusion_matrix":
        valid = ", ".join(n for n in metric_names(task) if n != "confusion_matrix")
        raise BadInput(f"{where}: {name!r} is not a metric of a {task} task; valid: {valid}")
