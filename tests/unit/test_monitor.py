"""monitor: request logs against training; drift as validate measures it, prediction
drift, live metrics from feedback checked against scikit-learn, windows, bad input."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from mlstage import featurize, ingest, monitor, stats, train, validate
from mlstage.errors import BadInput
from mlstage.model.artifact import Model
from mlstage.serving.requestlog import RequestLog
from mlstage.stages.deploy import CheckOptions, deploy
from mlstage.stages.evaluate import evaluate
from mlstage.stages.schema import schema
from mlstage.store.store import Store

from ..conftest import SAMPLE, cli, working_in, write_json

NO_CHECK = CheckOptions(skip=True)  # the pre-push check is tested in tests/serve/test_release.py

SPEC = {"format": "mlstage-features/1", "label": "income", "features": [
    {"column": "age", "transform": "standardize"},
    {"column": "hours-per-week", "transform": "standardize"},
    {"column": "workclass", "transform": "one_hot"},
    {"column": "sex", "transform": "one_hot"}]}  # fmt: skip
T0 = dt.datetime(2026, 11, 20, 12, 0, 0)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("monitor")
    with working_in(root):
        ingest([SAMPLE / "adult.csv"], "ds", null=["?"], split={"train": 8, "eval": 2})
        stats("ds", "st")
        schema("st", "sc", label="income")
        featurize("ds", "feat", spec=write_json(root / "spec.json", SPEC))
        cfg = {"format": "mlstage-train/1", "task": "classification", "seed": 0,
               "estimator": "LogisticRegression"}  # fmt: skip
        train("feat", "m", config=write_json(root / "train.json", cfg))
        ev = {"format": "mlstage-evaluate/1", "thresholds": {"accuracy": {"min": 0.7}}}
        evaluate("m", "ds", "ev", config=write_json(root / "ev.json", ev))
        model = Model.load(root / "m")
        eval_rows = pl.read_parquet(root / "ds" / "eval.parquet")
        # Clean traffic: eval rows, 40 per request, logged as the server logs them.
        clean = log_rows(root / "clean", model, eval_rows.head(2000), "c")
        older = eval_rows.slice(2000, 2000).with_columns(
            pl.col("age") + 25, pl.col("hours-per-week") + 20
        )
        drifted = log_rows(root / "drifted", model, older, "d")
    return {"root": root, "clean": clean, "drifted": drifted, "model": model}


def log_rows(folder, model, frame, tag, per_request=40):
    """Predict `frame` in requests of `per_request` rows, log them like the server does,
    and return the labels as feedback (request_id, row, income)."""
    log = RequestLog(folder, exclude=["sex"])
    inputs = list(model.signature["inputs"])
    rows = frame.select(inputs).to_dicts()
    labels = frame["income"].to_list()
    feedback = []
    for start in range(0, len(rows), per_request):
        batch = rows[start : start + per_request]
        pred, proba = model.predict_rows(batch)
        rid = f"{tag}-{start // per_request}"
        log.add(rid, "income", 1, batch, pred, proba, model.class_names)
        feedback += [
            {"request_id": rid, "row": i, "income": labels[start + i]} for i in range(len(batch))
        ]
    log.flush()
    return pl.DataFrame(feedback)


@pytest.fixture
def here(built, monkeypatch):
    monkeypatch.chdir(built["root"])
    return built["root"]


def test_clean_traffic_calls_for_nothing_and_live_metrics_match_sklearn(here, built, tmp_path):
    fb = tmp_path / "fb.csv"
    built["clean"].write_csv(fb)
    r = monitor("clean", tmp_path / "mon", baseline="st", schema="sc", evaluation="ev",
                feedback=fb, join=["request_id", "row"])  # fmt: skip
    doc = json.loads((tmp_path / "mon" / "report.json").read_text())
    assert r.exit_code == 0 and doc["retrain"] is False and doc["reasons"] == []
    assert doc["requests"]["rows"] == 2000 and doc["requests"]["versions"] == {"1": 2000}
    # sex was kept out of the logs: not a missing column, not an anomaly at all
    assert doc["anomalies"] == [] and "sex" not in doc["drift"]
    # Live metrics against scikit-learn on the same joined rows.
    logs = pl.read_parquet(here / "clean" / "*.parquet").join(
        built["clean"].with_columns(pl.col("row")), on=["request_id", "row"]
    )
    truth = logs["income"].to_list()
    live = doc["live"]
    assert live["joined"] == 2000
    assert live["metrics"]["accuracy"] == pytest.approx(accuracy_score(truth, logs["prediction"]))
    y = (np.array(truth) == ">50K").astype(int)
    assert live["metrics"]["roc_auc"] == pytest.approx(roc_auc_score(y, logs["proba_>50K"]))
    (check,) = live["checks"]
    assert check["metric"] == "accuracy" and check["passed"] is True
    assert check["evaluation_value"] == json.loads((here / "ev" / "metrics.json").read_text())[
        "overall"]["accuracy"]  # fmt: skip
    # The predicted-class frequencies are the logged predictions' own.
    freq = doc["predictions"]["measures"]["predicted_class"]["frequencies"][">50K"]["live"]
    assert freq == pytest.approx((logs["prediction"] == ">50K").mean())


def test_drift_is_measured_as_validate_measures_it(here, built, tmp_path):
    r = monitor("drifted", tmp_path / "mon", baseline="st", schema="sc", evaluation="ev")
    doc = json.loads((tmp_path / "mon" / "report.json").read_text())
    assert r.exit_code == 1 and doc["retrain"] is True
    drifted = {a["column"] for a in doc["anomalies"] if a["type"] == "drift"}
    assert drifted == {"age", "hours-per-week"}
    assert any(reason.startswith("drift: age") for reason in doc["reasons"])
    # The same rows as a dataset through validate (serving environment): same numbers.
    logs = pl.read_parquet(here / "drifted" / "*.parquet").drop("request_id", "ts", "model",
        "version", "row", "prediction", "proba_<=50K", "proba_>50K")  # fmt: skip
    logs.write_parquet(tmp_path / "rows.parquet")
    ingest([tmp_path / "rows.parquet"], tmp_path / "rows")
    validate(tmp_path / "rows", tmp_path / "an", schema="sc", baseline="st", environment="serving")
    v = json.loads((tmp_path / "an" / "anomalies.json").read_text())["drift"]["data"]
    for col in ("age", "hours-per-week", "workclass"):
        assert doc["drift"][col] == pytest.approx(v[col])


def test_failing_live_metric_and_prediction_drift_are_reasons(here, built, tmp_path):
    # Feedback that contradicts every prediction: accuracy 0 fails its threshold.
    logs = pl.read_parquet(here / "clean" / "*.parquet")
    wrong = logs.select("request_id", "row", pl.when(pl.col("prediction") == ">50K")
                        .then(pl.lit("<=50K")).otherwise(pl.lit(">50K")).alias("income"))  # fmt: skip
    wrong.write_parquet(tmp_path / "wrong.parquet")
    r = monitor("clean", tmp_path / "mon", baseline="st", evaluation="ev",
                feedback=tmp_path / "wrong.parquet", join=["request_id", "row"])  # fmt: skip
    doc = json.loads((tmp_path / "mon" / "report.json").read_text())
    assert r.exit_code == 1 and doc["live"]["metrics"]["accuracy"] == 0.0
    assert any(x.startswith("live_metric: accuracy 0") for x in doc["reasons"])
    # Every request predicted >50K: the predicted class balance moved.
    skewed = tmp_path / "skewed"
    pl.read_parquet(here / "clean" / "*.parquet").with_columns(
        prediction=pl.lit(">50K")
    ).write_parquet(skewed.mkdir() or skewed / "requests-x.parquet")
    doc = json.loads(
        (monitor(skewed, None, baseline="st", evaluation="ev").path / "report.json").read_text()
    )
    assert "predicted_class" in doc["predictions"]["drifted"] and doc["retrain"]


def test_window_selects_by_time_and_records_bounds(here, tmp_path):
    logs = pl.read_parquet(here / "clean" / "*.parquet")
    # Half the rows a day old, half two hours old (relative to T0).
    n = logs.height
    ts = [T0 - dt.timedelta(days=1)] * (n // 2) + [T0 - dt.timedelta(hours=2)] * (n - n // 2)
    folder = tmp_path / "logs"
    folder.mkdir()
    logs.with_columns(ts=pl.Series(ts)).write_parquet(folder / "requests-a.parquet")
    doc = json.loads(
        (monitor(folder, tmp_path / "m", baseline="st", window="6h", until=T0.isoformat()).path
         / "report.json").read_text()
    )  # fmt: skip
    assert doc["requests"]["rows"] == n - n // 2
    assert doc["requests"]["window"] == {
        "length": "6h", "since": "2026-11-20T06:00:00", "until": "2026-11-20T12:00:00"}  # fmt: skip
    doc = json.loads(
        (monitor(folder, tmp_path / "m", baseline="st", window="2d", until=T0.isoformat()).path
         / "report.json").read_text()
    )  # fmt: skip
    assert doc["requests"]["rows"] == n


def test_rerun_is_up_to_date_until_a_new_log_file_lands(here, tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    src = sorted((here / "clean").glob("requests-*.parquet"))[0]
    frame = pl.read_parquet(src)
    frame.write_parquet(folder / "requests-1.parquet")
    first = monitor(folder, tmp_path / "m", baseline="st")
    assert not first.up_to_date
    assert monitor(folder, tmp_path / "m", baseline="st").up_to_date
    # A half-written file (the server's temp name) is not read; a renamed-in one is.
    (folder / ".requests-2.parquet.tmp").write_bytes(b"PAR1 half")
    assert monitor(folder, tmp_path / "m", baseline="st").up_to_date
    frame.write_parquet(folder / "requests-2.parquet")
    again = monitor(folder, tmp_path / "m", baseline="st")
    assert not again.up_to_date and again.manifest["summary"]["rows"] == 2 * frame.height


def test_all_null_column_in_a_flush_takes_the_schema_type(here, tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    logs = pl.read_parquet(here / "clean" / "*.parquet")
    logs.head(100).with_columns(workclass=pl.lit(None)).write_parquet(folder / "requests-1.parquet")
    logs.slice(100).write_parquet(folder / "requests-2.parquet")
    doc = json.loads(
        (
            monitor(folder, tmp_path / "m", baseline="st", schema="sc").path / "report.json"
        ).read_text()
    )
    assert not [a for a in doc["anomalies"] if a["type"] == "type_mismatch"]


def test_evaluation_of_the_served_version_from_the_registry(here, tmp_path):
    reg = tmp_path / "reg"
    deploy(Store.open(), "m", "ev", reg, name="income", check=NO_CHECK)
    serving = json.loads((reg / "income" / "serving.json").read_text())
    ev_id = json.loads((here / "ev" / "manifest.json").read_text())["id"]
    assert serving["history"][-1]["evaluation"] == ev_id
    r = monitor("clean", tmp_path / "m", baseline="st", evaluation=reg / "income")
    assert {"role": "evaluation", "id": ev_id}.items() <= next(
        i for i in r.manifest["inputs"] if i["role"] == "evaluation"
    ).items()


def test_cli_exit_codes_and_json(here, tmp_path):
    ok = cli("monitor", "--requests", "clean", "--baseline", "st", "--schema", "sc",
             "-o", str(tmp_path / "a"), "--json")  # fmt: skip
    assert ok.exit_code == 0 and json.loads(ok.stdout)["retrain"] is False
    bad = cli(
        "monitor", "--requests", "drifted", "--baseline", "st", "-o", str(tmp_path / "b"), "--json"
    )
    record = json.loads(bad.stdout)
    assert bad.exit_code == 1 and record["retrain"] is True and record["exit_code"] == 1
    assert "retrain: yes" in bad.stderr and "drift: age" in bad.stderr
    out = cli("monitor", "--requests", "clean", "--baseline", "st", "-o", "-")
    assert out.exit_code == 0 and json.loads(out.stdout)["format"] == "mlstage-monitor/1"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--requests", "nowhere"], "not a request-log folder"),
        (["--requests", "clean", "--window", "3x"], "--window '3x'"),
        (["--requests", "clean", "--window", "1h", "--until", "noon"], "--until 'noon'"),
        (["--requests", "clean", "--feedback", "fb.csv"], "--feedback needs --join"),
        (["--requests", "clean", "--feedback", "fb.csv", "--join", "request_id"],
         "--feedback needs --evaluation"),
        (["--requests", "clean", "--evaluation", "ev", "--feedback", "fb.csv", "--join",
          "request_id"], "appears 40 times (add --join row"),
        (["--requests", "clean", "--evaluation", "ev", "--feedback", "fb.csv", "--join", "nope"],
         "--join nope: no such column in the requests"),
        (["--requests", "clean", "--evaluation", "ev", "--feedback", "labels.csv", "--join",
          "request_id", "--join", "row"], "label values the model has no class for: maybe"),
        (["--requests", "two_models"], "2 models (a, b): choose one with --model"),
        (["--requests", "clean", "--evaluation", "st"], "expected evaluation"),
        (["--requests", "two_models", "--model", "c"], "--model c: the logs hold requests for a, b"),
        (["--requests", "broken"], "broken/requests-1.parquet: cannot read this request-log file"),
        (["--requests", "rows", "--window", "1h"], '--window needs a "ts" column'),
        (["--requests", "clean", "--evaluation", "ev", "--feedback", "fb.txt", "--join",
          "request_id"], "expected a .csv, .parquet, .jsonl, .ndjson file"),
        (["--requests", "clean", "--evaluation", "ev", "--feedback", "missing.csv", "--join",
          "request_id"], "no such file or dataset artifact"),
        (["--requests", "clean", "--evaluation", "ev", "--feedback", "fb.csv", "--join", "id"],
         "--join id: no such column in the requests"),
        (["--requests", "clean", "--evaluation", "ev", "--feedback", "first.csv", "--join",
          "request_id"], "matches 40 logged rows: the join columns must name one request row (add --join row)"),
        (["--requests", "clean", "--evaluation", "ev", "--feedback", "nolabel.csv", "--join",
          "request_id", "--join", "row"], 'no column "income"'),
        (["--requests", "clean", "--evaluation", "unserved/income"], "deployed without an evaluation"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_and_writes_nothing(here, built, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    for name in ("clean", "st", "sc", "ev", "m"):
        (tmp_path / name).symlink_to(here / name)
    built["clean"].write_csv(tmp_path / "fb.csv")
    built["clean"].with_columns(income=pl.lit("maybe")).write_csv(tmp_path / "labels.csv")
    first = built["clean"].unique(subset="request_id", keep="first", maintain_order=True)
    first.write_csv(tmp_path / "first.csv")
    built["clean"].rename({"income": "label"}).write_csv(tmp_path / "nolabel.csv")
    (tmp_path / "fb.txt").write_text("request_id,income\n")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "requests-1.parquet").write_bytes(b"not parquet at all")
    (tmp_path / "unserved" / "income").mkdir(parents=True)
    (tmp_path / "unserved" / "income" / "serving.json").write_text(
        json.dumps({"format": "mlstage-serving/1", "version": 1, "history": [{"version": 1}]})
    )
    ingest([here / "ds" / "eval.parquet"], tmp_path / "rows")
    (tmp_path / "two_models").mkdir()
    logs = pl.read_parquet(here / "clean" / "*.parquet").head(10)
    for m in ("a", "b"):
        logs.with_columns(model=pl.lit(m)).write_parquet(
            tmp_path / "two_models" / f"requests-{m}.parquet"
        )
    r = cli("monitor", *args, "--baseline", "st", "-o", "out")
    assert r.exit_code == 2, r.stderr
    assert message in r.stderr
    assert not (tmp_path / "out").exists()


def test_model_option_picks_one_model(here, tmp_path):
    folder = tmp_path / "two"
    folder.mkdir()
    logs = pl.read_parquet(here / "clean" / "*.parquet").head(50)
    logs.with_columns(model=pl.lit("a")).write_parquet(folder / "requests-a.parquet")
    logs.head(20).with_columns(model=pl.lit("b")).write_parquet(folder / "requests-b.parquet")
    r = monitor(folder, tmp_path / "m", baseline="st", model="b")
    assert r.manifest["summary"]["rows"] == 20
    with pytest.raises(BadInput, match="choose one with model"):
        monitor(folder, tmp_path / "m2", baseline="st")


def test_the_default_window_ends_after_the_requests_of_this_second():
    """`--until` defaults to now rounded up: a request logged a moment ago is inside."""
    import datetime as dt

    from mlstage.serving.logreader import parse_until

    before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    until = parse_until(None)
    assert until >= before and until.microsecond == 0


def test_no_traffic_is_exit_4_never_health(here, tmp_path):
    """An empty log folder, or a window without a request, is its own outcome: exit 4
    with the folder and window named, the report written with 0 rows, the same code
    on an up-to-date rerun; --allow-empty makes it 0."""
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["monitor", "--requests", str(empty), "--baseline", "st", "-o", str(tmp_path / "a")]
    r = cli(*args, "--json")
    assert r.exit_code == 4, r.stderr
    assert f"monitor: {empty}: no request at all" in r.stderr and "--allow-empty" in r.stderr
    record = json.loads(r.stdout)
    assert record["exit_code"] == 4 and record["no_traffic"] is True and record["rows"] == 0
    doc = json.loads((tmp_path / "a" / "report.json").read_text())
    assert doc["requests"]["rows"] == 0 and doc["retrain"] is False
    again = cli(*args, "--quiet", "--json")  # the recorded outcome, said even when quiet
    assert again.exit_code == 4 and "no request at all" in again.stderr
    assert json.loads(again.stdout)["up_to_date"] is True
    assert cli(*args, "--allow-empty").exit_code == 0
    # a window that holds none of the logged requests
    logs = tmp_path / "logs"
    logs.mkdir()
    frame = pl.read_parquet(here / "clean" / "*.parquet").head(50)
    frame.with_columns(ts=pl.lit(T0)).write_parquet(logs / "requests-1.parquet")
    r = cli("monitor", "--requests", str(logs), "--baseline", "st", "--window", "1h",
            "--until", "2026-11-25T00:00:00", "-o", str(tmp_path / "b"))  # fmt: skip
    assert r.exit_code == 4
    assert "between 2026-11-24T23:00:00 and 2026-11-25T00:00:00 (UTC) in 1 log file(s)" in r.stderr
    r = monitor(logs, tmp_path / "c", baseline="st", window="1h", until=T0.isoformat())
    assert r.exit_code == 4  # the window's end is exclusive: a request at T0 is outside
    later = (T0 + dt.timedelta(seconds=1)).isoformat()
    r = monitor(logs, tmp_path / "d", baseline="st", window="1h", until=later)
    assert r.exit_code == 0 and r.manifest["summary"]["rows"] == 50


def test_library_warnings_stay_off_stderr_unless_debug(here, tmp_path, monkeypatch):
    import warnings

    from mlstage.stages import monitor as stage

    real = stage.prediction_drift

    def warns(*args):
        warnings.warn("X does not have valid feature names", UserWarning, stacklevel=1)
        return real(*args)

    monkeypatch.setattr(stage, "prediction_drift", warns)
    args = ["monitor", "--requests", "clean", "--baseline", "st", "--evaluation", "ev"]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        r = cli(*args, "-o", str(tmp_path / "a"))
        assert r.exit_code == 0 and seen == []
        cli(*args, "-o", str(tmp_path / "b"), "--debug")
        assert [str(w.message) for w in seen] == ["X does not have valid feature names"], [
            (str(w.message), w.filename, w.lineno, w.source) for w in seen
        ]


def test_no_traffic_with_feedback_is_still_exit_4(here, built, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    built["clean"].write_csv(tmp_path / "fb.csv")
    r = cli("monitor", "--requests", str(empty), "--baseline", "st", "--evaluation", "ev",
            "--feedback", str(tmp_path / "fb.csv"), "--join", "request_id", "--join", "row",
            "-o", str(tmp_path / "a"))  # fmt: skip
    assert r.exit_code == 4, r.stderr
    assert "in 0 log file(s)" in r.stderr


def test_until_alone_keeps_what_came_before_it(here, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    frame = pl.read_parquet(here / "clean" / "*.parquet").head(50)
    frame.with_columns(ts=pl.lit(T0)).write_parquet(logs / "requests-1.parquet")
    r = monitor(logs, tmp_path / "a", baseline="st", until=T0.isoformat())
    assert r.exit_code == 4
    later = (T0 + dt.timedelta(seconds=1)).isoformat()
    assert (
        monitor(logs, tmp_path / "b", baseline="st", until=later).manifest["summary"]["rows"] == 50
    )


def test_a_log_entry_that_is_not_a_file_is_named(here, tmp_path):
    import os

    logs = tmp_path / "logs"
    logs.mkdir()
    os.mkfifo(logs / "requests-x.parquet")
    r = cli("monitor", "--requests", str(logs), "--baseline", "st", "-o", str(tmp_path / "a"))
    assert r.exit_code == 2 and "requests-x.parquet: not a regular file" in r.stderr


def test_performance_is_estimated_before_labels(here, built, tmp_path):
    """CBPE on the clean traffic lands near the accuracy its labels later show; a
    threshold the estimate fails is a reason to retrain."""
    built["clean"].write_csv(tmp_path / "fb.csv")
    r = monitor("clean", tmp_path / "a", baseline="st", evaluation="ev",
                feedback=tmp_path / "fb.csv", join=["request_id", "row"])  # fmt: skip
    doc = json.loads((r.path / "report.json").read_text())
    est, live = doc["estimated"], doc["live"]["metrics"]
    assert est["method"] == "CBPE" and est["rows"] == 2000
    assert abs(est["metrics"]["accuracy"] - live["accuracy"]) < 0.03
    assert abs(est["metrics"]["roc_auc"] - live["roc_auc"]) < 0.05
    assert [c["metric"] for c in est["checks"]] == ["accuracy"] and est["checks"][0]["passed"]
    strict = {"format": "mlstage-evaluate/1", "thresholds": {"accuracy": {"min": 0.99}}}
    evaluate("m", "ds", tmp_path / "ev2", config=write_json(tmp_path / "strict.json", strict))
    r = monitor("clean", tmp_path / "b", baseline="st", evaluation=tmp_path / "ev2")
    doc = json.loads((r.path / "report.json").read_text())
    assert r.exit_code == 1 and any(
        x.startswith("estimated_metric: accuracy") for x in doc["reasons"]
    )


def test_the_served_evaluation_is_the_one_recorded_when_its_version_was_made_stable():
    # `monitor --evaluation REGISTRY/NAME` compares with it: pointing another label at the
    # stable version with another evaluation must not change it
    from mlstage.store.registry import served_evaluation

    doc = {"version": 1, "history": [
        {"version": 1, "label": "stable", "evaluation": "e-stable"},
        {"version": 2, "label": "canary", "evaluation": "e-canary"},
        {"version": 1, "label": "exp", "evaluation": "e-exp"}]}  # fmt: skip
    assert served_evaluation(doc) == "e-stable"
    assert served_evaluation(doc, 2) == "e-canary"  # a version only ever a canary
    assert served_evaluation({"version": 3, "history": [{"version": 3}]}) is None
    # an entry without a label is stable (the format before labels)
    assert served_evaluation({"version": 1, "history": [{"version": 1, "evaluation": "old"},
                              {"version": 1, "label": "x", "evaluation": "new"}]}) == "old"  # fmt: skip


def test_inputs_named_like_the_logs_own_columns_are_logged_and_monitored(tmp_path, monkeypatch):
    """A model input named ts, version or proba_<x> (or input:...) was overwritten in the
    request log by the log's own column, and monitor called it missing (retrain: yes). It
    is logged as input:NAME and monitored under its own name, beside the log's own."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(3)
    n = 1500
    x = rng.normal(size=n)
    frame = pl.DataFrame({"ts": rng.normal(size=n), "version": rng.choice(["a", "b"], n),
                          "proba_yes": x, "input:z": rng.normal(size=n),
                          "y": np.where(x > 0, "yes", "no")})  # fmt: skip
    frame.write_parquet(tmp_path / "d.parquet")
    ingest([tmp_path / "d.parquet"], "ds", split={"train": 8, "eval": 2})
    stats("ds", "st")
    schema("st", "sc", label="y")
    spec = {"format": "mlstage-features/1", "label": "y", "features": [
        {"column": c, "transform": "standardize"} for c in ("ts", "proba_yes", "input:z")
    ] + [{"column": "version", "transform": "one_hot"}]}  # fmt: skip
    featurize("ds", "feat", spec=write_json(tmp_path / "spec.json", spec))
    cfg = {"format": "mlstage-train/1", "task": "classification", "seed": 0,
           "estimator": "LogisticRegression"}  # fmt: skip
    train("feat", "m", config=write_json(tmp_path / "t.json", cfg))
    model = Model.load(tmp_path / "m")
    log = RequestLog(tmp_path / "logs")
    rows = pl.read_parquet(tmp_path / "ds" / "eval.parquet").drop("y").to_dicts()
    pred, proba = model.predict_rows(rows)
    log.add("r1", "m", 7, rows, pred, proba, model.class_names)
    log.flush()
    logged = pl.read_parquet(next((tmp_path / "logs").glob("requests-*.parquet")))
    assert logged["version"].to_list() == [7] * len(rows)  # the log's own, kept
    assert logged["input:version"].to_list() == [r["version"] for r in rows]
    assert logged["input:proba_yes"].to_list() == [r["proba_yes"] for r in rows]
    assert logged["input:input:z"].to_list() == [r["input:z"] for r in rows]
    r = monitor(tmp_path / "logs", tmp_path / "mon", baseline="st", schema="sc")
    doc = json.loads((tmp_path / "mon" / "report.json").read_text())
    assert doc["anomalies"] == [], doc["anomalies"]
    assert {"ts", "version", "proba_yes", "input:z"} <= set(doc["drift"])
    assert r.exit_code == 0 and doc["retrain"] is False
    monitor(tmp_path / "logs", tmp_path / "mon2", baseline="st")  # drift only, no schema
    doc = json.loads((tmp_path / "mon2" / "report.json").read_text())
    assert {"ts", "version", "proba_yes", "input:z"} <= set(doc["drift"])
