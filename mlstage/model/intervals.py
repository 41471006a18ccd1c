"""Confidence intervals for evaluation metrics: a seeded, vectorised Poisson bootstrap.

Each of R resamples gives every row a weight drawn from Poisson(1) (Hanley and
MacGibbon's Poisson bootstrap, as TFMA computes its intervals): a weight of k counts
the row k times, as a resample with replacement would, but the weights of different
rows are independent, so they are drawn in chunks of rows and never held for the
whole dataset. Every metric is a function of per-group weighted sums (confusion counts,
per-row losses), so one pass of sparse products gives all groups' sums for all R
resamples; a metric's interval is the percentile interval of its R values (NaN, an
undefined metric in a resample, left out; more than 10% undefined gives no interval).

- overall: every metric but `max_error` and `pr_auc` (a maximum, and a step curve's
  area, are not smooth enough for a percentile bootstrap); ROC AUC for binary models,
  from the positive class's scores in up to 512 quantile bins (ties within a bin count
  half, as ties do in the AUC itself);
- per slice the same (ROC AUC from each slice's own ranking); per fairness disparity,
  over the groups the disparity compares; a slice, or a disparity with a group, under
  `min_rows` has none (a bound check on it is `insufficient`);
- the difference between a model and its baseline on the same rows (paired: the same
  weights for both), for change thresholds.

The same seed, rows and resamples give the same intervals to the last bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_RESAMPLES = 200
DEFAULT_LEVEL = 0.95
DEFAULT_MIN_ROWS = 30
CHUNK_ROWS = 1 << 15
AUC_BINS = 512
NO_INTERVAL = {"max_error", "pr_auc", "confusion_matrix"}


@dataclass(frozen=True)
class Settings:
    resamples: int = DEFAULT_RESAMPLES
    level: float = DEFAULT_LEVEL
    min_rows: int = DEFAULT_MIN_ROWS
    seed: int = 0

    @classmethod
    def of(cls, cfg: dict[str, Any]) -> Settings:
        spec = cfg.get("intervals", {})
        return cls(
            spec.get("resamples", DEFAULT_RESAMPLES),
            spec.get("level", DEFAULT_LEVEL),
            spec.get("min_rows", DEFAULT_MIN_ROWS),
            cfg.get("seed", 0),
        )

    def describe(self) -> dict[str, Any]:
        return {"method": "poisson bootstrap, percentile", "resamples": self.resamples,
                "level": self.level, "min_rows": self.min_rows, "seed": self.seed}  # fmt: skip


def group_sums(values, groups, n_groups: int, s: Settings):
    """Weighted sums per resample, group and value: an array R x G x J, for `values`
    (n x J) and `groups` (n ints in [0, G))."""
    import numpy as np
    import scipy.sparse as sp

    n, j = values.shape
    out = np.zeros((s.resamples, n_groups * j))
    rng = np.random.default_rng(s.seed)
    for start in range(0, n, CHUNK_ROWS):
        stop = min(n, start + CHUNK_ROWS)
        m = stop - start
        w = rng.poisson(1.0, size=(s.resamples, m)).astype(np.float64)
        cols = (groups[start:stop, None] * j + np.arange(j)).ravel()
        rows = np.repeat(np.arange(m), j)
        design = sp.csr_matrix((values[start:stop].ravel(), (rows, cols)), shape=(m, n_groups * j))
        out += np.asarray((design.T @ w.T).T)
    return out.reshape(s.resamples, n_groups, j)


def interval(x, level: float) -> list[float] | None:
    import numpy as np

    x = np.asarray(x, dtype=float)
    finite = x[np.isfinite(x)]
    if finite.size < 0.9 * x.size or finite.size < 2:
        return None
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return [float(lo), float(hi)]


# -- per-row values and the metrics computed from their sums ----------------------------


def row_values(o) -> tuple[Any, list[str]]:
    """The per-row values whose weighted sums give every metric (n x J), and their names."""
    import numpy as np

    from .metrics import EPS

    n = o.y.size
    cols, names = [np.ones(n)], ["rows"]
    if o.task == "regression":
        err = o.pred - o.y
        extra = {"abs": np.abs(err), "sq": err * err, "y": o.y, "yy": o.y * o.y,
                 "ape": np.abs(err) / np.maximum(np.abs(o.y), EPS)}  # fmt: skip
    else:
        extra = {"correct": (o.y == o.pred).astype(float)}
        for c in range(len(o.classes)):
            extra[f"true{c}"] = (o.y == c).astype(float)
            extra[f"pred{c}"] = (o.pred == c).astype(float)
            extra[f"tp{c}"] = ((o.y == c) & (o.pred == c)).astype(float)
        if o.proba is not None:
            picked = o.proba[np.arange(n), np.clip(o.y, 0, None)]
            extra["ll"] = -np.log(np.clip(picked, EPS, 1))
            if o.binary:
                extra["brier"] = (o.proba[:, o.pos] - (o.y == o.pos)) ** 2
            else:
                onehot = np.eye(len(o.classes))[o.y]
                extra["brier"] = np.sum((o.proba - onehot) ** 2, axis=1)
    names += list(extra)
    cols += list(extra.values())
    return np.column_stack(cols).astype(float), names


def metrics_of(sums, names: list[str], o) -> dict[str, Any]:
    """Metric name -> its value in each resample, from one group's sums (R x J)."""
    import numpy as np

    at = {n: sums[:, i] for i, n in enumerate(names)}
    n = at["rows"]
    with np.errstate(divide="ignore", invalid="ignore"):
        if o.task == "regression":
            sst = at["yy"] - at["y"] ** 2 / n
            return {"mae": at["abs"] / n, "rmse": np.sqrt(at["sq"] / n),
                    "r2": np.where(sst > 0, 1 - at["sq"] / sst, np.nan), "mape": at["ape"] / n}  # fmt: skip
        k = len(o.classes)
        true = np.stack([at[f"true{c}"] for c in range(k)])
        pred = np.stack([at[f"pred{c}"] for c in range(k)])
        tp = np.stack([at[f"tp{c}"] for c in range(k)])
        prec = np.where(pred > 0, tp / pred, 0.0)
        rec = np.where(true > 0, tp / true, 0.0)
        f1 = np.where(pred + true > 0, 2 * tp / (pred + true), 0.0)
        present = true > 0
        out = {
            "accuracy": at["correct"] / n,
            "balanced_accuracy": (rec * present).sum(0) / np.maximum(present.sum(0), 1),
        }
        if o.binary:
            out.update(precision=prec[o.pos], recall=rec[o.pos], f1=f1[o.pos])
        else:
            seen = (pred + true) > 0
            count = np.maximum(seen.sum(0), 1)
            out.update(precision=(prec * seen).sum(0) / count, recall=(rec * seen).sum(0) / count,
                       f1=(f1 * seen).sum(0) / count)  # fmt: skip
        if "ll" in at:
            out["log_loss"] = at["ll"] / n
            out["brier"] = at["brier"] / n
        return out


