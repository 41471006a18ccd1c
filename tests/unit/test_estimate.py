"""CBPE: performance estimated from calibrated probabilities, against the truth of a
synthetic covariate shift where labels are drawn from known probabilities (issue 16)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from mlstage.model.estimate import binary_estimate, calibration_map


def world(n, shift, seed):
    """x ~ N(shift, 1); P(y=1 | x) = sigmoid(2x - 1), the same before and after the shift."""
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    p = 1 / (1 + np.exp(-(2 * x - 1)))
    y = rng.random(n) < p
    return p, y


@pytest.mark.parametrize("shift", [0.0, 1.0, -1.0])
def test_estimates_land_near_the_truth_under_covariate_shift(shift):
    p, y = world(200_000, shift, seed=1)
    pred = p > 0.5
    est = binary_estimate(p, pred)
    assert abs(est["accuracy"] - accuracy_score(y, pred)) < 0.01
    assert abs(est["f1"] - f1_score(y, pred)) < 0.01
    assert abs(est["roc_auc"] - roc_auc_score(y, p)) < 0.01


def test_the_shift_moves_the_estimate_as_it_moves_the_truth():
    p0, y0 = world(100_000, 0.0, 2)
    p1, y1 = world(100_000, 0.6, 3)
    before, after = binary_estimate(p0, p0 > 0.5), binary_estimate(p1, p1 > 0.5)
    truth = accuracy_score(y1, p1 > 0.5) - accuracy_score(y0, p0 > 0.5)
    assert abs((after["accuracy"] - before["accuracy"]) - truth) < 0.01


def test_an_overconfident_model_is_recalibrated_by_the_evaluations_curve():
    p, y = world(100_000, 0.0, 4)
    over = np.clip(0.5 + (p - 0.5) * 1.8, 0.001, 0.999)  # too sure of itself
    edges = np.linspace(0, 1, 11)
    bins = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (over >= lo) & (over < hi)
        bins.append({"bin": [lo, hi], "rows": int(m.sum()),
                     "mean_predicted": float(over[m].mean()) if m.any() else None,
                     "fraction_positive": float(y[m].mean()) if m.any() else None})  # fmt: skip
    ece, mapping = calibration_map(bins)
    assert ece > 0.05
    pred = over > 0.5
    raw = binary_estimate(over, pred)["accuracy"]
    fixed = binary_estimate(mapping(over), pred)["accuracy"]
    truth = accuracy_score(y, pred)
    assert abs(fixed - truth) < 0.015 < abs(raw - truth)


def test_cbpe_leaves_out_rows_without_probabilities():
    import polars as pl

    from mlstage.model.estimate import cbpe

    p, y = world(4000, 0.0, 5)
    frame = pl.DataFrame({"prediction": np.where(p > 0.5, "yes", "no"),
                          "proba_no": 1 - p, "proba_yes": p})  # fmt: skip
    frame = pl.concat([frame, pl.DataFrame({"prediction": ["no"] * 10, "proba_no": [None] * 10,
                                            "proba_yes": [None] * 10})], how="diagonal_relaxed")  # fmt: skip
    metrics = {"task": "classification", "classes": ["no", "yes"], "positive": "yes"}
    est = cbpe(frame, metrics, {})
    assert est["rows"] == 4000 and est["rows_without_probabilities"] == 10
    assert abs(est["metrics"]["accuracy"] - accuracy_score(y, p > 0.5)) < 0.02
