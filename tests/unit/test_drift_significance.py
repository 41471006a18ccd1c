"""Drift is significant and large (issue 16): random splits of small data raise no
error-level drift; real shifts of every kind are found, dates and 0/1 labels included;
each drift anomaly carries its test, p-value and sizes."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from mlstage import ingest, schema, stats, validate

from ..conftest import SAMPLE


def checked(folder, label):
    """`validate` of folder/new.parquet against the stats and schema of folder/ref.parquet."""
    ingest([folder / "ref.parquet"], "ref")
    ingest([folder / "new.parquet"], "new")
    stats("ref", "st")
    schema("st", "sc", label=label)
    return validate("new", "v", schema="sc", baseline="st")


def anomalies(path):
    return json.loads((path / "anomalies.json").read_text())["anomalies"]


def test_random_splits_of_small_data_raise_error_drift_at_most_at_the_level(tmp_path):
    """344 rows (the size of the public dataset the issue tried), split 70/30 at random, 10
    seeds: before, 4 seeds in 10 raised error-level drift. At the family-wise level 0.05 a
    split of unchanged data raises drift at most 1 time in 20 (here: seed 6, education)."""
    flagged = {}
    for seed in range(10):
        folder = tmp_path / f"s{seed}"
        folder.mkdir()
        frame = pl.read_csv(SAMPLE / "adult.csv", infer_schema_length=None).sample(344, seed=seed)
        frame = frame.with_columns(split=pl.Series(np.random.default_rng(seed).random(344) < 0.7))
        frame.filter(pl.col("split")).drop("split").write_parquet(folder / "ref.parquet")
        frame.filter(~pl.col("split")).drop("split").write_parquet(folder / "new.parquet")
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(folder)
            found = anomalies(checked(folder, "income").path)
        drift = [a for a in found if a["type"] in ("drift", "label_drift")]
        if drift:
            flagged[seed] = [(a["column"], a["p_value"], a["significance"]) for a in drift]
    assert len(flagged) <= 1, flagged


def shifted(n, seed, shift: bool):
    rng = np.random.default_rng(seed)
    start = np.datetime64("2024-01-01") if not shift else np.datetime64("2025-01-01")
    return pl.DataFrame({
        "x": rng.normal(0.5 if shift else 0.0, 1.0, n),
        "city": rng.choice(["a", "b", "c"], n, p=[0.2, 0.3, 0.5] if shift else [0.4, 0.3, 0.3]),
        "when": start + rng.integers(0, 365, n).astype("timedelta64[D]"),
        "label": (rng.random(n) < (0.7 if shift else 0.5)).astype(np.int64),
        "steady": rng.normal(0, 1, n),
    })  # fmt: skip


def test_shifts_of_every_kind_are_found_with_their_test(tmp_path):
    shifted(20_000, 1, False).write_parquet(tmp_path / "ref.parquet")
    shifted(5_000, 2, True).write_parquet(tmp_path / "new.parquet")
    r = checked(tmp_path, "label")
    drift = [a for a in anomalies(r.path) if a["type"] in ("drift", "label_drift")]
    found = {a["column"]: a for a in drift if a["metric"] != "smd"}
    assert set(found) == {"x", "city", "when", "label"}, found
    assert found["label"]["type"] == "label_drift" and found["label"]["metric"] == "linf"
    assert found["label"]["test"] == "chi2" and found["x"]["test"] == "ks"
    # a half-sd mean shift also passes the mean rule, with its own test
    mean = {a["column"]: a for a in drift if a["metric"] == "smd"}
    assert mean["x"]["test"] == "welch" and 0.4 < mean["x"]["value"] < 0.6, mean
    for a in found.values():
        assert a["p_value"] < 0.01 and a["n"] == 5_000 and a["n_baseline"] == 20_000
    assert "2024-" in found["when"]["description"] and "2025-" in found["when"]["description"]


def test_a_large_effect_on_few_rows_is_not_enough(tmp_path):
    """12 rows whose mix looks far from the baseline's: large L-infinity, but no test
    would call it more than noise."""
    shifted(20_000, 1, False).write_parquet(tmp_path / "ref.parquet")
    shifted(12, 3, False).write_parquet(tmp_path / "new.parquet")
    r = checked(tmp_path, "label")
    doc = json.loads((r.path / "anomalies.json").read_text())
    assert not [a for a in doc["anomalies"] if a["type"] in ("drift", "label_drift")]
    measured = doc["drift"]["new"] if "new" in doc["drift"] else next(iter(doc["drift"].values()))
    assert all("p_value" in m for m in measured.values())


def test_a_column_of_thousands_of_values_is_tested_fairly():
    """The baseline lists its top 1,000 values only: a test on them would see the
    winner's curse as drift (p was 0 on two samples of one distribution), so there is
    none, and the effect size decides."""
    from mlstage.validation.drift import chi2_p_value

    rng = np.random.default_rng(0)
    ref = rng.integers(0, 5000, 50_000).astype(str)
    cur = rng.integers(0, 5000, 20_000).astype(str)
    values, counts = np.unique(ref, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:1000]
    base = {"values": [[values[i], int(counts[i])] for i in order], "count": 50_000}
    v, c = np.unique(cur, return_counts=True)
    assert chi2_p_value(base, dict(zip(v.tolist(), c.tolist(), strict=True))) is None


def test_a_date_column_all_missing_in_the_new_data_is_no_crash(tmp_path):
    frame = shifted(2_000, 1, False)
    frame.write_parquet(tmp_path / "ref.parquet")
    frame.head(50).with_columns(when=pl.lit(None, dtype=pl.Datetime("us"))).write_parquet(
        tmp_path / "new.parquet"
    )
    r = checked(tmp_path, "label")
    assert r.manifest["kind"] == "anomalies"


def frames_with_mean_shift(tmp_path, n, shift):
    rng = np.random.default_rng(7)
    pl.DataFrame({"x": rng.normal(0, 1, n), "label": rng.integers(0, 2, n)}).write_parquet(
        tmp_path / "ref.parquet"
    )
    pl.DataFrame({"x": rng.normal(shift, 1, n), "label": rng.integers(0, 2, n)}).write_parquet(
        tmp_path / "new.parquet"
    )


def test_a_small_mean_shift_on_much_data_is_found_by_the_mean_rule(tmp_path):
    """0.1 sd on 200,000 rows moves too little mass across 10 buckets for the JSD
    (0.003 < 0.01): before the mean rule it passed; Evidently's preset flags it."""
    frames_with_mean_shift(tmp_path, 200_000, 0.1)
    r = checked(tmp_path, "label")
    doc = json.loads((r.path / "anomalies.json").read_text())
    m = next(iter(doc["drift"].values()))["x"]
    assert m["jsd"] < 0.01 and m["drifted"] is True
    found = [a for a in doc["anomalies"] if a["column"] == "x"]
    assert [a["metric"] for a in found] == ["smd"], found
    assert abs(found[0]["value"] - 0.1) < 0.01 and found[0]["p_value"] < 1e-10
    assert "0.1" in found[0]["description"] and "Welch" in found[0]["description"]


