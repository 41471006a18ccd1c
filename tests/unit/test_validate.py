"""`schema` and `validate`: every anomaly type, environments, drift numbers, no false drift."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp

from mlstage import ingest
from mlstage.errors import BadInput
from mlstage.stages.schema import schema
from mlstage.stages.stats import stats
from mlstage.stages.validate import validate
from mlstage.validation.drift import baseline_buckets, jensen_shannon

from ..conftest import SAMPLE, cli, write


def table(n: int, seed: int, *, shift=0.0, yes=0.5, bad_color=0.0, null_color=0.0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    colors = rng.choice(["red", "green", "blue"], size=n).astype(object)
    colors[rng.random(n) < bad_color] = "purple"
    colors[rng.random(n) < null_color] = None
    return pl.DataFrame(
        {
            "n": rng.integers(0, 100, n),
            "x": rng.normal(10 + shift, 1, n),
            "color": pl.Series(colors.tolist(), dtype=pl.String),
            "keep": rng.integers(0, 5, n),
            "label": np.where(rng.random(n) < yes, "yes", "no"),
        }
    )


def ingest_frame(df: pl.DataFrame, name: str, tmp_path) -> str:
    df.write_parquet(tmp_path / f"{name}.parquet")
    ingest([tmp_path / f"{name}.parquet"], name)
    return name


@pytest.fixture
def base(tmp_path):
    ingest_frame(table(2000, 0), "base", tmp_path)
    stats("base", "base_stats")
    schema("base_stats", "base_schema", label="label")
    schema("base_stats", "ranged_schema", label="label", infer_ranges=True)
    return json.loads(open("ranged_schema/schema.json").read())


def kinds(path="anom"):
    doc = json.loads(open(f"{path}/anomalies.json").read())
    return doc, {(a["type"], a["column"]): a for a in doc["anomalies"]}


def test_inferred_schema(base):
    assert base["label"] == "label"
    assert base["columns"]["label"] == {
        "type": "string",
        "min_presence": 1.0,
        "domain": ["no", "yes"],
        "environments": ["training"],
    }
    assert base["columns"]["color"]["domain"] == ["blue", "green", "red"]
    assert base["columns"]["x"]["type"] == "float" and "min" in base["columns"]["x"]
    assert base["drift"]["categorical_linf"] == 0.03 and base["drift"]["numeric_jsd"] == 0.01
    assert base["drift"]["significance"] == 0.05 and base["drift"]["numeric_smd"] == 0.05
    assert "min" not in json.loads(open("base_schema/schema.json").read())["columns"]["x"]
    text = open("base_schema/schema.json").read()
    assert text.index('"n"') < text.index('"x"') < text.index('"color"')  # the data's column order


def test_a_fresh_sample_of_the_same_distribution_is_clean(base, tmp_path):
    ingest_frame(table(2000, 1), "fresh", tmp_path)
    r = validate("fresh", "anom", schema="base_schema", baseline="base_stats")
    doc, _ = kinds()
    drift = doc["drift"]["data"]
    assert r.exit_code == 0 and doc["ok"], doc["anomalies"]
    assert drift["x"]["jsd"] < 0.01 and drift["color"]["linf"] < 0.05


def test_every_anomaly_type(base, tmp_path):
    edited = dict(base, min_rows=5000, max_row_count_ratio=1.5)
    write(tmp_path / "edited.json", json.dumps(edited))
    bad = table(600, 2, shift=2.5, yes=0.8, bad_color=0.2, null_color=0.3)
    bad = bad.drop("keep").with_columns(pl.col("n").cast(pl.String) + "!", extra=pl.lit(1))
    ingest_frame(bad, "bad", tmp_path)
    r = validate("bad", "anom", schema=str(tmp_path / "edited.json"), baseline="base_stats")
    assert r.exit_code == 1
    doc, found = kinds()
    assert not doc["ok"]
    expected = {
        ("too_few_rows", None): "error",
        ("row_count_change", None): "error",
        ("missing_column", "keep"): "error",
        ("unexpected_column", "extra"): "warning",
        ("type_mismatch", "n"): "error",
        ("low_presence", "color"): "error",
        ("out_of_domain", "color"): "error",
        ("out_of_range", "x"): "error",
        ("drift", "x"): "error",
        ("label_drift", "label"): "error",
    }
    for key, severity in expected.items():
        assert key in found, (key, sorted(found))
        assert found[key]["severity"] == severity, key
        assert found[key]["split"] == "data"
    ood = found[("out_of_domain", "color")]
    assert ood["examples"] == ["purple"] and 0.15 < ood["value"] < 0.4
    assert (
        ood["description"].startswith("color: ")
        and "not in the domain, e.g. 'purple'" in ood["description"]
    )
    assert found[("row_count_change", None)]["value"] == pytest.approx(600 / 2000)


def test_small_out_of_domain_is_a_warning_and_severity_override(base, tmp_path):
    ingest_frame(table(2000, 3, bad_color=0.004), "few", tmp_path)
    validate("few", "anom", schema="base_schema")
    doc, found = kinds()
    assert doc["ok"] and found[("out_of_domain", "color")]["severity"] == "warning"
    write(tmp_path / "strict.json", json.dumps(dict(base, severity={"out_of_domain": "error"})))
    assert validate("few", "anom2", schema=str(tmp_path / "strict.json")).exit_code == 1


def test_serving_environment_accepts_data_without_the_label(base, tmp_path):
    ingest_frame(table(500, 4).drop("label"), "serve", tmp_path)
    assert validate("serve", "anom", schema="base_schema", environment="serving").exit_code == 0
    r = validate("serve", "anom_t", schema="base_schema", environment="training")
    _, found = kinds("anom_t")
    assert r.exit_code == 1 and ("missing_column", "label") in found


def test_label_balance_50_50_to_70_30_fails_by_default(base, tmp_path):
    ingest_frame(table(2000, 5, yes=0.7), "shifted", tmp_path)
    validate("shifted", "anom", schema="base_schema", baseline="base")  # a dataset as baseline
    doc, found = kinds()
    assert not doc["ok"] and found[("label_drift", "label")]["value"] == pytest.approx(
        0.2, abs=0.04
    )


def test_drift_numbers_match_scipy(base, tmp_path):
    shifted = table(3000, 6, shift=0.3)
    ingest_frame(shifted, "cur", tmp_path)
    validate("cur", "anom", schema="base_schema", baseline="base_stats")
    doc, _ = kinds()
    got = doc["drift"]["data"]["x"]
    base_stats = json.loads(open("base_stats/stats.json").read())["splits"]["data"]["columns"]["x"]
    values = np.sort(shifted["x"].to_numpy())
    # the current values in the baseline's quantile buckets, counted directly
    inner = base_stats["quantile_histogram"]["edges"][1:-1]
    q = np.bincount(np.searchsorted(inner, values, side="right"), minlength=len(inner) + 1)
    p = baseline_buckets(base_stats)
    q = [*q.tolist(), 0]
    assert got["jsd"] == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=1e-9)
    assert jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=1e-9)
    reference = ks_2samp(table(2000, 0)["x"].to_numpy(), values).statistic
    assert got["ks"] == pytest.approx(reference, abs=0.005)
    # exact against the baseline's summary CDF: the sup over a fine grid of every value
    from mlstage.validation.compute import summary_cdf

    summary = json.loads(open("base_stats/sketches.json").read())["splits"]["data"]["columns"]["x"][
        "summary"
    ]
    grid = np.unique(np.concatenate([summary, values]))
    f_cur = np.searchsorted(values, grid, side="right") / values.size
    f_cur_left = np.searchsorted(values, grid, side="left") / values.size
    f_base = summary_cdf(summary, grid)
    f_base_left = np.concatenate([[0.0], f_base[:-1]])
    exact = max(np.abs(f_cur - f_base).max(), np.abs(f_cur_left - f_base_left).max())
    assert got["ks"] == pytest.approx(exact, abs=1e-12)


@pytest.mark.parametrize(
    "source, nulls, label", [("adult.csv", ["?"], "income"), ("chicago_taxi.csv", [], None)]
)
def test_random_split_of_real_data_raises_no_drift(source, nulls, label):
    ingest([SAMPLE / source], "ds", null=nulls, split={"train": 8, "eval": 2})
    stats("ds", "st")
    schema("st", "sch", label=label)
    r = validate("ds", "anom", schema="sch", baseline="st", split="eval")
    doc, found = kinds()
    assert not [k for k in found if k[0] in ("drift", "label_drift")], doc["drift"]
    assert r.exit_code == 0, [
        a["description"] for a in doc["anomalies"] if a["severity"] == "error"
    ]


def test_schema_update_widens_and_reports(base, tmp_path):
    ingest_frame(table(500, 7, shift=5, bad_color=0.3), "newer", tmp_path)
    r = schema("newer", "wider", update="ranged_schema")
    changes = r.manifest["summary"]["changes"]
    assert "color: domain += purple" in changes
    assert any(c.startswith("x: max ") for c in changes)
    widened = json.loads(open("wider/schema.json").read())
    assert "purple" in widened["columns"]["color"]["domain"]
    assert validate("newer", "anom", schema="wider").exit_code == 0


def test_bad_schema_and_inputs(base, tmp_path):
    ingest_frame(table(100, 8), "d", tmp_path)
    write(tmp_path / "broken.json", '{"format": "mlstage-schema/1",\n "columns": {\n')
    with pytest.raises(BadInput, match=r"broken\.json: line 3: not valid JSON"):
        validate("d", "a", schema=str(tmp_path / "broken.json"))
    write(tmp_path / "wrong.json", json.dumps({**base, "columns": {"x": {"type": "decimal"}}}))
    with pytest.raises(
        BadInput, match=r"wrong\.json: at \$\.columns\.x\.type: 'decimal' is not one of"
    ):
        validate("d", "a", schema=str(tmp_path / "wrong.json"))
    write(
        tmp_path / "s.toml",
        'format = "mlstage-schema/1"\nlabel = "label"\n[columns.x]\ntype = "float"\n',
    )
    assert validate("d", "a_toml", schema=str(tmp_path / "s.toml")).exit_code == 0
    with pytest.raises(BadInput, match="this is a schema artifact; expected stats or dataset"):
        validate("d", "a", schema="base_schema", baseline="base_schema")
    with pytest.raises(BadInput, match="no split 'eval'"):
        validate("d", "a", schema="base_schema", split="eval")
    with pytest.raises(BadInput, match="environment 'prod'"):
        validate("d", "a", schema="base_schema", environment="prod")
    with pytest.raises(BadInput, match='label: no column "nope"'):
        schema("d", "s", label="nope")
    assert not (tmp_path / "a").exists()


def test_cli_exit_codes_and_json(base, tmp_path):
    ingest_frame(table(2000, 9, shift=3), "moved", tmp_path)
    args = [
        "validate",
        "moved",
        "--schema",
        "base_schema",
        "--baseline",
        "base_stats",
        "-o",
        "anom",
        "--json",
    ]
    r = cli(*args)
    assert r.exit_code == 1
    rec = json.loads(r.stdout)
    assert rec["ok"] is False and rec["errors"] >= 1 and rec["exit_code"] == 1
    assert "drift" in r.stderr
    again = cli(*args)
    assert (
        again.exit_code == 1 and json.loads(again.stdout)["up_to_date"] is True
    )  # the failed gate repeats
    r = cli("stats", "base", "--slice", "nope", "-o", "x")
    assert r.exit_code == 2 and 'no column "nope"' in r.stderr


def test_diff_shows_schema_and_stats_payload_changes(base, tmp_path):
    ingest_frame(table(2000, 10, shift=1), "moved", tmp_path)
    stats("moved", "moved_stats")
    schema("moved_stats", "moved_schema", label="label")
    r = cli("diff", "base_stats", "moved_stats", "--json")
    rows = {row["field"]: (row["a"], row["b"]) for row in json.loads(r.stdout)}
    a, b = rows["stats.data.x.mean"]
    assert a == pytest.approx(10, abs=0.1) and b == pytest.approx(11, abs=0.1)
    from mlstage.store.diff import diff_artifacts
    from mlstage.store.store import Store

    store = Store.open()
    changed = diff_artifacts(*store.load("base_schema"), *store.load("ranged_schema"))
    assert ("schema.columns.x.min", None, pytest.approx(base["columns"]["x"]["min"])) in changed


def test_date_and_datetime_ranges_compare_values_not_text(tmp_path):
    """Datetime ranges were compared as text ("…10:00:00" against the bound
    "…10:00:00.250000"), so data failed the range inferred from itself; dates and
    datetimes now compare as values, fractions of a second included."""
    write(tmp_path / "a.csv", "ts,d\n2024-01-01T10:00:00.250,2024-01-01\n"
          "2024-01-02T10:00:00,2024-01-05\n2024-01-03T11:00:00.750,2024-02-01\n")  # fmt: skip
    ingest([tmp_path / "a.csv"], "a")
    stats("a", "a_stats")
    schema("a_stats", "a_schema", infer_ranges=True)
    assert validate("a", "anom", schema="a_schema").manifest["summary"]["ok"]
    write(tmp_path / "b.csv", "ts,d\n2024-01-01T10:00:00.100,2023-12-31\n"
          "2024-01-02T00:00:00,2024-01-05\n2024-01-03T11:00:00.800,2024-02-02\n")  # fmt: skip
    ingest([tmp_path / "b.csv"], "b")
    validate("b", "anom_b", schema="a_schema")
    _, found = kinds("anom_b")
    ranges = {c: a for (t, c), a in found.items() if "range" in t}
    assert set(ranges) == {"ts", "d"}, found
    assert "2024-01-02" not in json.dumps(ranges["ts"]) and "2024-01-05" not in json.dumps(ranges)
