"""`evaluate`, `predict` and `whatif`: numbers against scikit-learn and direct computations."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from sklearn import metrics as skm

from mlstage import featurize, ingest, train
from mlstage.errors import BadInput
from mlstage.stages.evaluate import evaluate
from mlstage.stages.predict import predict
from mlstage.store.checkout import checkout
from mlstage.store.store import Store

from ..conftest import SAMPLE, cli, working_in, write, write_json

SPEC = {
    "format": "mlstage-features/1", "label": "income",
    "features": [
        {"column": "age", "transform": "standardize"},
        {"column": "education-num", "transform": "standardize"},
        {"column": "hours-per-week", "transform": "standardize"},
        {"column": "capital-gain", "transform": "log"},
        {"column": "marital-status", "transform": "one_hot"},
        {"column": "occupation", "transform": "one_hot", "impute": "mode"},
        {"column": "sex", "transform": "one_hot"},
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Adult ingested, featurized, and two models (a good one and a dummy) trained, once."""
    root = tmp_path_factory.mktemp("eval")
    with working_in(root):
        ingest([SAMPLE / "adult.csv"], "ds", null=["?"], split={"train": 8, "eval": 2})
        featurize("ds", "feat", spec=write_json(root / "spec.json", SPEC))
        base = {"format": "mlstage-train/1", "task": "classification", "seed": 0}
        train(
            "feat",
            "good",
            config=write_json(
                root / "lr.json",
                {**base, "estimator": "LogisticRegression", "params": {"max_iter": 1000}},
            ),
        )
        train(
            "feat",
            "dummy",
            config=write_json(
                root / "dummy.json",
                {**base, "estimator": "DummyClassifier", "params": {"strategy": "stratified"}},
            ),
        )
    return root


@pytest.fixture
def here(built, monkeypatch):
    monkeypatch.chdir(built)
    return built


def config(**kw):
    return {
        "format": "mlstage-evaluate/1",
        "slices": [["sex"], ["race"], ["sex", "race"]],
        "sensitive": ["sex", "race"],
        "positive": ">50K",
        **kw,
    }


def load(out, name):
    return json.loads(open(f"{out}/{name}.json").read())


def test_metrics_agree_with_scikit_learn_overall_and_per_slice(here, tmp_path):
    r = evaluate("good", "ds", tmp_path / "ev", config=write_json(tmp_path / "c.json", config()))
    assert r.exit_code == 0 and r.manifest["summary"]["blessed"] is True
    predict("good", "ds", tmp_path / "pred", split="eval", keep=["income", "sex", "race"])
    p = pl.read_parquet(tmp_path / "pred" / "predictions.parquet")
    m = load(tmp_path / "ev", "metrics")
    y, pred, proba = p["income"].to_numpy(), p["prediction"].to_numpy(), p["proba_>50K"].to_numpy()
    o = m["overall"]
    assert o["accuracy"] == pytest.approx(
        skm.accuracy_score(y, pred)
    )  # evaluate = accuracy of predict's output
    assert o["f1"] == pytest.approx(skm.f1_score(y, pred, pos_label=">50K"))
    assert o["precision"] == pytest.approx(skm.precision_score(y, pred, pos_label=">50K"))
    assert o["roc_auc"] == pytest.approx(skm.roc_auc_score(y == ">50K", proba))
    assert o["log_loss"] == pytest.approx(skm.log_loss(y == ">50K", proba), rel=1e-6)
    assert o["confusion_matrix"] == skm.confusion_matrix(y, pred, labels=["<=50K", ">50K"]).tolist()
    for s in m["slices"]:
        mask = np.ones(p.height, dtype=bool)
        for col, value in s["slice"].items():
            mask &= p[col].to_numpy() == value
        assert s["rows"] == mask.sum()
        ys, ps, prs = y[mask], pred[mask], proba[mask]
        got = s["metrics"]
        assert got["accuracy"] == pytest.approx(skm.accuracy_score(ys, ps)), s["name"]
        assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(ys, ps)), s[
            "name"
        ]
        assert got["recall"] == pytest.approx(
            skm.recall_score(ys, ps, pos_label=">50K", zero_division=0)
        ), s["name"]
        assert got["f1"] == pytest.approx(
            skm.f1_score(ys, ps, pos_label=">50K", zero_division=0)
        ), s["name"]
        assert got["log_loss"] == pytest.approx(
            skm.log_loss(ys == ">50K", prs, labels=[False, True]), rel=1e-6
        ), s["name"]
        if 0 < (ys == ">50K").sum() < ys.size:
            assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(ys == ">50K", prs)), s["name"]