def test_a_schema_written_before_the_mean_rule_keeps_its_behaviour(tmp_path):
    """No `numeric_smd` in an older schema: no mean rule, and the KS test keeps the
    column's whole level."""
    frames_with_mean_shift(tmp_path, 200_000, 0.1)
    checked(tmp_path, "label")
    doc = json.loads((tmp_path / "sc" / "schema.json").read_text())
    del doc["drift"]["numeric_smd"]
    (tmp_path / "old.json").write_text(json.dumps(doc))
    r = validate("new", "v2", schema=tmp_path / "old.json", baseline="st")
    out = json.loads((r.path / "anomalies.json").read_text())
    assert not [a for a in out["anomalies"] if a["column"] == "x"]
    m = next(iter(out["drift"].values()))["x"]
    assert m["significance"] == pytest.approx(0.05 / 2)  # 2 columns, one test each


@pytest.mark.parametrize("seed", range(3))
def test_the_mean_test_agrees_with_scipy_on_the_raw_rows(seed):
    """Welch's test from the baseline's statistics (mean, sd, count) = scipy's
    ttest_ind(equal_var=False) on the rows themselves."""
    from scipy.stats import ttest_ind

    from mlstage.validation.compute import numeric_stats
    from mlstage.validation.drift import mean_shift

    rng = np.random.default_rng(seed)
    ref = rng.lognormal(0, 1, 3_000 + seed * 500)
    cur = rng.lognormal(0.05 * seed, 1.3, 1_500)
    base, sketch = numeric_stats(pl.Series(ref), "float")
    smd, p = mean_shift(base, sketch["n"], cur.size, float(cur.mean()), float(cur.var(ddof=1)))
    assert smd == pytest.approx(abs(cur.mean() - ref.mean()) / ref.std(ddof=1), rel=1e-9)
    assert p == pytest.approx(ttest_ind(cur, ref, equal_var=False).pvalue, rel=1e-6)


