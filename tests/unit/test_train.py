"""`train`, the model artifact, the prediction core, `runs` and model diffs."""

from __future__ import annotations

import json
import os

import numpy as np
import polars as pl
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

from mlstage import featurize, ingest, train
from mlstage.errors import BadInput, CorruptArtifact
from mlstage.model.artifact import Model
from mlstage.model.estimators import ESTIMATORS

from ..conftest import SAMPLE, cli, run_mlstage, write

SPEC = {
    "format": "mlstage-features/1",
    "label": "income",
    "features": [
        {"column": "age", "transform": "standardize"},
        {"column": "hours-per-week", "transform": "standardize"},
        {"column": "education-num", "transform": "standardize"},
        {"column": "workclass", "transform": "one_hot", "impute": "mode"},
        {"column": "sex", "transform": "one_hot"},
        {"column": "relationship", "transform": "one_hot"},
    ],
    "passthrough": ["fnlwgt"],
}


def config(**kw):
    return {
        "format": "mlstage-train/1",
        "task": "classification",
        "estimator": "LogisticRegression",
        "params": {"max_iter": 300},
        "seed": 0,
        **kw,
    }


@pytest.fixture
def features(tmp_path, adult_small):
    ingest([adult_small], "ds", null=["?"], split={"train": 8, "eval": 2})
    write(tmp_path / "spec.json", json.dumps(SPEC))
    featurize("ds", "feat", spec=tmp_path / "spec.json")
    return "feat"


def cfg_file(tmp_path, doc, name="train.json"):
    write(tmp_path / name, json.dumps(doc))
    return tmp_path / name


def arrays(split):
    df = pl.read_parquet(f"feat/{split}.parquet")
    X = df.drop("income", "fnlwgt").to_numpy().astype(np.float32)
    return X, df["income"].to_numpy()


def test_model_matches_scikit_learn_and_predicts_label_values(tmp_path, features):
    r = train(features, "model", config=cfg_file(tmp_path, config()))
    X, y = arrays("train")
    direct = LogisticRegression(max_iter=300, random_state=0).fit(X, y)
    Xe, ye = arrays("eval")
    s = r.manifest["summary"]
    assert s["metrics"]["eval"]["accuracy"] == pytest.approx(accuracy_score(ye, direct.predict(Xe)))
    assert s["estimator"] == "LogisticRegression" and s["classes"] == ["<=50K", ">50K"]
    assert s["features"] == json.loads(open("feat/manifest.json").read())["id"]
    assert s["data"] == json.loads(open("ds/manifest.json").read())["id"]
    files = {f["path"] for f in r.manifest["files"]}
    assert files == {"model.skops", "transform.json", "signature.json", "metrics.json"}
    model = Model.load("model")
    raw = pl.read_parquet("ds/eval.parquet")
    preds, proba = model.predict_frame(raw)
    assert set(preds) <= {"<=50K", ">50K"}
    assert [p == ">50K" for p in preds] == (direct.predict(Xe) == 1).tolist()
    np.testing.assert_allclose(np.array(proba)[:, 1], direct.predict_proba(Xe)[:, 1], rtol=1e-5)
    rows_preds, rows_proba = model.predict_rows(raw.head(50).to_dicts())
    assert rows_preds == preds[:50]
    np.testing.assert_allclose(rows_proba, proba[:50], rtol=1e-6)
    sig = json.loads(open("model/signature.json").read())
    assert sig["task"] == "classification" and sig["label"]["classes"] == ["<=50K", ">50K"]
    train_age = pl.read_parquet("ds/train.parquet")["age"]  # the range seen in training
    assert sig["inputs"]["age"]["type"] == "int"
    assert (sig["inputs"]["age"]["min"], sig["inputs"]["age"]["max"]) == (
        train_age.min(),
        train_age.max(),
    )
    assert (
        sig["inputs"]["workclass"]["nullable"] is True
        and "Private" in sig["inputs"]["workclass"]["domain"]
    )