def test_fairness_agrees_with_a_direct_computation(here, tmp_path):
    evaluate("good", "ds", tmp_path / "ev", config=write_json(tmp_path / "c.json", config()))
    predict("good", "ds", tmp_path / "pred", split="eval", keep=["income", "race"])
    p = pl.read_parquet(tmp_path / "pred" / "predictions.parquet")
    per = p.group_by("race").agg(
        sel=(pl.col("prediction") == ">50K").mean(),
        tpr=((pl.col("prediction") == ">50K") & (pl.col("income") == ">50K")).sum()
        / (pl.col("income") == ">50K").sum(),
        fpr=((pl.col("prediction") == ">50K") & (pl.col("income") != ">50K")).sum()
        / (pl.col("income") != ">50K").sum(),
    )
    f = load(tmp_path / "ev", "metrics")["fairness"]["race"]
    assert f["demographic_parity_difference"] == pytest.approx(per["sel"].max() - per["sel"].min())
    assert f["demographic_parity_ratio"] == pytest.approx(per["sel"].min() / per["sel"].max())
    eod = max(per["tpr"].max() - per["tpr"].min(), per["fpr"].max() - per["fpr"].min())
    assert f["equalized_odds_difference"] == pytest.approx(eod)
    for row in per.iter_rows(named=True):
        assert f["groups"][row["race"]]["selection_rate"] == pytest.approx(row["sel"])


def test_thresholds_slices_and_min_slice_size(here, tmp_path):
    c = config(
        min_slice_size=200,
        thresholds={
            "accuracy": {
                "min": 0.7,
                "slices": {"sex=Female": {"min": 0.99}, "race=Other": {"min": 0.99}},
            },
            "demographic_parity_difference": {"max": 0.5},
        },
    )
    r = evaluate("good", "ds", tmp_path / "ev", config=write_json(tmp_path / "c.json", c))
    assert r.exit_code == 1
    b = load(tmp_path / "ev", "blessing")
    assert b["blessed"] is False and b["model"] == r.manifest["inputs"][0]["id"]
    by = {(c["metric"], c["slice"]): c for c in b["checks"]}
    assert by[("accuracy", None)]["passed"] is True
    assert by[("accuracy", "sex=Female")]["passed"] is False
    assert (
        by[("accuracy", "race=Other")]["passed"] is None
    )  # under min_slice_size: reported, not gated
    assert "under min_slice_size" in by[("accuracy", "race=Other")]["note"]
    assert by[("demographic_parity_difference", "sex")]["passed"] is True
    slices = {s["name"]: s for s in load(tmp_path / "ev", "metrics")["slices"]}
    assert slices["race=Other"]["gated"] is False and slices["sex=Male"]["gated"] is True


@pytest.mark.slow
def test_a_worse_candidate_than_its_baseline_is_refused(here, tmp_path):
    c = write_json(
        tmp_path / "c.json", config(change_thresholds={"accuracy": {"max_decrease": 0.01}})
    )
    r = evaluate("dummy", "ds", tmp_path / "ev", config=c, baseline="good")
    assert r.exit_code == 1
    b = load(tmp_path / "ev", "blessing")
    (check,) = b["checks"]
    assert check["passed"] is False and check["change"] < -0.01 and b["baseline"] is not None
    ok = evaluate("good", "ds", tmp_path / "ev2", config=c, baseline="dummy")
    assert ok.exit_code == 0
    same = evaluate("good", "ds", tmp_path / "ev3", config=c, baseline="good")  # identical: ignored
    assert load(tmp_path / "ev3", "blessing")["baseline"] is None
    assert "baseline" not in [i["role"] for i in same.manifest["inputs"]]
    cli_run = cli(
        "evaluate",
        "dummy",
        "ds",
        "--config",
        str(c),
        "--baseline",
        "good",
        "-o",
        str(tmp_path / "ev4"),
        "--json",
    )
    assert (
        cli_run.exit_code == 1
        and json.loads(cli_run.stdout)["blessed"] is False
        and "FAIL" in cli_run.stderr
    )


def test_importance_curves_and_partial_dependence(here, tmp_path):
    evaluate(
        "good",
        "ds",
        tmp_path / "ev",
        config=write_json(tmp_path / "c.json", config(importance={"repeats": 2, "sample": 2000})),
    )
    imp = load(tmp_path / "ev", "metrics")["importance"]
    assert imp["metric"] == "accuracy" and imp["rows"] == 2000
    top = next(iter(imp["values"]))
    assert imp["values"][top] > 0.01 and top in (
        "marital-status",
        "education-num",
        "capital-gain",
        "occupation",
        "age",
    )
    curves = load(tmp_path / "ev", "curves")
    roc = curves["roc"][">50K"]
    assert roc["fpr"][0] == 0 and roc["tpr"][-1] == 1 and len(roc["fpr"]) <= 200
    assert (
        sum(b["rows"] for b in curves["calibration"][">50K"])
        == load(tmp_path / "ev", "metrics")["rows"]
    )
    pd = curves["partial_dependence"]
    assert [d["column"] for d in pd] == list(imp["values"])[:3]
    assert all(len(d["values"]) == len(d["average"]) > 1 for d in pd)