def test_the_ks_p_value_is_scipys_kstwo_where_a_test_can_reject():
    """min(1, 2 * smirnov(N, d)) (above 10,000 its corrected asymptotic form) against
    scipy's kstwo.sf(d, N), which validate used before, from N = 1 to 3,000,000 and d
    over (0, 1]: within 0.4% wherever kstwo's p is from 1e-6 to 0.3 (below 1e-6, below
    1e-4 too), never below it (beyond rounding): the same decisions, conservative above;
    and within [0, 1]."""
    from scipy.stats import kstwo

    from mlstage.validation.drift import ks_p_value

    for size in (1, 2, 3, 5, 10, 30, 100, 333, 1_000, 10_000, 10_001, 40_000, 500_000, 3_000_000):
        for d in np.linspace(0.0005, 1.0, 400):
            ours, before = ks_p_value(float(d), size, 10**12), float(kstwo.sf(d, size))
            assert 0.0 <= ours <= 1.0
            assert ours >= before * (1 - 1e-5), (size, d, ours, before)
            if 1e-6 <= before <= 0.3:
                assert ours == pytest.approx(before, rel=4e-3), (size, d, ours, before)
            elif before < 1e-6:  # far below any significance level, on both sides
                assert ours < 1e-4, (size, d, ours, before)
    assert ks_p_value(None, 10, 10) is None and ks_p_value(0.0, 10, 10) == 1.0
    assert np.isnan(ks_p_value(float("nan"), 10, 10))


def test_the_t_and_chi2_tails_are_scipy_stats_own():
    """scipy.special's stdtr and chdtrc are what scipy.stats' t.sf and chi2.sf compute."""
    from scipy import special, stats

    rng = np.random.default_rng(0)
    for _ in range(500):
        x, df, k = rng.exponential(3), 10 ** rng.uniform(0, 7), int(rng.integers(1, 300))
        assert stats.t.sf(x, df) == special.stdtr(df, -x)
        assert stats.chi2.sf(x * k, k) == special.chdtrc(k, x * k)


def test_a_number_column_all_missing_in_the_baseline_is_no_crash(tmp_path):
    """The baseline has no mean: the mean rule has nothing to compare, the shape rule
    (every row moved out of the missing bucket) reports it, saying so."""
    rng = np.random.default_rng(3)
    pl.DataFrame({"x": pl.Series([None] * 500, dtype=pl.Float64),
                  "label": rng.integers(0, 2, 500)}).write_parquet(tmp_path / "ref.parquet")  # fmt: skip
    pl.DataFrame({"x": rng.normal(0, 1, 500), "label": rng.integers(0, 2, 500)}).write_parquet(
        tmp_path / "new.parquet"
    )
    r = checked(tmp_path, "label")
    found = [a for a in anomalies(r.path) if a["type"] == "drift"]
    assert [a["metric"] for a in found] == ["jsd"], found
    assert "no finite value ->" in found[0]["description"]


def test_the_mean_test_needs_a_thousand_rows(tmp_path):
    """Welch's test on 100 rows of a skewed column (mostly zeros, a long tail) is not to be
    trusted: no mean p-value, no mean rule, and the KS test keeps the column's level."""
    rng = np.random.default_rng(5)

    def gains(n):
        return np.where(rng.random(n) < 0.92, 0, rng.lognormal(8, 1.5, n)).astype(np.int64)

    pl.DataFrame({"gain": gains(20_000), "label": rng.integers(0, 2, 20_000)}).write_parquet(
        tmp_path / "ref.parquet"
    )
    pl.DataFrame({"gain": gains(100), "label": rng.integers(0, 2, 100)}).write_parquet(
        tmp_path / "new.parquet"
    )
    r = checked(tmp_path, "label")
    m = next(iter(json.loads((r.path / "anomalies.json").read_text())["drift"].values()))["gain"]
    assert m["smd"] is not None and m["mean_p_value"] is None
    assert m["significance"] == pytest.approx(0.05 / 2)  # the whole column's level for KS


@pytest.mark.parametrize(
    "sd, var",
    [(1e-158, 1e-316), (1.0, float("inf")), (1e200, 1e300)],
    ids=["variances underflow", "variance overflows", "huge"],
)
def test_the_mean_test_refuses_numbers_floating_point_cannot_handle(sd, var):
    """No crash (a 0/0 in the degrees of freedom was exit 3) and no NaN p-value (NaN
    compared as significant): no test."""
    from mlstage.validation.drift import mean_shift

    smd, p = mean_shift({"mean": 0.0, "std": sd}, 5_000, 5_000, sd * 0.1, var)
    assert p is None or 0 <= p <= 1
    assert smd is None or smd >= 0
