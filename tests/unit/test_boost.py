"""XGBoost and LightGBM (the `boost` extra): allowed estimators saved and loaded safely
through skops, reproducible, tuned, with any label, and exit 2 naming the extra when
their library is absent."""

from __future__ import annotations

import json
import re
import sys
import zipfile

import numpy as np
import polars as pl
import pytest

from mlstage import evaluate, featurize, ingest, train
from mlstage.errors import BadInput
from mlstage.model.artifact import Model
from mlstage.model.estimator_file import TRUSTED

from ..conftest import cli, run_mlstage, write
from .test_train import SPEC

TASKS = {
    "XGBClassifier": "classification",
    "XGBRegressor": "regression",
    "LGBMClassifier": "classification",
    "LGBMRegressor": "regression",
}
# The settings mlstage gives them unless the config says otherwise (README, train).
DEFAULTS = {
    "XGB": {"n_jobs": 1, "random_state": 0},
    "LGBM": {
        "n_jobs": 1,
        "random_state": 0,
        "verbosity": -1,
        "deterministic": True,
        "force_col_wise": True,
    },
}


@pytest.fixture
def features(tmp_path, adult_small):
    ingest([adult_small], "ds", null=["?"], split={"train": 8, "eval": 2})
    write(tmp_path / "spec.json", json.dumps(SPEC))
    featurize("ds", "feat", spec=tmp_path / "spec.json")
    reg = dict(
        SPEC,
        label="hours-per-week",
        features=[f for f in SPEC["features"] if f["column"] != "hours-per-week"],
    )
    write(tmp_path / "reg.json", json.dumps(reg))
    featurize("ds", "regfeat", spec=tmp_path / "reg.json")
    return "feat"


def config(tmp_path, name, file=None, **kw):
    doc = {
        "format": "mlstage-train/1",
        "task": TASKS[name],
        "estimator": name,
        "params": {"n_estimators": 20},
        "seed": 0,
        **kw,
    }
    path = tmp_path / (file or f"{name}.json")
    write(path, json.dumps(doc))
    return path


def arrays(folder, split, label):
    df = pl.read_parquet(f"{folder}/{split}.parquet")
    return df.drop(label, "fnlwgt").to_numpy().astype(np.float32), df[label].to_numpy()


@pytest.mark.parametrize("name", list(TASKS))
def test_round_trip_through_safe_files_predicts_as_the_library_fitted_directly(
    tmp_path, features, name
):
    import lightgbm
    import skops.io as sio
    import xgboost
    from skops.io.exceptions import UntrustedTypesFoundException

    task = TASKS[name]
    folder, label = (
        ("feat", "income") if task == "classification" else ("regfeat", "hours-per-week")
    )
    train(folder, "m", config=config(tmp_path, name))
    model = Model.load("m")
    assert type(model.estimator).__name__ == name
    defaults = DEFAULTS["XGB" if name.startswith("XGB") else "LGBM"]
    assert {k: model.estimator.get_params()[k] for k in defaults} == defaults
    lib = xgboost if name.startswith("XGB") else lightgbm
    X, y = arrays(folder, "train", label)
    direct = getattr(lib, name)(n_estimators=20, **defaults).fit(X, y)
    Xe, _ = arrays(folder, "eval", label)
    raw = pl.read_parquet("ds/eval.parquet")
    preds, proba = model.predict_frame(raw)
    if task == "classification":
        np.testing.assert_allclose(proba, direct.predict_proba(Xe), rtol=1e-6)
        classes = np.array(["<=50K", ">50K"])
        assert preds == classes[direct.predict_proba(Xe).argmax(axis=1)].tolist()
        assert len(set(preds)) == 2
    else:
        np.testing.assert_allclose(preds, direct.predict(Xe), rtol=1e-6)
        assert np.std(preds) > 0
    row_preds, _ = model.predict_rows(
        [model.coerce(r) for r in raw.drop(label).head(20).to_dicts()]
    )
    if task == "classification":
        assert row_preds == preds[:20]
    else:
        np.testing.assert_allclose(row_preds, preds[:20], rtol=1e-6)
    # skops, no pickle: every type in the file is one mlstage trusts by name, and the
    # Booster loads only because it is on that list
    data = open("m/model.skops", "rb").read()
    untrusted = set(sio.get_untrusted_types(data=data))
    booster = f"{lib.__name__}.{'core' if lib is xgboost else 'basic'}.Booster"
    assert booster in untrusted and untrusted <= set(TRUSTED)
    with pytest.raises(UntrustedTypesFoundException, match="Booster"):
        sio.loads(data, trusted=[t for t in TRUSTED if t != booster])
    # skops' random file names (uuid .bin, id() .npy) renumbered for reproducible bytes
    names = zipfile.ZipFile("m/model.skops").namelist()
    assert all(re.fullmatch(r"schema\.json|\d+\.(npy|bin)", n) for n in names), names
    signature = json.loads(open("m/signature.json").read())
    assert signature["library"] == {"name": lib.__name__, "version": lib.__version__}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["XGBClassifier", "LGBMRegressor"])