@pytest.mark.parametrize(
    "changes, pattern",
    [
        ({"slices": [["nope"]]}, r'at \$\.slices\[0\]: no column "nope"'),
        ({"sensitive": ["nope"]}, r'at \$\.sensitive\[0\]: no column "nope"'),
        ({"thresholds": {"rmse": {"max": 1}}}, r"'rmse' is not a metric of a classification task"),
        ({"positive": "rich"}, r"'rich' is not a class of the model"),
        (
            {"thresholds": {"accuracy": {"min": 0.5, "slices": {"age=30": {"min": 0.1}}}}},
            r"not in a slice the config asks for",
        ),
    ],
)
def test_bad_configs(here, tmp_path, changes, pattern):
    with pytest.raises(BadInput, match=pattern):
        evaluate(
            "good", "ds", tmp_path / "ev", config=write_json(tmp_path / "c.json", config(**changes))
        )
    assert not (tmp_path / "ev").exists()


def test_bad_baseline_and_dataset(here, tmp_path):
    c = write_json(tmp_path / "c.json", config())
    ingest([SAMPLE / "chicago_taxi.csv"], tmp_path / "taxi", store=here / ".mlstage")
    reg_spec = {
        "format": "mlstage-features/1",
        "label": "tips",
        "features": [{"column": "fare", "transform": "standardize", "impute": "median"}],
    }
    featurize(tmp_path / "taxi", tmp_path / "tf", spec=write_json(tmp_path / "t.json", reg_spec))
    train(
        tmp_path / "tf",
        tmp_path / "reg",
        config=write_json(
            tmp_path / "r.json",
            {"format": "mlstage-train/1", "task": "regression", "estimator": "Ridge"},
        ),
    )
    with pytest.raises(
        BadInput, match="the baseline predicts tips \\(regression\\), the model income"
    ):
        evaluate("good", "ds", tmp_path / "ev", config=c, baseline=tmp_path / "reg")
    plain = write_json(tmp_path / "plain.json", {"format": "mlstage-evaluate/1"})
    with pytest.raises(BadInput, match='no column "age", which the model needs'):
        evaluate("good", tmp_path / "taxi", tmp_path / "ev", config=plain)
    with pytest.raises(BadInput, match="no split 'test'"):
        evaluate("good", "ds", tmp_path / "ev", config=c, split="test")