@pytest.mark.slow
def test_same_inputs_and_seed_give_the_same_model_id_across_processes(tmp_path, features):
    path = cfg_file(
        tmp_path, config(estimator="RandomForestClassifier", params={"n_estimators": 20})
    )
    ids = []
    for out in ("m1", "m2"):
        proc = run_mlstage(
            "train", "feat", "--config", str(path), "-o", out, "--json", cwd=tmp_path, check=0
        )
        ids.append(json.loads(proc.stdout)["id"])
    assert ids[0] == ids[1]
    other = cfg_file(
        tmp_path,
        config(estimator="RandomForestClassifier", params={"n_estimators": 20}, seed=1),
        "s1.json",
    )
    assert train(features, "m3", config=other).manifest["id"] != ids[0]


@pytest.mark.slow
@pytest.mark.parametrize("search", ["random", "grid", "halving"])
def test_tuning_records_every_trial_and_refits(tmp_path, features, search):
    space = {"C": [0.01, 0.1, 1.0]} if search == "grid" else {"C": {"loguniform": [0.001, 10]}}
    tune = {"search": search, "cv": 3, "scoring": "f1_macro", "space": space, "n_jobs": 2}
    if search == "random":
        tune["n_iter"] = 5
    r = train(features, "m", config=cfg_file(tmp_path, config(tune=tune)))
    metrics = json.loads(open("m/metrics.json").read())
    cv = metrics["cv"]
    assert cv["search"] == search and cv["scoring"] == "f1_macro" and cv["folds"] == 3
    if search != "halving":
        assert len(cv["trials"]) == (3 if search == "grid" else 5)
    final = [
        t for t in cv["trials"] if t.get("round", 0) == max(t.get("round", 0) for t in cv["trials"])
    ]
    best = max(final, key=lambda t: t["mean"])
    assert cv["best_score"] == pytest.approx(best["mean"])
    assert Model.load("m").estimator.C == pytest.approx(cv["best_params"]["C"])
    assert r.manifest["summary"]["cv_score"] == pytest.approx(cv["best_score"])


@pytest.mark.slow
def test_every_allowed_estimator_round_trips_through_safe_files(tmp_path, features):
    reg_spec = dict(
        SPEC,
        label="hours-per-week",
        features=[f for f in SPEC["features"] if f["column"] != "hours-per-week"],
    )
    write(tmp_path / "reg.json", json.dumps(reg_spec))
    featurize("ds", "regfeat", spec=tmp_path / "reg.json")
    raw = pl.read_parquet("ds/eval.parquet").head(20)
    for name, (_, task) in ESTIMATORS.items():
        if name == "MultinomialNB":
            continue  # needs non-negative features: tested below
        doc = {
            "format": "mlstage-train/1",
            "task": task,
            "estimator": name,
            "params": {},
            "seed": 0,
        }
        out = f"est_{name}"
        train(
            "feat" if task == "classification" else "regfeat",
            out,
            config=cfg_file(tmp_path, doc, f"{name}.json"),
        )
        preds, _ = Model.load(out).predict_frame(raw)
        assert len(preds) == 20, name


def test_a_histogram_boosting_with_categorical_features_trains_and_loads(tmp_path, features):
    """It trained and then never loaded (its preprocessor's types were untrusted)."""
    cfg = config(estimator="HistGradientBoostingClassifier",
                 params={"max_iter": 10, "categorical_features": [0]})  # fmt: skip
    train(features, "model", config=cfg_file(tmp_path, cfg))
    X, _ = arrays("eval")
    m = Model.load("model")
    assert m.estimator.is_categorical_ is not None and m.estimator.is_categorical_[0]
    assert len(m.estimator.predict(X)) == len(X)


def test_a_model_that_would_not_load_is_refused_when_it_trains(tmp_path, features, monkeypatch):
    """Should a model hold a type loading refuses, train says so (exit 2) and writes
    nothing, instead of a model that fails at every predict."""
    from mlstage.model import estimator_file

    trusted = [t for t in estimator_file.TRUSTED if t != "sklearn.tree._tree.Tree"]
    monkeypatch.setattr(estimator_file, "TRUSTED", trusted)
    cfg = config(estimator="DecisionTreeClassifier", params={"max_depth": 3})
    with pytest.raises(BadInput, match=r"does not load \(sklearn.tree._tree.Tree\)"):
        train(features, "model", config=cfg_file(tmp_path, cfg))
    assert not os.path.exists("model")