def test_same_inputs_and_seed_give_the_same_model_id_across_processes(tmp_path, features, name):
    sampled = {"subsample": 0.8, "colsample_bytree": 0.8, "n_estimators": 20}
    if name.startswith("LGBM"):
        sampled["subsample_freq"] = 1
    folder = "feat" if TASKS[name] == "classification" else "regfeat"
    path = config(tmp_path, name, params=sampled)
    ids = []
    for out in ("m1", "m2"):
        proc = run_mlstage(
            "train", folder, "--config", str(path), "-o", out, "--json", cwd=tmp_path, check=0
        )
        ids.append(json.loads(proc.stdout)["id"])  # stdout: the JSON alone, no library chatter
    assert ids[0] == ids[1]
    assert (tmp_path / "m1/model.skops").read_bytes() == (tmp_path / "m2/model.skops").read_bytes()
    other = config(tmp_path, name, "seed1.json", params=sampled, seed=1)
    assert train(folder, "m3", config=other).manifest["id"] != ids[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, search, space, trials",
    [
        (
            "XGBClassifier",
            "random",
            {"max_depth": [2, 3, 4], "learning_rate": {"loguniform": [0.01, 0.5]}},
            4,
        ),
        ("LGBMClassifier", "grid", {"num_leaves": [4, 8], "min_child_samples": [5, 40]}, 4),
        ("LGBMRegressor", "halving", {"learning_rate": {"uniform": [0.05, 0.3]}}, None),
    ],
)
def test_tuning(tmp_path, features, name, search, space, trials):
    tune = {"search": search, "cv": 3, "space": space, "n_jobs": 2}
    if search == "random":
        tune["n_iter"] = trials
    folder = "feat" if TASKS[name] == "classification" else "regfeat"
    r = train(folder, "m", config=config(tmp_path, name, tune=tune))
    cv = json.loads(open("m/metrics.json").read())["cv"]
    assert cv["search"] == search and cv["folds"] == 3
    if trials is not None:
        assert len(cv["trials"]) == trials
        assert len({json.dumps(t["params"], sort_keys=True) for t in cv["trials"]}) == trials
    last = max(t.get("round", 0) for t in cv["trials"])
    best = max((t for t in cv["trials"] if t.get("round", 0) == last), key=lambda t: t["mean"])
    assert cv["best_score"] == pytest.approx(best["mean"])
    assert np.isfinite(cv["best_score"])
    params = Model.load("m").estimator.get_params()
    for key, value in cv["best_params"].items():
        assert params[key] == pytest.approx(value)
    assert r.manifest["summary"]["cv_score"] == pytest.approx(cv["best_score"])


def _int_label_data(tmp_path):
    """An int label whose classes are not 0..k-1 (XGBoost's own rule), one of them rare;
    a feature with missing values and no `impute` (both libraries take NaN as it is)."""
    rng = np.random.default_rng(0)
    n = 600
    x = rng.normal(size=n)
    y = np.select([x < -0.5, x < 0.7], [3, 7], 12)
    y[rng.choice(n, 12, replace=False)] = 20  # rare
    z = [None if rng.random() < 0.2 else float(v) for v in rng.normal(size=n)]
    frame = pl.DataFrame({"x": x, "z": z, "y": y})
    frame.write_parquet(tmp_path / "ints.parquet")
    ingest([tmp_path / "ints.parquet"], "ints", split={"train": 8, "eval": 2})
    spec = {
        "format": "mlstage-features/1",
        "label": "y",
        "features": [
            {"column": "x", "transform": "standardize"},
            {"column": "z", "transform": "standardize"},
        ],
    }
    write(tmp_path / "ints_spec.json", json.dumps(spec))
    featurize("ints", "intfeat", spec=tmp_path / "ints_spec.json")


