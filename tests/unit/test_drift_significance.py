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


@pytest.mark.parametrize("seed", range(10))
def test_random_splits_of_small_data_raise_no_error_drift(tmp_path, seed):
    """344 rows (the size of the public dataset the issue tried), split 70/30 at random:
    before, 4 seeds in 10 raised error-level drift."""
    frame = pl.read_csv(SAMPLE / "adult.csv", infer_schema_length=None).sample(344, seed=seed)
    frame = frame.with_columns(split=pl.Series(np.random.default_rng(seed).random(344) < 0.7))
    frame.filter(pl.col("split")).drop("split").write_parquet(tmp_path / "ref.parquet")
    frame.filter(~pl.col("split")).drop("split").write_parquet(tmp_path / "new.parquet")
    r = checked(tmp_path, "income")
    drift = [a for a in anomalies(r.path) if a["type"] in ("drift", "label_drift")]
    assert drift == [], [(a["column"], a["description"], a.get("p_value")) for a in drift]


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
    found = {a["column"]: a for a in anomalies(r.path) if a["type"] in ("drift", "label_drift")}
    assert set(found) == {"x", "city", "when", "label"}, found
    assert found["label"]["type"] == "label_drift" and found["label"]["metric"] == "linf"
    assert found["label"]["test"] == "chi2" and found["x"]["test"] == "ks"
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