@pytest.mark.parametrize("early_stopping", [True, "auto"])
def test_early_stopping_by_a_scorer_is_refused_before_the_fit(tmp_path, features, early_stopping):
    """Its fitted scorer cannot go into a model file (skops recursed: exit 3 after the
    fit); it is bad input, said before any data is read."""
    cfg = config(estimator="HistGradientBoostingClassifier",
                 params={"max_iter": 5, "early_stopping": early_stopping, "scoring": "f1"})  # fmt: skip
    with pytest.raises(BadInput, match=r"at \$.params.scoring: .* scorer 'f1'"):
        train(features, "model", config=cfg_file(tmp_path, cfg))
    assert not os.path.exists("model")
    ok = config(estimator="HistGradientBoostingClassifier",
                params={"max_iter": 5, "early_stopping": True, "scoring": "loss"})  # fmt: skip
    train(features, "model", config=cfg_file(tmp_path, ok, "ok.json"))
    assert Model.load("model").estimator.n_iter_ <= 5


def test_an_estimator_skops_cannot_write_is_bad_input(tmp_path, features, monkeypatch):
    from mlstage.model import estimator_file

    def recursing(estimator):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(estimator_file, "dump_estimator", recursing)
    with pytest.raises(BadInput, match="holds an object skops cannot write"):
        train(features, "model", config=cfg_file(tmp_path, config()))
    assert not os.path.exists("model")


def test_an_estimator_that_refuses_the_data_is_bad_input(tmp_path, features):
    with pytest.raises(
        BadInput, match="MultinomialNB cannot be fitted on these features: Negative values"
    ):
        train(
            features, "m", config=cfg_file(tmp_path, config(estimator="MultinomialNB", params={}))
        )


def test_a_tampered_model_file_is_refused(tmp_path, features):
    train(features, "m", config=cfg_file(tmp_path, config()))
    target = tmp_path / "m" / "model.skops"
    os.chmod(target, 0o644)
    data = bytearray(target.read_bytes())
    data[-40] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(CorruptArtifact, match="do not match its manifest: .*model.skops"):
        Model.load("m")


def test_a_different_scikit_learn_minor_version_is_refused(tmp_path, features):
    train(features, "m", config=cfg_file(tmp_path, config()))
    os.makedirs("copy")
    for f in os.listdir("m"):
        with open(f"m/{f}", "rb") as src, open(f"copy/{f}", "wb") as dst:
            dst.write(src.read())
    manifest = json.loads(open("copy/manifest.json").read())
    manifest["environment"]["scikit-learn"] = "0.99.0"
    open("copy/manifest.json", "w").write(json.dumps(manifest))
    with pytest.raises(
        BadInput, match=r"trained with scikit-learn 0\.99\.0, this is scikit-learn \d"
    ):
        Model.load("copy")


@pytest.mark.parametrize(
    "changes, pattern",
    [
        ({"estimator": "CatBoostClassifier"}, r"'CatBoostClassifier' is not an allowed estimator"),
        ({"estimator": "os.system"}, r"not an allowed estimator"),
        (
            {"estimator": "Ridge"},
            r"Ridge is a regression estimator, but the task is classification",
        ),
        (
            {"params": {"C": -1}},
            r"The 'C' parameter of LogisticRegression must be a float in the range \(0\.0, inf\]",
        ),
        (
            {"params": {"depth": 3}},
            r"\$\.params\.depth: LogisticRegression has no parameter 'depth'",
        ),
        ({"format": "mlstage-train/2"}, r"at \$\.format"),
        ({"task": "ranking"}, r"at \$\.task: 'ranking' is not one of"),
        (
            {"tune": {"search": "grid", "space": {"C": {"uniform": [0, 1]}}}},
            r"grid search takes lists",
        ),
        ({"tune": {"scoring": "best", "space": {"C": [1]}}}, r"unknown scorer 'best'"),
        ({"tune": {"space": {"gamma": [1]}}}, r"has no parameter 'gamma'"),
        ({"weight": "age"}, r'"age" is not a passthrough column'),
    ],
)
def test_bad_configs_are_exit_2_before_any_data_is_read(tmp_path, features, changes, pattern):
    with pytest.raises(BadInput, match=pattern):
        train(features, "m", config=cfg_file(tmp_path, config(**changes)))
    assert not (tmp_path / "m").exists()