@pytest.mark.parametrize("name", ["XGBClassifier", "LGBMClassifier"])
def test_an_int_label_of_any_values_predicts_its_own_values(tmp_path, name):
    from sklearn.metrics import accuracy_score

    _int_label_data(tmp_path)
    r = train("intfeat", "m", config=config(tmp_path, name))
    model = Model.load("m")
    assert model.class_names == ["3", "7", "12", "20"]
    signature = json.loads(open("m/signature.json").read())
    # XGBoost was fitted on the classes' positions; the signature says to decode them
    assert signature["label"].get("encoded", False) is (name == "XGBClassifier")
    eval_df = pl.read_parquet("ints/eval.parquet")
    preds, proba = model.predict_frame(eval_df)
    assert set(preds) <= {3, 7, 12, 20} and {3, 7, 12} <= set(preds)
    assert all(type(p) is int for p in preds)
    assert proba.shape == (eval_df.height, 4)
    accuracy = accuracy_score(eval_df["y"].to_list(), preds)
    assert accuracy > 0.75
    assert r.manifest["summary"]["metrics"]["eval"]["accuracy"] == pytest.approx(accuracy)
    assert np.isnan(model.features(eval_df)).any()  # z's missing values reach the model
    row_preds, _ = model.predict_rows([model.coerce(r) for r in eval_df.drop("y").to_dicts()])
    assert row_preds == preds
    write(
        tmp_path / "evaluate.json",
        json.dumps({"format": "mlstage-evaluate/1", "thresholds": {"accuracy": {"min": 0.5}}}),
    )
    e = evaluate("m", "ints", "ev", config=tmp_path / "evaluate.json")
    metrics = json.loads(open("ev/metrics.json").read())
    assert metrics["overall"]["accuracy"] == pytest.approx(accuracy)
    assert e.manifest["summary"]["blessed"] is True
    importance = metrics["importance"]["values"]
    assert set(importance) == {"x", "z"} and importance["x"] > importance["z"]


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("XGBClassifier", {"depth": 3}, r"\$\.params\.depth: XGBClassifier has no parameter"),
        (
            "XGBClassifier",
            {"learning_rate": -1},
            r"XGBClassifier cannot be fitted on these features: value -1 for Parameter"
            r" learning_rate should be greater equal to 0$",
        ),
        (
            "LGBMClassifier",
            {"num_leaves": 1},
            r"LGBMClassifier cannot be fitted on these features: Check failed: \(num_leaves\)"
            r" > \(1\)$",
        ),
    ],
)
def test_bad_params_are_exit_2_with_the_library_reason_and_nothing_on_stdout(
    tmp_path, features, name, params, message
):
    result = cli("train", "feat", "--config", str(config(tmp_path, name, params=params)), "-o", "m")
    assert result.exit_code == 2
    assert re.search(message, result.stderr.strip().splitlines()[-1]), result.stderr
    assert result.stdout == ""  # no library log on stdout
    assert not (tmp_path / "m").exists()


def test_lightgbm_is_quiet_unless_the_config_sets_verbosity(tmp_path, features):
    path = str(config(tmp_path, "LGBMClassifier"))
    result = cli("train", "feat", "--config", path, "-o", "m", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["estimator"] == "LGBMClassifier"
    assert "[LightGBM]" not in result.stderr
    assert Model.load("m").estimator.verbosity == -1
    # LightGBM's own parameters (not listed by its get_params) by their main names
    params = {"n_estimators": 5, "verbosity": 1, "max_bin": 15}
    loud = str(config(tmp_path, "LGBMClassifier", "loud.json", params=params))
    result = cli("train", "feat", "--config", loud, "-o", "loud", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["params"] == params  # its log on stderr, not stdout
    assert "[LightGBM] [Info] Total Bins" in result.stderr
    estimator = Model.load("loud").estimator
    assert estimator.verbosity == 1 and estimator.get_params()["max_bin"] == 15


@pytest.mark.parametrize("name", ["XGBClassifier", "LGBMRegressor"])
def test_an_absent_library_is_exit_2_naming_the_extra(tmp_path, features, monkeypatch, name):
    lib = "xgboost" if name.startswith("XGB") else "lightgbm"
    folder = "feat" if TASKS[name] == "classification" else "regfeat"
    train(folder, "m", config=config(tmp_path, name))  # with the library
    message = f"{name} needs the {lib} library: pip install 'mlstage[boost]'"
    with monkeypatch.context() as mp:
        mp.setitem(sys.modules, lib, None)  # `import lib` now raises ImportError
        with pytest.raises(ImportError):
            __import__(lib)
        result = cli("train", folder, "--config", str(config(tmp_path, name, "2.json")), "-o", "m2")
        assert result.exit_code == 2 and message in result.stderr, result.stderr
        assert not (tmp_path / "m2").exists()
        # a saved model of that kind: the same message, before skops reads the file
        with pytest.raises(BadInput, match=re.escape(message)):
            Model.load("m")
        result = cli("predict", "m", "ds", "--split", "eval", "-o", "p")
        assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert Model.load("m").estimator is not None


def test_a_model_loads_only_under_the_library_minor_version_it_was_trained_with(
    tmp_path, features, monkeypatch
):
    import xgboost

    train("feat", "m", config=config(tmp_path, "XGBClassifier"))
    trained = xgboost.__version__
    monkeypatch.setattr(xgboost, "__version__", "9.9.0")
    with pytest.raises(
        BadInput, match=rf"trained with xgboost {re.escape(trained)}, this is xgboost 9\.9\.0"
    ):
        Model.load("m")
    patch = ".".join(trained.split(".")[:2]) + ".99"
    monkeypatch.setattr(xgboost, "__version__", patch)
    assert Model.load("m").estimator is not None  # another patch release loads
