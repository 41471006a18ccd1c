"""validate reads a column a partition at a time (validation/column_scan.py): the cases a
review of that rewrite found, each against what the whole column gives."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

from mlstage import ingest, schema, stats, validate
from mlstage.errors import BadInput


def run(tmp_path, ref: pl.DataFrame, new: pl.DataFrame, label: str, schema_edit=None, **ingest_kw):
    ref.write_parquet(tmp_path / "ref.parquet")
    new.write_parquet(tmp_path / "new.parquet")
    ingest([tmp_path / "ref.parquet"], "ref")
    ingest([tmp_path / "new.parquet"], "new", **ingest_kw)
    stats("ref", "st")
    schema("st", "sc", label=label)
    sc = "sc"
    if schema_edit:
        doc = json.loads((tmp_path / "sc" / "schema.json").read_text())
        schema_edit(doc)
        (tmp_path / "edited.json").write_text(json.dumps(doc))
        sc = str(tmp_path / "edited.json")
    r = validate("new", "v", schema=sc, baseline="st")
    return json.loads((r.path / "anomalies.json").read_text())


def test_nan_examples_are_listed_once_across_partitions(tmp_path):
    f = np.ones(3_000)
    f[[0, 1_000, 2_000]] = np.nan
    frame = pl.DataFrame({"f": f, "label": np.arange(3_000) % 2})

    def cap(doc):
        doc["columns"]["f"]["max"] = 0.5

    doc = run(tmp_path, frame, frame, "label", cap, partition_rows=1_000)
    found = [a for a in doc["anomalies"] if a["type"] == "out_of_range"]
    # NaN is past any max for polars (as in one file): listed once (null in JSON), not
    # once per partition
    assert len(found) == 1 and found[0]["examples"] == [None, 1.0], found


def test_an_int_label_with_many_new_values_is_still_compared_by_its_classes(tmp_path):
    rng = np.random.default_rng(1)
    ref = pl.DataFrame({"x": rng.normal(size=4_000), "label": rng.integers(0, 2, 4_000)})
    new = pl.DataFrame({"x": rng.normal(size=4_000), "label": rng.integers(0, 5_000, 4_000)})
    doc = run(tmp_path, ref, new, "label")
    found = [a for a in doc["anomalies"] if a["type"] == "label_drift"]
    assert [a["metric"] for a in found] == ["linf"], found


def test_a_schema_range_of_the_wrong_type_is_bad_input(tmp_path):
    frame = pl.DataFrame({"f": [1.0, 2.0, 3.0], "label": [0, 1, 0]})

    def wrong(doc):
        doc["columns"]["f"]["min"] = "abc"

    with pytest.raises(BadInput, match="cannot be compared") as info:
        run(tmp_path, frame, frame, "label", wrong)
    assert info.value.column == "f"


def test_dates_past_the_year_9999_are_no_crash(tmp_path):
    ref = pl.DataFrame({"d": [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(2_000)],
                        "label": np.arange(2_000) % 2})  # fmt: skip
    new = ref.with_columns(pl.col("d").dt.offset_by("20000y"))
    doc = run(tmp_path, ref, new, "label")
    found = [a for a in doc["anomalies"] if a["column"] == "d" and a["type"] == "drift"]
    assert found and "since 1970" in found[0]["description"]


def test_infinite_values_sit_in_the_same_bucket_on_both_sides(tmp_path):
    """Two samples of one distribution with 10% infinities: before, the baseline left its
    infinities out and the current counted them as missing (JSD 0.053, PSI 0.71)."""
    rng = np.random.default_rng(2)

    def sample(n):
        x = rng.normal(size=n)
        x[rng.random(n) < 0.1] = np.inf
        return pl.DataFrame({"x": x, "label": rng.integers(0, 2, n)})

    doc = run(tmp_path, sample(20_000), sample(5_000), "label")
    m = next(iter(doc["drift"].values()))["x"]
    assert m["jsd"] < 0.002 and m["psi"] < 0.01, m


def test_an_empty_split_measures_no_drift():
    from mlstage.validation.checks import Checker

    types = {"x": "float", "d": "date"}
    base_frame = pl.DataFrame({"x": [1.0, 2.0, 3.0] * 10,
                               "d": [dt.date(2024, 1, i + 1) for i in range(30)]})  # fmt: skip
    from mlstage.validation.compute import split_stats

    base_frame.write_parquet("b.parquet")
    table, sketches = split_stats("b.parquet", types, [])
    sch = {"columns": {"x": {"type": "float"}, "d": {"type": "date"}},
           "drift": {"numeric_jsd": 0.01, "numeric_smd": 0.05, "significance": 0.05}}  # fmt: skip
    checker = Checker(sch, "training", {**table, "sketches": sketches})
    checker.check_split("s", base_frame.head(0), types)
    assert [a["type"] for a in checker.anomalies] == ["too_few_rows"]
    assert checker.drift["s"] == {}


def test_a_presence_just_under_one_is_not_shown_as_100_percent():
    from mlstage.validation.checks import _pct

    assert _pct(0.9982) == "99.82%" and _pct(1.0) == "100%" and _pct(0.5) == "50%"