def test_bad_features(tmp_path, features):
    write(tmp_path / "nolabel.json", json.dumps(dict(SPEC, label=None)))
    featurize("ds", "nolabel", spec=tmp_path / "nolabel.json")
    with pytest.raises(BadInput, match="the features have no label"):
        train("nolabel", "m", config=cfg_file(tmp_path, config()))
    with pytest.raises(BadInput, match='a regression label must be numeric; "income" is string'):
        train(
            "feat",
            "m",
            config=cfg_file(tmp_path, config(task="regression", estimator="Ridge", params={})),
        )
    one = pl.read_parquet("ds/train.parquet").with_columns(income=pl.lit(">50K"))
    one.write_parquet(tmp_path / "one.parquet")
    ingest([tmp_path / "one.parquet"], "one")
    featurize("one", "onefeat", spec=tmp_path / "spec.json")
    with pytest.raises(BadInput, match="has one class in the training split"):
        train("onefeat", "m", config=cfg_file(tmp_path, config()))


def test_sample_weights_change_the_model(tmp_path, features):
    a = train(features, "a", config=cfg_file(tmp_path, config()))
    b = train(features, "b", config=cfg_file(tmp_path, config(weight="fnlwgt"), "w.json"))
    assert a.manifest["id"] != b.manifest["id"]
    assert not np.allclose(Model.load("a").estimator.coef_, Model.load("b").estimator.coef_)


def test_runs_and_diff(tmp_path, features):
    train(features, "lr", config=cfg_file(tmp_path, config()))
    train(
        features,
        "rf",
        config=cfg_file(
            tmp_path,
            config(estimator="RandomForestClassifier", params={"n_estimators": 10, "max_depth": 4}),
            "rf.json",
        ),
    )
    runs = json.loads(cli("runs", "--json").stdout)
    assert [r["estimator"] for r in runs] == [
        "RandomForestClassifier",
        "LogisticRegression",
    ]  # newest first
    by_acc = json.loads(cli("runs", "--json", "--sort", "eval.accuracy").stdout)
    accs = [r["metrics"]["eval"]["accuracy"] for r in by_acc]
    assert accs == sorted(accs, reverse=True)
    only = json.loads(cli("runs", "--json", "--filter", "estimator=LogisticRegression").stdout)
    assert [r["estimator"] for r in only] == ["LogisticRegression"]
    assert cli("runs", "--sort", "nope").exit_code == 2
    table = cli("runs").stdout
    assert "LogisticRegression" in table and "eval.accuracy=" in table
    rows = {
        r["field"]: (r["a"], r["b"]) for r in json.loads(cli("diff", "lr", "rf", "--json").stdout)
    }
    assert rows["params.config.estimator"] == ("LogisticRegression", "RandomForestClassifier")
    assert "metrics.eval.accuracy" in rows


def test_train_on_full_adult_via_cli(tmp_path):
    ingest([SAMPLE / "adult.csv"], "ds", null=["?"], split={"train": 8, "eval": 2})
    write(tmp_path / "spec.json", json.dumps(SPEC))
    featurize("ds", "feat", spec=tmp_path / "spec.json")
    path = cfg_file(
        tmp_path, config(estimator="HistGradientBoostingClassifier", params={"max_iter": 50})
    )
    r = cli("train", "feat", "--config", str(path), "-o", "m", "--json")
    assert r.exit_code == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["kind"] == "model" and rec["metrics"]["eval"]["accuracy"] > 0.8
