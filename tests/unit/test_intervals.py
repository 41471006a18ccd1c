"""evaluate's bootstrap intervals against a plain numpy bootstrap, the gate on a bound,
and insufficient slices (issue 16)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, log_loss, mean_absolute_error, roc_auc_score

from mlstage.model import intervals as ci
from mlstage.model.metrics import Outcomes


def binary(n=3000, seed=1):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    score = np.clip(0.5 + (y - 0.5) * 0.4 + rng.normal(0, 0.25, n), 0.01, 0.99)
    pred = (score > 0.5).astype(int)
    classes = ["no", "yes"]
    o = Outcomes("classification", [classes[i] for i in y], [classes[i] for i in pred],
                 np.column_stack([1 - score, score]), classes, "yes")  # fmt: skip
    return o, y, pred, score


def numpy_bootstrap(fn, n, resamples=2000, seed=7):
    """Resampling rows with replacement, the textbook way, one resample at a time."""
    rng = np.random.default_rng(seed)
    values = [fn(rng.integers(0, n, n)) for _ in range(resamples)]
    return np.percentile(values, [2.5, 97.5])


@pytest.mark.parametrize("metric", ["accuracy", "f1", "log_loss", "roc_auc"])
def test_intervals_agree_with_a_plain_numpy_bootstrap(metric):
    o, y, pred, score = binary()
    spans, _ = ci.overall(o, ci.Settings(resamples=1000, seed=3))
    fns = {
        "accuracy": lambda i: accuracy_score(y[i], pred[i]),
        "f1": lambda i: f1_score(y[i], pred[i]),
        "log_loss": lambda i: log_loss(y[i], np.column_stack([1 - score, score])[i], labels=[0, 1]),
        "roc_auc": lambda i: roc_auc_score(y[i], score[i]),
    }
    ref = numpy_bootstrap(fns[metric], y.size, resamples=1000)
    lo, hi = spans[metric]
    width = ref[1] - ref[0]
    assert abs(lo - ref[0]) < 0.15 * width and abs(hi - ref[1]) < 0.15 * width, (spans[metric], ref)


def test_regression_intervals_and_determinism():
    rng = np.random.default_rng(0)
    y = rng.normal(10, 3, 2000)
    pred = y + rng.normal(0, 1, 2000)
    o = Outcomes("regression", y.tolist(), pred.tolist(), None, None, None)
    s = ci.Settings(resamples=800, seed=5)
    spans, _ = ci.overall(o, s)
    ref = numpy_bootstrap(lambda i: mean_absolute_error(y[i], pred[i]), y.size, 800)
    width = ref[1] - ref[0]
    assert (
        abs(spans["mae"][0] - ref[0]) < 0.15 * width
        and abs(spans["mae"][1] - ref[1]) < 0.15 * width
    )
    assert spans["mae"][0] < mean_absolute_error(y, pred) < spans["mae"][1]
    assert "max_error" not in spans and spans["r2"][0] < spans["r2"][1]
    assert ci.overall(o, s)[0] == spans  # same seed, same bits


def test_small_groups_are_insufficient_and_paired_differences_are_narrower():
    o, y, pred, score = binary(n=2000)
    keys = np.array(["big"] * 1990 + ["tiny"] * 10, dtype=object)
    by = ci.by_group(o, keys, ci.Settings(resamples=300))
    assert by["tiny"] is None and by["big"]["accuracy"] is not None
    # a second model that differs on a few rows: the paired difference is far narrower
    # than either model's own interval
    pred2 = pred.copy()
    pred2[:40] = 1 - pred2[:40]
    classes = ["no", "yes"]
    o2 = Outcomes("classification", [classes[i] for i in y], [classes[i] for i in pred2],
                  None, classes, "yes")  # fmt: skip
    s = ci.Settings(resamples=300)
    a, ra = ci.overall(o, s)
    _, rb = ci.overall(o2, s)
    d = ci.differences(ra, rb, s)["accuracy"]
    assert d[1] - d[0] < 0.5 * (a["accuracy"][1] - a["accuracy"][0])
    true_diff = accuracy_score(y, pred) - accuracy_score(y, pred2)
    assert d[0] <= true_diff <= d[1]


def test_evaluate_writes_intervals_and_gates_on_a_bound(adult_small, tmp_path):
    from mlstage import featurize, ingest, train
    from mlstage.stages.evaluate import evaluate

    from ..conftest import cli, write_json

    ingest([adult_small], "ds", null=["?"], split={"train": 8, "eval": 2})
    spec = {"format": "mlstage-features/1", "label": "income", "features": [
        {"column": "age", "transform": "standardize"}, {"column": "sex", "transform": "one_hot"}]}  # fmt: skip
    featurize("ds", "f", spec=write_json(tmp_path / "s.json", spec))
    cfg = {
        "format": "mlstage-train/1",
        "task": "classification",
        "seed": 0,
        "estimator": "LogisticRegression",
    }
    train("f", "m", config=write_json(tmp_path / "t.json", cfg))
    ev = {"format": "mlstage-evaluate/1", "slices": [["race"]], "sensitive": ["sex"],
          "thresholds": {"accuracy": {"min": 0.5, "on": "lower",
                                      "slices": {"race=Other": {"min": 0.5}}}}}  # fmt: skip
    r = evaluate("m", "ds", "e", config=write_json(tmp_path / "e.json", ev))
    doc = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert "accuracy" in doc["intervals"], (doc["intervals"], doc["bootstrap"])
    lo, hi = doc["intervals"]["accuracy"]
    assert lo < doc["overall"]["accuracy"] < hi and doc["bootstrap"]["resamples"] == 200
    assert set(doc["overall"]) >= set(doc["intervals"])  # the metrics object keeps its shape
    small = next(s for s in doc["slices"] if s["rows"] < 30)
    assert small["intervals"] is None
    assert doc["fairness"]["sex"]["intervals"]["demographic_parity_difference"]
    blessing = json.loads((tmp_path / "e" / "blessing.json").read_text())
    overall = next(c for c in blessing["checks"] if c["slice"] is None)
    assert overall["on"] == "lower" and overall["interval"] == [lo, hi] and overall["passed"]
    other = next(c for c in blessing["checks"] if c["slice"] == "race=Other")
    assert other["on"] == "lower" and other["interval"] is None  # a handful of rows
    assert other["insufficient"] and other["passed"] is None and "insufficient" in other["note"]
    assert r.manifest["summary"]["blessed"]
    # a lower bound above the point can never pass: it fails on the bound
    ev["thresholds"] = {"accuracy": {"min": (lo + doc["overall"]["accuracy"]) / 2, "on": "lower"}}
    assert cli("evaluate", "m", "ds", "--config", str(write_json(tmp_path / "e2.json", ev)),
               "-o", "e2").exit_code == 1  # fmt: skip
    ev["thresholds"]["accuracy"]["on"] = "point"
    assert cli("evaluate", "m", "ds", "--config", str(write_json(tmp_path / "e3.json", ev)),
               "-o", "e3").exit_code == 0  # fmt: skip
    ev["intervals"] = {"resamples": 0}
    ev["thresholds"]["accuracy"]["on"] = "upper"
    r = cli(
        "evaluate", "m", "ds", "--config", str(write_json(tmp_path / "e4.json", ev)), "-o", "e4"
    )
    assert r.exit_code == 1  # a bound that cannot be measured does not pass
    checks = json.loads((tmp_path / "e4" / "blessing.json").read_text())["checks"]
    assert checks[0]["passed"] is False and "no upper bound" in checks[0]["note"]
    # slices get ROC AUC intervals of their own ranking
    doc = json.loads((tmp_path / "e" / "metrics.json").read_text())
    white = next(s for s in doc["slices"] if s["name"] == "race=White")
    lo, hi = white["intervals"]["roc_auc"]
    assert lo < white["metrics"]["roc_auc"] < hi


def test_fairness_intervals_compare_the_groups_the_point_compares():
    """A group of 5 rows takes part in the point disparity (min_size 1): the interval
    must not be taken over the other groups alone."""
    o, y, pred, score = binary(n=405)
    groups = np.array(["a"] * 200 + ["b"] * 200 + ["c"] * 5, dtype=object)
    assert ci.fairness(o, groups, 1, ci.Settings(resamples=200)) == {}
    spans = ci.fairness(o, groups, 10, ci.Settings(resamples=200))  # c not compared
    assert spans["demographic_parity_difference"] is not None
