"""The seven ways the chain broke on ordinary data (issue 13), each pinned by a test that
failed before its fix: multiclass and null-bearing evaluations, nulls training never saw,
JSON typing, missing labels, fairness and slice gates, estimator errors at fit time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from starlette.testclient import TestClient

from mlstage import evaluate, featurize, ingest, predict, train
from mlstage.errors import BadInput
from mlstage.model.artifact import Model
from mlstage.serving.app import create_app
from mlstage.stages.deploy import deploy
from mlstage.store.store import Store

from ..conftest import cli, write, write_json

TRAIN_LR = {"format": "mlstage-train/1", "task": "classification",
            "estimator": "LogisticRegression", "params": {"max_iter": 1000}, "seed": 0}  # fmt: skip


def _table(n: int = 300, seed: int = 0, classes=("a", "b", "c")) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    k = rng.integers(0, 40, size=n)
    g = rng.choice(["F", "M"], size=n)
    y = np.array(classes)[np.digitize(x + 0.02 * (k - 20), [-0.5, 0.5][: len(classes) - 1])]
    return pl.DataFrame({"x": x.round(5), "k": k, "g": g, "y": y})


def _chain(frame: pl.DataFrame, spec_features, train_cfg=TRAIN_LR, fmt="csv"):
    """ingest -> featurize -> train in the current directory; the train result."""
    src = Path(f"src.{fmt}")
    frame.write_csv(src) if fmt == "csv" else frame.write_parquet(src)
    ingest([src], "data", split={"train": 7, "eval": 3})
    spec = {"format": "mlstage-features/1", "label": "y", "features": spec_features}
    featurize("data", "features", spec=write_json(Path("spec.json"), spec))
    return train("features", "model", config=write_json(Path("t.json"), train_cfg))


NUMERIC = [{"column": "x", "transform": "standardize"}, {"column": "k", "transform": "standardize"},
           {"column": "g", "transform": "one_hot"}]  # fmt: skip


def test_1_evaluate_a_multiclass_model(tmp_path):
    _chain(_table(), NUMERIC)
    cfg = write_json(tmp_path / "e.json", {"format": "mlstage-evaluate/1",
                                           "thresholds": {"accuracy": {"min": 0.5}}})  # fmt: skip
    r = cli("evaluate", "model", "data", "--config", str(cfg), "-o", "ev")
    assert r.exit_code == 0, r.stderr
    curves = json.loads((tmp_path / "ev" / "curves.json").read_text())
    pd = curves["partial_dependence"]
    assert pd and set(pd[0]["classes"]) == {"a", "b", "c"}
    # the class curves are probabilities: at every grid value they sum to 1
    sums = np.sum([v for v in pd[0]["classes"].values()], axis=0)
    assert np.allclose(sums, 1.0)


def test_2_evaluate_with_missing_numbers_in_an_int_column(tmp_path):
    frame = _table(classes=("no", "yes"))
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) % 7 == 0).then(None).otherwise(pl.col("k")).alias("k")
    )
    _chain(frame, [{"column": "x", "transform": "standardize"},
                   {"column": "k", "transform": "standardize", "impute": "median"}])  # fmt: skip
    cfg = write_json(tmp_path / "e.json", {"format": "mlstage-evaluate/1",
                                           "partial_dependence": {"top": 2}})  # fmt: skip
    r = evaluate("model", "data", "ev", config=cfg)
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert set(metrics["importance"]["values"]) == {"x", "k"}
    pd = {
        p["column"]: p
        for p in json.loads((tmp_path / "ev" / "curves.json").read_text())["partial_dependence"]
    }
    assert "k" in pd and all(v is not None for v in pd["k"]["values"])
    assert r.manifest["summary"]["blessed"] is True


def test_3_a_null_where_training_had_none(tmp_path):
    """Every prediction path imputes it with the fitted value (the median, here)."""
    _chain(_table(classes=("no", "yes")), NUMERIC)
    model = Model.load("model")
    entry = next(e for e in model.transform.entries if e["entry"]["column"] == "k")
    train_k = pl.read_parquet(tmp_path / "data" / "train.parquet")["k"]
    assert entry["imputed"] == "unseen" and entry["impute_value"] == train_k.median()
    row = {"x": 0.1, "k": None, "g": "F"}
    same = {"x": 0.1, "k": train_k.median(), "g": "F"}
    got, proba = model.predict_rows([model.coerce(row), model.coerce(same)])
    assert got[0] == got[1] and np.allclose(proba[0], proba[1])
    # batch: predict and evaluate on a dataset whose k is null everywhere
    pl.DataFrame({"x": [0.1, -2.0], "k": [None, None], "g": ["F", None], "y": ["no", "yes"]},
                 schema_overrides={"k": pl.Int64}).write_csv("new.csv")  # fmt: skip
    ingest(["new.csv"], "new", types={"k": "int"})
    assert cli("predict", "model", "new", "-o", "p").exit_code == 0
    cfg = write_json(tmp_path / "e.json", {"format": "mlstage-evaluate/1"})
    assert cli("evaluate", "model", "new", "--config", str(cfg), "-o", "ev").exit_code == 0
    r = cli("whatif", "model", "--row", json.dumps(row), "--vary", "x=0,1", "--json")
    assert r.exit_code == 0, r.stderr
    deploy(
        Store.open(),
        "model",
        None,
        tmp_path / "reg",
        name="m",
        allow_unblessed=True,
    )
    with TestClient(create_app(tmp_path / "reg", watch=False)) as client:
        ok = client.post("/v1/models/m:predict", json={"instances": [row, same]})
        assert ok.status_code == 200 and ok.json()["predictions"][0] == ok.json()["predictions"][1]
        short = client.post("/invocations", content="x,k,g\n0.1,3\n",
                            headers={"Content-Type": "text/csv"})  # fmt: skip
        assert (
            short.status_code == 400
            and "2 fields where the header has 3" in short.json()["message"]
        )
        blank = client.post("/invocations", content="x,k,g\n0.1,,F\n",
                            headers={"Content-Type": "text/csv"})  # fmt: skip
        assert blank.status_code == 200


def test_4_json_arrays_are_typed_like_csv(tmp_path):
    records = [{"v": 17, "s": "a"} for _ in range(150)] + [{"v": 17.5, "s": None}]
    write(tmp_path / "a.json", json.dumps(records))
    r = ingest(["a.json"], "d")
    assert r.manifest["summary"]["schema"]["v"] == "float"
    assert pl.read_parquet("d/data.parquet")["v"].to_list()[-1] == 17.5
    # a sample that saw only whole numbers: exit 2 naming the record, as for CSV
    r = cli("ingest", "a.json", "--infer-rows", "10", "-o", "d2")
    assert r.exit_code == 2 and "column \"v\": record 151: cannot parse '17.5'" in r.stderr
    assert not (tmp_path / "d2").exists()
    # --type is honoured
    assert (
        cli("ingest", "a.json", "--infer-rows", "10", "--type", "v=float", "-o", "d3").exit_code
        == 0
    )
    assert pl.read_parquet("d3/data.parquet")["v"].to_list()[-1] == 17.5
    # decimals survive as written
    write(tmp_path / "p.json", '[{"v": 0.1}, {"v": 1.0000000000000002}, {"v": 1e-7}]')
    ingest(["p.json"], "d4")
    assert pl.read_parquet("d4/data.parquet")["v"].to_list() == [0.1, 1.0000000000000002, 1e-7]
    for name, text, message in [
        ("obj.json", '{"a": 1}', "the JSON document is an object, not an array of records"),
        ("nums.json", "[1, 2]", "record 1 is a single value (1), not an object"),
        ("nested.json", '[{"a": 1}, {"a": {"b": 2}}]', 'column "a": record 2 holds a nested value'),
        ("broken.json", '[{"a": 1},', "not valid JSON"),
    ]:
        write(tmp_path / name, text)
        r = cli("ingest", name, "-o", f"out-{name}")
        assert r.exit_code == 2 and message in r.stderr, r.stderr
    write(tmp_path / "n.jsonl", '{"a": 1}\n{"a": [1, 2]}\n')
    r = cli("ingest", "n.jsonl", "-o", "out-n")
    assert r.exit_code == 2 and 'line 2, column "a": a nested value (an array)' in r.stderr, (
        r.stderr
    )


def test_5_rows_without_a_label_are_dropped_and_counted(tmp_path, capfd):
    frame = _table(classes=("no", "yes")).with_columns(
        pl.when(pl.int_range(pl.len()) % 10 == 0).then(None).otherwise(pl.col("y")).alias("y")
    )
    tuned = {**TRAIN_LR, "tune": {"search": "random", "n_iter": 2, "cv": 3, "n_jobs": 1,
                                  "space": {"C": {"loguniform": [0.1, 10]}}}}  # fmt: skip
    t = _chain(frame, NUMERIC, tuned)
    train_y = pl.read_parquet(tmp_path / "data" / "train.parquet")["y"]
    assert t.manifest["summary"]["unlabelled_rows"] == train_y.null_count() > 0
    assert f"{train_y.null_count()} rows without a label" in capfd.readouterr().err
    cfg = write_json(tmp_path / "e.json", {"format": "mlstage-evaluate/1"})
    evaluate("model", "data", "ev", config=cfg)
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    eval_y = pl.read_parquet(tmp_path / "data" / "eval.parquet")["y"]
    assert metrics["unlabelled_rows"] == eval_y.null_count()
    assert metrics["rows"] == eval_y.len() - eval_y.null_count()


def test_5b_a_float_label_with_nan_is_missing_too(tmp_path):
    frame = _table().with_columns(y=pl.Series([float("nan"), *np.arange(299.0)]))
    t = _chain(frame, NUMERIC, {**TRAIN_LR, "task": "regression", "estimator": "Ridge", "params": {}},
               fmt="parquet")  # fmt: skip
    assert (
        sum(
            json.loads((tmp_path / "model" / "metrics.json").read_text())[
                "unlabelled_rows"
            ].values()
        )
        == 1
    )
    assert t.manifest["kind"] == "model"


def test_6_fairness_gates(tmp_path):
    frame = _table(600, classes=("no", "yes")).with_columns(
        g=pl.when(pl.int_range(pl.len()) < 10).then(None).otherwise(pl.col("g"))
    )
    _chain(frame, NUMERIC)
    base = {"format": "mlstage-evaluate/1", "sensitive": ["g"], "min_slice_size": 20,
            "slices": [["g"]]}  # fmt: skip
    evaluate("model", "data", "ev", config=write_json(tmp_path / "e.json", base))
    f = json.loads((tmp_path / "ev" / "metrics.json").read_text())["fairness"]["g"]
    groups = f["groups"]
    assert groups["<missing>"]["gated"] is False and groups["<missing>"]["rows"] < 20
    rates = [g["selection_rate"] for k, g in groups.items() if g["gated"]]
    assert f["demographic_parity_difference"] == pytest.approx(max(rates) - min(rates))
    # a threshold on a slice that does not exist is a typo: exit 2 naming it
    typo = {**base, "thresholds": {"accuracy": {"slices": {"g=Alien": {"min": 0.9}}}}}
    r = cli(
        "evaluate",
        "model",
        "data",
        "--config",
        str(write_json(tmp_path / "t.json", typo)),
        "-o",
        "ev2",
    )
    assert r.exit_code == 2 and "no slice 'g=Alien'" in r.stderr and not (tmp_path / "ev2").exists()
    # clip with min > max
    bad = {"format": "mlstage-features/1", "label": "y",
           "features": [{"column": "x", "transform": "clip", "min": 3, "max": 1}]}  # fmt: skip
    r = cli("featurize", "data", "--spec", str(write_json(tmp_path / "c.json", bad)), "-o", "f2")
    assert r.exit_code == 2 and "clip needs min <= max" in r.stderr


def test_6b_regression_fairness_is_reported_and_gated(tmp_path):
    frame = _table(600).with_columns(y=pl.col("x") * 3 + pl.col("k") * 0.1)
    _chain(frame, NUMERIC, {**TRAIN_LR, "task": "regression", "estimator": "Ridge", "params": {}})
    cfg = {"format": "mlstage-evaluate/1", "sensitive": ["g"],
           "thresholds": {"mae_difference": {"max": 0.0}}}  # fmt: skip
    r = evaluate("model", "data", "ev", config=write_json(tmp_path / "e.json", cfg))
    f = json.loads((tmp_path / "ev" / "metrics.json").read_text())["fairness"]["g"]
    preds = predict("model", "data", "p", split="eval", keep=["y", "g"])
    assert preds.manifest["kind"] == "predictions"
    p = pl.read_parquet(tmp_path / "p" / "predictions.parquet")
    mae = p.group_by("g").agg((pl.col("prediction") - pl.col("y")).abs().mean().alias("m"))
    want = mae["m"].max() - mae["m"].min()
    assert f["mae_difference"] == pytest.approx(want)
    assert set(f["groups"]) == {"F", "M"} and f["rmse_difference"] >= 0
    assert r.manifest["summary"]["blessed"] is False  # the gate runs: no two groups are equal


def test_7_estimator_refusals_at_fit_time_are_bad_input(tmp_path):
    cfg = {**TRAIN_LR, "estimator": "KNeighborsClassifier", "params": {"n_neighbors": 5000}}
    with pytest.raises(
        BadInput, match="KNeighborsClassifier cannot be fitted on these features: .+"
    ):
        _chain(_table(classes=("no", "yes")), NUMERIC, cfg)
    r = cli("train", "features", "--config", str(write_json(tmp_path / "k.json", cfg)), "-o", "m2")
    assert r.exit_code == 2 and "n_neighbors" in r.stderr and not (tmp_path / "m2").exists()
    # NaN features for an estimator that refuses them: named, with the remedy
    frame = _table(classes=("no", "yes")).with_columns(
        x=pl.when(pl.int_range(pl.len()) % 5 == 0).then(None).otherwise(pl.col("x"))
    )
    with pytest.raises(BadInput, match=r"does not accept missing values.*: x; add \"impute\""):
        _chain(frame, NUMERIC)
    # ...but another refusal on such data keeps its own reason (a continuous label for a
    # classifier that takes missing values was blamed on them, naming that very estimator)
    cfg = {**TRAIN_LR, "estimator": "HistGradientBoostingClassifier", "params": {}}
    with pytest.raises(BadInput, match="cannot be fitted on these features: .*continuous") as e:
        _chain(frame.with_columns(y=pl.col("x").fill_null(0.0) * 3), NUMERIC, cfg)
    assert "missing values" not in str(e.value)


# -- a hostile review's findings (each failed before its fix) ------------------------------


def test_non_finite_numbers_in_configs_are_bad_input(tmp_path):
    _chain(_table(classes=("no", "yes")), NUMERIC)
    write(tmp_path / "s.json", '{"format": "mlstage-features/1", "label": "y", "features":'
          ' [{"column": "x", "transform": "clip", "min": NaN, "max": 1}]}')  # fmt: skip
    r = cli("featurize", "data", "--spec", "s.json", "-o", "f2")
    assert r.exit_code == 2 and "at $.features[0].min" in r.stderr
    write(tmp_path / "e.toml", 'format = "mlstage-evaluate/1"\n[thresholds.accuracy]\nmin = -inf\n')
    r = cli("evaluate", "model", "data", "--config", "e.toml", "-o", "e2")
    assert r.exit_code == 2 and "at $.thresholds.accuracy.min" in r.stderr
    write(
        tmp_path / "d.json",
        '{"format": "mlstage-evaluate/1", "min_slice_size": 1, "min_slice_size": 2}',
    )
    r = cli("evaluate", "model", "data", "--config", "d.json", "-o", "e3")
    assert r.exit_code == 2 and "'min_slice_size' is given twice" in r.stderr
    for cfg, message in [
        ({"slices": [["g", "g"]]}, "names a column twice"),
        ({"thresholds": {"accuracy": {"min": 0.9, "max": 0.1}}}, "min is above max"),
    ]:
        path = write_json(tmp_path / "bad.json", {"format": "mlstage-evaluate/1", **cfg})
        r = cli("evaluate", "model", "data", "--config", str(path), "-o", "e4")
        assert r.exit_code == 2 and message in r.stderr, r.stderr


def test_a_baseline_for_other_inputs_or_classes_is_bad_input(tmp_path):
    _chain(_table(classes=("no", "yes")), NUMERIC)
    other = _table(classes=("lo", "hi")).rename({"k": "kk"})
    other.write_csv("o.csv")
    ingest(["o.csv"], "odata", split={"train": 7, "eval": 3})
    spec = {"format": "mlstage-features/1", "label": "y",
            "features": [{"column": "kk", "transform": "standardize"}]}  # fmt: skip
    featurize("odata", "ofeat", spec=write_json(tmp_path / "os.json", spec))
    train("ofeat", "omodel", config=write_json(tmp_path / "ot.json", TRAIN_LR))
    cfg = write_json(tmp_path / "e.json", {"format": "mlstage-evaluate/1"})
    r = cli("evaluate", "model", "data", "--baseline", "omodel", "--config", str(cfg), "-o", "ev")
    assert r.exit_code == 2 and '"kk", which the baseline model needs' in r.stderr


def test_nan_in_a_float_slice_column_is_the_missing_group(tmp_path):
    frame = _table(400, classes=("no", "yes")).with_columns(
        f=pl.when(pl.int_range(pl.len()) % 5 == 0).then(float("nan"))
        .when(pl.int_range(pl.len()) % 7 == 0).then(None).otherwise(pl.col("k") % 3 * 1.0)
    )  # fmt: skip
    _chain(frame, NUMERIC, fmt="parquet")
    cfg = {"format": "mlstage-evaluate/1", "slices": [["f"]], "sensitive": ["f"]}
    evaluate("model", "data", "ev", config=write_json(tmp_path / "e.json", cfg))
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert "<missing>" in m["fairness"]["f"]["groups"] and "NaN" not in m["fairness"]["f"]["groups"]
    names = {s["name"] for s in m["slices"]}
    assert "f=<missing>" in names and not any("NaN" in n for n in names)
    eval_f = pl.read_parquet(tmp_path / "data" / "eval.parquet")["f"]
    missing = eval_f.null_count() + eval_f.is_nan().sum()
    assert m["fairness"]["f"]["groups"]["<missing>"]["rows"] == missing


def test_request_bodies_read_missing_markers_as_ingest_does(tmp_path):
    frame = _table(classes=("no", "yes")).with_columns(
        g=pl.when(pl.int_range(pl.len()) % 9 == 0).then(None).otherwise(pl.col("g"))
    )
    _chain(frame, [*NUMERIC[:2], {"column": "g", "transform": "one_hot"}])
    deploy(
        Store.open(),
        "model",
        None,
        tmp_path / "reg",
        name="m",
        allow_unblessed=True,
    )
    with TestClient(create_app(tmp_path / "reg", watch=False)) as client:

        def csv(body):
            return client.post("/invocations", content=body, headers={"Content-Type": "text/csv"})

        base = csv("x,k,g\n0.5,,\n").json()["predictions"]
        for marker in ("NA", "null", "None", "N/A"):
            r = csv(f"x,k,g\n0.5,{marker},{marker}\n")
            assert r.status_code == 200 and r.json()["predictions"] == base, (marker, r.text)
        assert csv("\ufeffx,k,g\n0.5,3,F\n").status_code == 200  # a byte-order mark
        r = csv("x,k,k\n0.5,3,4\n")
        assert r.status_code == 400 and "k twice" in r.json()["message"]
        r = client.post(
            "/v1/models/m:predict", content='{"instances": [{"x": 1, "x": 2, "k": 1, "g": "F"}]}'
        )
        assert r.status_code == 400 and "'x' twice" in r.json()["error"]


def test_a_column_of_another_type_is_refused_in_batch_as_in_serving(tmp_path):
    frame = _table(classes=("no", "yes")).with_columns(b=pl.col("k") % 2 == 0)
    _chain(frame, [*NUMERIC, {"column": "b", "transform": "one_hot"}], fmt="parquet")
    frame.with_columns(pl.col("b").cast(pl.Int64)).write_parquet("as_int.parquet")
    ingest(["as_int.parquet"], "ints")
    r = cli("predict", "model", "ints", "-o", "p")
    assert (
        r.exit_code == 2
        and 'column "b": the column is int, the transform was fitted on bool' in r.stderr
    )


def test_feature_specs_that_could_not_work(tmp_path):
    _chain(_table(classes=("no", "yes")), NUMERIC)
    for extra, message in [
        ({"passthrough": ["y"]}, '"y" is the label'),
        ({"passthrough": ["x"]}, 'passthrough "x" has the name of a feature output'),
    ]:
        spec = {"format": "mlstage-features/1", "label": "y", "features": NUMERIC, **extra}
        r = cli(
            "featurize", "data", "--spec", str(write_json(tmp_path / "s.json", spec)), "-o", "f2"
        )
        assert r.exit_code == 2 and message in r.stderr, r.stderr
    # a bucket count far above the distinct values is capped, and fast
    spec = {"format": "mlstage-features/1", "label": "y",
            "features": [{"column": "k", "transform": "bucketize", "buckets": 100000}]}  # fmt: skip
    start = __import__("time").monotonic()
    r = featurize("data", "f3", spec=write_json(tmp_path / "b.json", spec))
    assert __import__("time").monotonic() - start < 30
    train_k = pl.read_parquet(tmp_path / "data" / "train.parquet")["k"]
    assert r.manifest["summary"]["features"] <= train_k.n_unique()


def test_a_float_label_with_no_value_in_training_is_named(tmp_path):
    frame = _table().with_columns(y=pl.lit(float("nan")))
    with pytest.raises(BadInput, match='column "y": no row of the training split has a label'):
        _chain(frame, NUMERIC, {**TRAIN_LR, "task": "regression", "estimator": "Ridge", "params": {}},
               fmt="parquet")  # fmt: skip


def test_json_records_naming_a_key_twice_are_refused(tmp_path):
    write(tmp_path / "dup.json", '[{"a": 1, "a": 2}]')
    r = cli("ingest", "dup.json", "-o", "d")
    assert r.exit_code == 2 and "names the key 'a' twice" in r.stderr


def test_whatif_varies_dates_and_missing_values_and_datetimes_keep_the_time(tmp_path):
    import datetime as dt

    frame = _table(classes=("no", "yes")).with_columns(
        t=pl.datetime(2024, 1, 1) + pl.duration(minutes=pl.col("k") * 97),
        d=pl.date(2024, 1, 1) + pl.duration(days=pl.col("k")),
    )
    _chain(frame, [*NUMERIC, {"column": "t", "transform": "datetime"},
                   {"column": "d", "transform": "datetime"}], fmt="parquet")  # fmt: skip
    outputs = Model.load("model").transform.outputs
    assert "t@hour" in outputs and "t@minute" in outputs and "d@hour" not in outputs
    row = {
        "x": 0.1,
        "k": 3,
        "g": "F",
        "t": dt.datetime(2024, 1, 2, 5).isoformat(),
        "d": "2024-01-03",
    }
    r = cli(
        "whatif", "model", "--row", json.dumps(row), "--vary", "d", "--vary", "k=1,null", "--json"
    )
    assert r.exit_code == 0, r.stderr
    result = {v["column"]: v["rows"] for v in json.loads(r.stdout)}
    assert len(result["d"]) >= 2 and [x["value"] for x in result["k"]] == [1, None]


@pytest.mark.parametrize("value", [float("inf"), -float("inf"), 1e39])
def test_a_value_past_float32_in_scored_data_is_bad_input_naming_it(tmp_path, value):
    """±inf, or a finite value past float32, in data being scored made the features
    infinite and scikit-learn refused them: exit 3 in predict and evaluate (the row path
    already answered 400). Now exit 2 naming the column and the value, nothing written."""
    _chain(_table(classes=("no", "yes")), NUMERIC)
    bad = _table(30, seed=1, classes=("no", "yes")).with_columns(
        x=pl.when(pl.int_range(pl.len()) == 7).then(value).otherwise(pl.col("x"))
    )
    bad.write_parquet(tmp_path / "bad.parquet")
    ingest([tmp_path / "bad.parquet"], "bad")
    _scoring_refuses(tmp_path, "bad", 'column "x"', repr(value), "float32")


def _scoring_refuses(tmp_path, dataset: str, *said: str) -> None:
    """predict and evaluate of `dataset` with "model": exit 2 saying each of `said`,
    nothing written."""
    cfg = write_json(tmp_path / "e.json", {"format": "mlstage-evaluate/1",
                                           "thresholds": {"accuracy": {"min": 0.5}}})  # fmt: skip
    for args in (["predict", "model", dataset, "-o", "p"],
                 ["evaluate", "model", dataset, "--config", str(cfg), "-o", "ev"]):  # fmt: skip
        r = cli(*args)
        assert r.exit_code == 2 and all(s in r.stderr for s in said), r.stderr
        assert not (tmp_path / args[-1]).exists()


def test_values_near_the_largest_double_are_bad_input_in_stats_and_featurize(tmp_path):
    """A value near the largest double (a common "missing" marker) made the mean or sd
    overflow, and stats and featurize crashed writing JSON (exit 3). Now exit 2 naming the
    column and the size of its values, with the remedy; nothing written."""
    frame = _table(classes=("no", "yes")).with_columns(
        x=pl.when(pl.int_range(pl.len()) % 50 == 5)
        .then(1.7976931348623157e308)
        .otherwise(pl.col("x"))
    )
    frame.write_csv(tmp_path / "big.csv")
    ingest([tmp_path / "big.csv"], "data", split={"train": 7, "eval": 3})
    r = cli("stats", "data", "-o", "st")
    assert r.exit_code == 2 and 'column "x"' in r.stderr and "1.79769e+308" in r.stderr, r.stderr
    assert "--null" in r.stderr and not (tmp_path / "st").exists()
    spec = {"format": "mlstage-features/1", "label": "y",
            "features": [{"column": "x", "transform": "standardize"}]}  # fmt: skip
    r = cli("featurize", "data", "--spec", str(write_json(tmp_path / "s.json", spec)), "-o", "f")
    assert r.exit_code == 2 and 'column "x"' in r.stderr and "standardize" in r.stderr, r.stderr
    assert "1.79769e+308" in r.stderr and not (tmp_path / "f").exists()


def test_batch_scoring_refuses_a_negative_log_input_as_the_row_path_does(tmp_path):
    """predict and evaluate scored a negative input to `log` (its feature NaN) where
    serve, whatif and featurize refuse it: now exit 2 naming the column and the value."""
    spec = [{"column": "x", "transform": "log"}, {"column": "g", "transform": "one_hot"}]
    frame = _table(classes=("no", "yes")).with_columns(x=pl.col("x").abs())
    _chain(frame, spec)
    neg = _table(30, seed=1, classes=("no", "yes")).with_columns(x=pl.col("x").abs())
    neg.with_columns(x=pl.when(pl.int_range(pl.len()) == 4).then(-3.0).otherwise("x")).write_csv(
        tmp_path / "neg.csv"
    )
    ingest([tmp_path / "neg.csv"], "neg")
    _scoring_refuses(tmp_path, "neg", 'column "x"', "-3.0")
    assert cli("predict", "model", "data", "-o", "ok").exit_code == 0  # non-negative: scored


def test_kept_columns_named_like_the_predictions_own_are_refused(tmp_path):
    """`--keep` of a data column named split, prediction or proba_<class> was silently
    overwritten by the predictions' own columns; now exit 2 naming it. A column named
    split is kept when --split leaves the split column out."""
    frame = _table(classes=("no", "yes"))
    frame = frame.with_columns(split=pl.col("g"), prediction=pl.col("x"), proba_yes=pl.col("k"))
    _chain(frame, NUMERIC)
    for col in ("split", "prediction", "proba_yes"):
        r = cli("predict", "model", "data", "--keep", col, "-o", "p")
        assert r.exit_code == 2 and f'column "{col}"' in r.stderr, r.stderr
        assert not (tmp_path / "p").exists()
    r = cli("predict", "model", "data", "--split", "eval", "--keep", "split", "-o", "p")
    assert r.exit_code == 0, r.stderr
    p = pl.read_parquet(tmp_path / "p" / "predictions.parquet")
    assert set(p["split"].unique()) <= {"F", "M"} and "proba_no" in p.columns


def test_a_slice_threshold_on_a_value_holding_a_comma_is_gated(tmp_path):
    """The config check split a slice key on every comma, so "city=Washington, DC" (the
    very name metrics.json gives the slice) was refused as not asked for."""
    frame = _table(classes=("no", "yes")).with_columns(
        city=pl.when(pl.col("g") == "F").then(pl.lit("Washington, DC")).otherwise(pl.lit("Boston"))
    )
    _chain(frame, NUMERIC)
    cfg = write_json(tmp_path / "e.json", {
        "format": "mlstage-evaluate/1", "slices": [["city"], ["city", "g"]],
        "thresholds": {"log_loss": {"max": 10, "slices": {
            "city=Washington, DC": {"max": 1e-9}, "city=Washington, DC,g=F": {"max": 10}}}}})  # fmt: skip
    r = cli("evaluate", "model", "data", "--config", str(cfg), "-o", "ev")
    assert r.exit_code == 1, r.stderr  # the slice's own bound fails the gate
    gates = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert "city=Washington, DC" in json.dumps(gates)
    bad = write_json(tmp_path / "b.json", {"format": "mlstage-evaluate/1", "slices": [["city"]],
        "thresholds": {"log_loss": {"slices": {"g=F": {"max": 1}}}}})  # fmt: skip
    r = cli("evaluate", "model", "data", "--config", str(bad), "-o", "ev2")
    assert r.exit_code == 2 and "not in a slice the config asks for" in r.stderr


def test_a_column_with_the_empty_name_is_kept_by_predict(tmp_path):
    """pandas' to_csv writes its index under an empty header; `--keep ""` of it was exit 3
    (polars named the column "column_0" when the batch was read)."""
    frame = _table(classes=("no", "yes")).with_row_index("").with_columns(pl.col("").cast(pl.Int64))
    _chain(frame, NUMERIC)
    r = cli("predict", "model", "data", "--keep", "", "-o", "p")
    assert r.exit_code == 0, r.stderr
    p = pl.read_parquet(tmp_path / "p" / "predictions.parquet")
    assert p.columns[:2] == ["split", ""] and sorted(p[""].to_list()) == list(range(300))


def test_a_model_its_names_clients_could_not_use_is_refused_by_deploy(tmp_path):
    """deploy put a model of other inputs (or another label or task) under a name whose
    clients send the stable version's: their requests then failed (400) with no word at
    deploy. A model needing an input those clients do not send is refused, naming it;
    --allow-new-signature lets it in. What they send still serves (an input no longer
    taken is ignored), and a retrained model of the same signature goes in as before."""
    from mlstage.stages.deploy import CheckOptions

    skip = CheckOptions(skip=True)
    _chain(_table(classes=("no", "yes")), NUMERIC[:2])  # inputs x, k
    deploy(Store.open(), "model", None, tmp_path / "reg", name="churn", allow_unblessed=True,
           check=skip)  # fmt: skip
    cfg = {**TRAIN_LR, "params": {"C": 0.5}}  # retrained: same inputs, label and task
    train("features", "model2", config=write_json(tmp_path / "t2.json", cfg))
    r = deploy(Store.open(), "model2", None, tmp_path / "reg", name="churn",
               allow_unblessed=True, check=skip)  # fmt: skip
    assert r.version == 2
    spec = {"format": "mlstage-features/1", "label": "y", "features": NUMERIC}  # g is new
    featurize("data", "f3", spec=write_json(tmp_path / "s3.json", spec))
    train("f3", "model3", config=write_json(tmp_path / "t3.json", TRAIN_LR))
    with pytest.raises(BadInput, match="new inputs: g") as e:
        deploy(Store.open(), "model3", None, tmp_path / "reg", name="churn",
               allow_unblessed=True, check=skip)  # fmt: skip
    assert "version 2" in str(e.value) and not (tmp_path / "reg" / "churn" / "3").exists()
    r = cli("deploy", "model3", "--registry", "reg", "--name", "churn", "--allow-unblessed",
            "--skip-check", "--allow-new-signature")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert json.loads((tmp_path / "reg" / "churn" / "serving.json").read_text())["version"] == 3
    # x alone: what version 3's clients send (x, k, g) still serves
    spec = {"format": "mlstage-features/1", "label": "y", "features": NUMERIC[:1]}
    featurize("data", "f4", spec=write_json(tmp_path / "s4.json", spec))
    train("f4", "model4", config=write_json(tmp_path / "t4.json", TRAIN_LR))
    r = deploy(Store.open(), "model4", None, tmp_path / "reg", name="churn",
               allow_unblessed=True, check=skip)  # fmt: skip
    assert r.version == 4


def test_datasets_and_models_from_before_offsets_were_read_as_utc_wall_time(tmp_path, monkeypatch):
    """Before, a +02:00 column was kept time-zone aware (UTC), and a model fitted on it
    kept an aware fill value. Such a model scores, evaluates and transforms the same data
    as before (a naive column with an aware fill was exit 3), and a span appended to such
    a dataset stores its datetimes alike (its parts' schemas differed: exit 3 reading)."""
    from mlstage.data import typeinfer
    from mlstage.stages.spans import append

    rows = [f"2024-0{1 + i % 9}-1{i % 10}T{i % 24:02d}:00:00+02:00,{i % 7},{'yes' if i % 3 else 'no'}"
            for i in range(400)]  # fmt: skip
    write(tmp_path / "a.csv", "t,x,y\n" + "\n".join(rows[:300]) + "\n")
    write(tmp_path / "b.csv", "t,x,y\n" + "\n".join(rows[300:]) + "\n")
    with monkeypatch.context() as old:  # the earlier reading: +02:00 kept aware
        old.setattr(typeinfer, "has_offset", lambda fmt: False)
        ingest([tmp_path / "a.csv"], "data", split={"train": 7, "eval": 3})
        spec = {"format": "mlstage-features/1", "label": "y", "features": [
            {"column": "t", "transform": "datetime", "parts": ["hour", "month"]},
            {"column": "x", "transform": "standardize"}]}  # fmt: skip
        featurize("data", "features", spec=write_json(tmp_path / "s.json", spec))
        train("features", "model", config=write_json(tmp_path / "t.json", TRAIN_LR))
        before = predict("model", "data", "p_old").path / "predictions.parquet"
        before = pl.read_parquet(before)
    assert pl.read_parquet(tmp_path / "data" / "train.parquet").schema["t"].time_zone == "UTC"
    transform = json.loads((tmp_path / "model" / "transform.json").read_text())
    assert "+00:00" in json.dumps(transform)  # an aware fill, as such models hold
    now = pl.read_parquet(predict("model", "data", "p").path / "predictions.parquet")
    assert now.equals(before)
    cfg = write_json(tmp_path / "e.json", {"format": "mlstage-evaluate/1",
                                           "thresholds": {"accuracy": {"min": 0.0}}})  # fmt: skip
    assert cli("evaluate", "model", "data", "--config", str(cfg), "-o", "ev").exit_code == 0
    assert cli("featurize", "data", "--transform", "model", "-o", "f2").exit_code == 0
    grown = append([tmp_path / "b.csv"], "data", "data2")
    for split in ("train", "eval"):
        parts = sorted((tmp_path / "data2").glob(f"{split}*.parquet"))
        assert len({str(pl.read_parquet_schema(p)["t"]) for p in parts}) == 1
    assert predict("model", "data2", "p2").manifest["summary"]["rows"] == 400
    assert grown.manifest["summary"]["rows"] == 400


def test_a_threshold_on_a_cross_the_config_does_not_ask_for_is_refused(tmp_path):
    """ "g=F,k=3" matched the single slice g by the value "F,k=3" and was then skipped as a
    slice with no rows: a threshold silently not gated. A key is cut where ",COL=" names
    a column, so it is the cross of g and k, which the config does not ask for."""
    _chain(_table(classes=("no", "yes")), NUMERIC)
    cfg = write_json(tmp_path / "e.json", {"format": "mlstage-evaluate/1", "slices": [["g"]],
        "thresholds": {"log_loss": {"slices": {"g=F,k=3": {"max": 1e-9}}}}})  # fmt: skip
    r = cli("evaluate", "model", "data", "--config", str(cfg), "-o", "ev")
    assert r.exit_code == 2 and "'g=F,k=3'" in r.stderr, r.stderr