def test_regression_metrics_agree_with_scikit_learn(tmp_path):
    ingest([SAMPLE / "chicago_taxi.csv"], "taxi", split={"train": 8, "eval": 2})
    spec = {
        "format": "mlstage-features/1",
        "label": "tips",
        "features": [
            {"column": "fare", "transform": "standardize", "impute": "median"},
            {"column": "trip_miles", "transform": "standardize", "impute": "median"},
            {"column": "payment_type", "transform": "one_hot"},
        ],
    }
    featurize("taxi", "tf", spec=write_json(tmp_path / "s.json", spec))
    train(
        "tf",
        "m",
        config=write_json(
            tmp_path / "t.json",
            {"format": "mlstage-train/1", "task": "regression", "estimator": "Ridge"},
        ),
    )
    c = {
        "format": "mlstage-evaluate/1",
        "slices": [["payment_type"]],
        "thresholds": {"mae": {"max": 100}},
    }
    r = evaluate("m", "taxi", "ev", config=write_json(tmp_path / "c.json", c))
    assert r.exit_code == 0
    predict("m", "taxi", "pred", split="eval", keep=["tips", "payment_type"])
    p = pl.read_parquet("pred/predictions.parquet")
    y, pred = p["tips"].to_numpy(), p["prediction"].to_numpy()
    o = load("ev", "metrics")["overall"]
    assert o["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert o["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert o["r2"] == pytest.approx(skm.r2_score(y, pred))
    assert o["max_error"] == pytest.approx(skm.max_error(y, pred))
    for s in load("ev", "metrics")["slices"]:
        mask = p["payment_type"].to_numpy() == s["slice"]["payment_type"]
        assert s["metrics"]["mae"] == pytest.approx(skm.mean_absolute_error(y[mask], pred[mask]))
        assert s["metrics"]["mape"] == pytest.approx(
            skm.mean_absolute_percentage_error(y[mask], pred[mask])
        )
        if mask.sum() > 1 and np.var(y[mask]) > 0:
            assert s["metrics"]["r2"] == pytest.approx(skm.r2_score(y[mask], pred[mask]), abs=1e-9)


def test_predict_keeps_order_splits_and_reads_a_registry(here, tmp_path):
    predict("good", "ds", tmp_path / "all", keep=["age"])
    p = pl.read_parquet(tmp_path / "all" / "predictions.parquet")
    raw = pl.concat([pl.read_parquet("ds/train.parquet"), pl.read_parquet("ds/eval.parquet")])
    assert p["age"].to_list() == raw["age"].to_list()
    assert p["split"].unique(maintain_order=True).to_list() == ["train", "eval"]
    assert p.columns == ["split", "age", "prediction", "proba_<=50K", "proba_>50K"]
    np.testing.assert_allclose(p["proba_<=50K"] + p["proba_>50K"], 1.0, rtol=1e-6)
    store = Store.open()
    reg = tmp_path / "registry" / "income"
    checkout(store, "good", reg / "1")
    write(
        reg / "serving.json",
        json.dumps({"format": "mlstage-serving/1", "version": 1, "history": []}),
    )
    r = predict(reg, "ds", tmp_path / "via_registry", split="eval")
    assert r.manifest["summary"]["model"] == json.loads(open("good/manifest.json").read())["id"]


def test_whatif_cli(here):
    row = pl.read_parquet("ds/eval.parquet").row(0, named=True)
    r = cli(
        "whatif",
        "good",
        "--row",
        json.dumps(row, default=str),
        "--vary",
        "age=20,40,60",
        "--vary",
        "sex",
        "--json",
    )
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert [o["column"] for o in out] == ["age", "sex"]
    assert [x["value"] for x in out[0]["rows"]] == [20, 40, 60]
    assert [x["value"] for x in out[1]["rows"]] == ["Female", "Male"]
    for x in out[0]["rows"]:
        assert x["prediction"] in ("<=50K", ">50K") and sum(
            x["probabilities"].values()
        ) == pytest.approx(1)
    probs = [x["probabilities"][">50K"] for x in out[0]["rows"]]
    assert probs != sorted(probs, reverse=True) or probs[0] != probs[-1]  # age matters to the model
    bad = cli(
        "whatif", "good", "--row", json.dumps({**row, "age": "old"}, default=str), "--vary", "sex"
    )
    assert bad.exit_code == 2 and 'field "age": cannot convert' in bad.stderr
    assert cli("whatif", "good", "--row", "{nope").exit_code == 2


def test_a_gated_metric_that_cannot_be_computed_fails_the_gate(here, tmp_path):
    """roc_auc on an evaluation split holding one class cannot be computed: the check fails
    (a gate that cannot be measured must not pass), naming why; an ungated slice is skipped."""
    one_class = pl.read_parquet("ds/eval.parquet").filter(pl.col("income") == "<=50K")
    one_class.write_parquet(tmp_path / "one.parquet")
    ingest([tmp_path / "one.parquet"], tmp_path / "one")
    cfg = write_json(tmp_path / "e.json", {"format": "mlstage-evaluate/1", "slices": [["sex"]],
                                           "min_slice_size": 10**9,
                                           "thresholds": {"roc_auc": {"min": 0.5},
                                                          "accuracy": {"slices": {"sex=Female": {"min": 0.99}}}}})  # fmt: skip
    r = evaluate("good", tmp_path / "one", tmp_path / "ev", config=cfg)
    assert r.manifest["summary"]["blessed"] is False
    checks = json.loads((tmp_path / "ev" / "blessing.json").read_text())["checks"]
    auc = next(c for c in checks if c["metric"] == "roc_auc")
    assert auc["passed"] is False and auc["value"] is None and "cannot be computed" in auc["note"]
    female = next(c for c in checks if c["slice"] == "sex=Female")
    assert female["passed"] is None  # under min_slice_size: reported, not gated


def test_the_same_evaluation_gives_the_same_id_every_run(here, tmp_path):
    """Per-slice float means were summed by polars' parallel group-by, whose order (so the
    last bit, so the id) could change from run to run; they are bincount sums now."""
    cfg = write_json(tmp_path / "e.json", {"format": "mlstage-evaluate/1",
                                           "slices": [["sex"], ["marital-status", "sex"]],
                                           "sensitive": ["sex"]})  # fmt: skip
    ids = {evaluate("good", "ds", tmp_path / f"ev{i}", config=cfg, force=True).manifest["id"]
           for i in range(4)}  # fmt: skip
    assert len(ids) == 1