def auc_replicates(o, s: Settings):
    """ROC AUC of the positive class in each resample (binary models with scores)."""
    import numpy as np

    if o.proba is None or not o.binary:
        return None
    score = o.proba[:, o.pos]
    edges = np.unique(np.quantile(score, np.linspace(0, 1, AUC_BINS + 1)[1:-1]))
    bins = np.searchsorted(edges, score, side="right")
    pos = (o.y == o.pos).astype(float)
    sums = group_sums(np.column_stack([pos, 1 - pos]), bins, edges.size + 1, s)
    p, q = sums[:, :, 0], sums[:, :, 1]  # R x bins, bins in increasing score
    below = np.cumsum(q, axis=1) - q
    with np.errstate(divide="ignore", invalid="ignore"):
        return (p * (below + q / 2)).sum(1) / (p.sum(1) * q.sum(1))


# -- what evaluate writes ---------------------------------------------------------------


def replicates(o, groups, n_groups: int, s: Settings) -> list[dict[str, Any]]:
    """Per group, metric name -> values over resamples."""
    values, names = row_values(o)
    sums = group_sums(values, groups, n_groups, s)
    return [metrics_of(sums[:, g, :], names, o) for g in range(n_groups)]


def overall(o, s: Settings) -> tuple[dict[str, list[float] | None], dict[str, Any]]:
    """({metric: [low, high]}, the replicates, for paired differences)."""
    import numpy as np

    reps = replicates(o, np.zeros(o.y.size, dtype=np.int64), 1, s)[0]
    auc = auc_replicates(o, s)
    if auc is not None:
        reps["roc_auc"] = auc
    return {m: interval(v, s.level) for m, v in reps.items()}, reps


