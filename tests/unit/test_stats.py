"""`stats` and `stats --merge`: numbers checked against direct polars/numpy computations."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from mlstage import ingest
from mlstage.errors import BadInput
from mlstage.stages.stats import merge, stats
from mlstage.validation.statsfile import parse_slices

from ..conftest import SAMPLE, write


@pytest.fixture
def adult(tmp_path):
    ingest([SAMPLE / "adult.csv"], "ds", null=["?"], split={"train": 8, "eval": 2})
    return pl.read_parquet("ds/train.parquet")


def load(path="st"):
    return json.loads(open(f"{path}/stats.json").read())


def test_numeric_column_matches_numpy(adult):
    stats("ds", "st")
    col = load()["splits"]["train"]["columns"]["age"]
    x = adult["age"].to_numpy().astype(float)
    assert col["count"] == len(x) and col["missing"] == 0
    assert col["min"] == x.min() and col["max"] == x.max()
    assert col["mean"] == pytest.approx(x.mean(), rel=1e-12)
    assert col["std"] == pytest.approx(x.std(ddof=1), rel=1e-12)
    assert col["zeros"] == 0
    for q, v in col["quantiles"].items():
        assert v == pytest.approx(np.quantile(x, float(q)))
    counts, edges = np.histogram(x, bins=10)
    assert col["histogram"]["counts"] == counts.tolist()
    assert col["histogram"]["edges"] == pytest.approx(edges.tolist())
    qh = col["quantile_histogram"]
    assert qh["edges"] == pytest.approx(np.quantile(x, np.linspace(0, 1, 11)).tolist())
    assert sum(qh["counts"]) == len(x)


def test_categorical_column_matches_polars(adult):
    stats("ds", "st")
    col = load()["splits"]["train"]["columns"]["workclass"]
    s = adult["workclass"]
    vc = s.drop_nulls().value_counts().sort(["count", "workclass"], descending=[True, False])
    assert col["missing"] == s.null_count() > 0
    assert col["count"] == s.len() - s.null_count()
    assert col["unique"] == vc.height
    assert col["values"] == [[v, c] for v, c in vc.iter_rows()]
    assert col["other"] == 0
    lengths = s.drop_nulls().str.len_chars()
    assert col["length"] == {
        "min": lengths.min(),
        "max": lengths.max(),
        "mean": pytest.approx(lengths.mean()),
    }


def test_nan_inf_zeros_dates_and_bools(tmp_path):
    df = pl.DataFrame(
        {
            "x": [0.0, 1.0, float("nan"), float("inf"), None, 3.0],
            "d": [None, "2020-01-02", "2020-03-04", "2019-12-31", "2020-01-01", "2020-01-01"],
            "b": ["true", "false", "true", None, "true", "true"],
        }
    )
    df = df.with_columns(pl.col("d").str.to_date(), pl.col("b") == "true")
    df.write_parquet(tmp_path / "t.parquet")  # a real NaN (in CSV text, "NaN" means missing)
    ingest([tmp_path / "t.parquet"], "t")
    stats("t", "st")
    cols = load()["splits"]["data"]["columns"]
    x = cols["x"]
    assert (x["count"], x["missing"], x["nan"], x["inf"], x["zeros"]) == (5, 1, 1, 1, 1)
    assert (x["min"], x["max"]) == (0.0, 3.0) and x["mean"] == pytest.approx(4 / 3)
    epoch = cols["d"].pop("epoch")  # seconds since 1970, for drift
    assert cols["d"] == {
        "type": "date",
        "count": 5,
        "missing": 1,
        "min": "2019-12-31",
        "max": "2020-03-04",
    }
    assert epoch["min"] == 1577750400.0 and epoch["count"] == 5  # 2019-12-31
    assert cols["b"]["values"] == [["true", 4], ["false", 1]] and cols["b"]["missing"] == 1


def test_slices_and_crosses(adult):
    stats("ds", "st", split="train", slices=["sex", "race"])
    doc = load()
    assert list(doc["splits"]) == ["train"]
    slices = doc["splits"]["train"]["slices"]
    female = adult.filter(pl.col("sex") == "Female")
    assert slices["sex=Female"]["rows"] == female.height
    assert slices["sex=Female"]["columns"]["age"]["mean"] == pytest.approx(female["age"].mean())
    cross = adult.filter((pl.col("sex") == "Male") & (pl.col("race") == "Black"))
    assert slices["sex=Male,race=Black"]["rows"] == cross.height
    assert sum(v["rows"] for k, v in slices.items() if k.startswith("race=")) == adult.height
    assert parse_slices(["sex,race"]) == [["sex", "race"]]
    assert parse_slices(["sex", "race"]) == [["sex"], ["race"], ["sex", "race"]]


def test_merge_of_partitions_is_exact_for_counts_and_close_for_quantiles(tmp_path):
    whole = pl.read_csv(SAMPLE / "adult.csv", null_values=["?"])
    parts = [whole[:10000], whole[10000:25000], whole[25000:]]
    for i, part in enumerate(parts):
        part.write_csv(tmp_path / f"p{i}.csv")
        ingest([tmp_path / f"p{i}.csv"], f"d{i}")
        stats(f"d{i}", f"s{i}")
    ingest([SAMPLE / "adult.csv"], "all", null=["?"])
    stats("all", "s_all")
    r = merge(["s0", "s1", "s2"], "merged")
    assert r.manifest["stage"] == "stats-merge"
    got = load("merged")["splits"]["data"]
    want = load("s_all")["splits"]["data"]
    assert got["rows"] == want["rows"] == 32561
    for name, w in want["columns"].items():
        g = got["columns"][name]
        assert (g["count"], g["missing"]) == (w["count"], w["missing"]), name
        if w["type"] in ("int", "float"):
            assert (g["min"], g["max"], g["zeros"]) == (w["min"], w["max"], w["zeros"])
            assert g["mean"] == pytest.approx(w["mean"], rel=1e-9)
            assert g["std"] == pytest.approx(w["std"], rel=1e-9)
            x = np.sort(whole[name].drop_nulls().to_numpy().astype(float))
            for q, v in g["quantiles"].items():
                # within 0.5% of rank (the summary's bound is 0.2%)
                rank_lo = np.searchsorted(x, v, side="left") / x.size
                rank_hi = np.searchsorted(x, v, side="right") / x.size
                assert rank_lo - 0.005 <= float(q) <= rank_hi + 0.005, (name, q)
            assert sum(g["histogram"]["counts"]) == w["count"] - w["nan"] - w["inf"]
        else:
            assert g["values"] == w["values"] and g["unique"] == w["unique"], name
            assert g["length"]["mean"] == pytest.approx(w["length"]["mean"])


def test_bad_inputs(tmp_path):
    write(tmp_path / "d.csv", "a,b\n1,x\n")
    ingest([tmp_path / "d.csv"], "d")
    with pytest.raises(BadInput, match="no split 'train'"):
        stats("d", "st", split="train")
    with pytest.raises(BadInput, match='slices: no column "nope"'):
        stats("d", "st", slices=["nope"])
    stats("d", "st")
    with pytest.raises(BadInput, match="this is a stats artifact; expected dataset"):
        stats("st", "st2")
    with pytest.raises(BadInput, match="two or more"):
        merge(["st"], "m")
    with pytest.raises(BadInput, match="this is a dataset artifact; expected stats"):
        merge(["st", "d"], "m")