def by_group(o, keys, s: Settings) -> dict[Any, dict[str, list[float] | None] | None]:
    """Group value -> {metric: [low, high]}, or None when the group is under min_rows."""
    import numpy as np

    names, inverse = np.unique(np.asarray(keys, dtype=object), return_inverse=True)
    reps = replicates(o, inverse, names.size, s)
    rows = np.bincount(inverse, minlength=names.size)
    out: dict[Any, dict[str, list[float] | None] | None] = {}
    for g, name in enumerate(names):
        if rows[g] < s.min_rows:
            out[name] = None
            continue
        spans = {m: interval(v, s.level) for m, v in reps[g].items()}
        auc = auc_replicates(o.subset(np.flatnonzero(inverse == g)), s)  # the group's own ranking
        if auc is not None:
            spans["roc_auc"] = interval(auc, s.level)
        out[name] = spans
    return out


def fairness(o, groups, min_size: int, s: Settings) -> dict[str, list[float] | None]:
    """Intervals of the disparities between groups (those of at least `min_size` rows,
    as `metrics.fairness` gates them)."""
    import numpy as np

    names, inverse = np.unique(np.asarray(groups, dtype=object), return_inverse=True)
    values, cols = row_values(o)
    sums = group_sums(values, inverse, names.size, s)
    rows = np.bincount(inverse, minlength=names.size)
    # the groups the point value compares (min_size); if one is too small for a
    # bootstrap, no interval (a bound check on it is insufficient), never one over fewer
    keep = [g for g in range(names.size) if rows[g] >= min_size]
    if len(keep) < 2 or min(rows[g] for g in keep) < s.min_rows:
        return {}
    at = {c: sums[:, keep, i] for i, c in enumerate(cols)}  # R x groups
    with np.errstate(divide="ignore", invalid="ignore"):

        def spread(x):  # as the point value: groups where it is undefined left out
            import warnings

            with warnings.catch_warnings():  # a resample with every group undefined: NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                return np.nanmax(x, axis=1) - np.nanmin(x, axis=1)

        if o.task == "regression":
            mae, rmse = at["abs"] / at["rows"], np.sqrt(at["sq"] / at["rows"])
            return {"mae_difference": interval(spread(mae), s.level),
                    "rmse_difference": interval(spread(rmse), s.level)}  # fmt: skip
        p = o.pos
        sel = at[f"pred{p}"] / at["rows"]
        tpr = at[f"tp{p}"] / np.where(at[f"true{p}"] > 0, at[f"true{p}"], np.nan)
        neg = at["rows"] - at[f"true{p}"]
        fpr = (at[f"pred{p}"] - at[f"tp{p}"]) / np.where(neg > 0, neg, np.nan)
        return {
            "demographic_parity_difference": interval(spread(sel), s.level),
            "demographic_parity_ratio": interval(sel.min(1) / sel.max(1), s.level),
            "equalized_odds_difference": interval(np.fmax(spread(tpr), spread(fpr)), s.level),
        }


def differences(new: dict[str, Any], old: dict[str, Any], s: Settings) -> dict[str, Any]:
    """Paired intervals of new - old per metric, from replicates on the same weights."""
    return {m: interval(new[m] - old[m], s.level) for m in new if m in old}
