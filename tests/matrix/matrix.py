"""The dataset matrix: small generated datasets crossing column types, missing patterns,
label kinds and file formats, plus the datasets scikit-learn ships in its wheel, each run
through the whole chain with its results checked (not only exit codes).

`cases()` lists every case; `run_chain(case, root)` runs one and asserts as it goes.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

TYPES = ("int", "float", "bool", "string", "date", "datetime")
MISSING = ("none", "some", "all_but_one", "all")
LABELS = ("binary_string", "binary_01", "multiclass", "regression")
FORMATS = ("csv", "json", "jsonl", "parquet")
# One estimator of each family on the allow-list, classification and regression.
FAMILIES = {
    "linear": ("LogisticRegression", "Ridge"),
    "tree": ("DecisionTreeClassifier", "DecisionTreeRegressor"),
    "forest": ("RandomForestClassifier", "RandomForestRegressor"),
    "extra_trees": ("ExtraTreesClassifier", "ExtraTreesRegressor"),
    "boosting": ("GradientBoostingClassifier", "GradientBoostingRegressor"),
    "hist_boosting": ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor"),
    "neighbors": ("KNeighborsClassifier", "KNeighborsRegressor"),
    "svm": ("SVC", "SVR"),
    "linear_svm": ("LinearSVC", "LinearSVR"),
    "sgd": ("SGDClassifier", "SGDRegressor"),
    "naive_bayes": ("GaussianNB", "ElasticNet"),
    "mlp": ("MLPClassifier", "MLPRegressor"),
    "dummy": ("DummyClassifier", "DummyRegressor"),
    # optional (the boost extra, which `make test` installs)
    "xgboost": ("XGBClassifier", "XGBRegressor"),
    "lightgbm": ("LGBMClassifier", "LGBMRegressor"),
}
PARAMS = {"MLPClassifier": {"max_iter": 300}, "MLPRegressor": {"max_iter": 300},
          "LogisticRegression": {"max_iter": 500}, "SVC": {"probability": True}}  # fmt: skip
SKLEARN_DATASETS = ("iris", "wine", "breast_cancer", "diabetes")


@dataclass(frozen=True)
class Case:
    name: str
    label: str  # a LABELS kind, or "sklearn:<dataset>"
    fmt: str
    missing: str  # the missing pattern of every feature column but one (which is never missing)
    family: str
    rows: int = 400
    seed: int = 0
    always: bool = False  # run by `make test` too, beside its seeded sample

    @property
    def task(self) -> str:
        return (
            "regression" if self.label in ("regression", "sklearn:diabetes") else "classification"
        )


def cases() -> list[Case]:
    out = []
    families = list(FAMILIES)
    k = 0
    for label in LABELS:
        for fmt in FORMATS:
            for missing in MISSING:
                family = families[k % len(families)]
                out.append(Case(f"{label}-{fmt}-{missing}-{family}", label, fmt, missing, family,
                                rows=300 + 97 * (k % 7), seed=k))  # fmt: skip
                k += 1
    for i, name in enumerate(SKLEARN_DATASETS):
        family = ("hist_boosting", "forest", "linear", "linear")[i]
        out.append(Case(f"sklearn-{name}-{family}", f"sklearn:{name}", "csv", "none", family,
                        always=True))  # fmt: skip
    # XGBoost and LightGBM on every label kind, with missing values (NaN beside null in
    # Parquet), whichever generated cases the seeded sample picks
    for i, (label, fmt, family) in enumerate(BOOST_CASES):
        out.append(Case(f"{label}-{fmt}-some-{family}-always", label, fmt, "some", family,
                        rows=500, seed=1000 + i, always=True))  # fmt: skip
    return out


BOOST_CASES = (
    ("multiclass", "parquet", "xgboost"),
    ("binary_01", "csv", "xgboost"),
    ("regression", "jsonl", "xgboost"),
    ("multiclass", "csv", "lightgbm"),
    ("binary_string", "parquet", "lightgbm"),
    ("regression", "json", "lightgbm"),
)


# -- generating ---------------------------------------------------------------------------


def _mask(rng, n: int, pattern: str) -> np.ndarray:
    """True where the value is missing."""
    if pattern == "none":
        return np.zeros(n, dtype=bool)
    if pattern == "some":
        return rng.random(n) < 0.15
    if pattern == "all_but_one":
        m = np.ones(n, dtype=bool)
        m[rng.integers(n)] = False
        return m
    return np.ones(n, dtype=bool)


def generate(case: Case) -> pl.DataFrame:
    """A table with one column per type (plus a never-missing float `x0`) and a label
    that depends on the features, so a model has something to learn."""
    if case.label.startswith("sklearn:"):
        return sklearn_frame(case.label.split(":", 1)[1])
    rng = np.random.default_rng(case.seed)
    n = case.rows
    x0 = rng.normal(size=n)
    ints = rng.integers(0, 50, size=n)
    floats = rng.normal(10, 3, size=n).round(6)
    bools = rng.random(n) < 0.4
    cats = rng.choice(["red", "green", "blue, dark", 'say "hi"', "é"], size=n)
    base = dt.date(2020, 1, 1)
    dates = [base + dt.timedelta(days=int(d)) for d in rng.integers(0, 900, size=n)]
    times = [dt.datetime(2021, 3, 1) + dt.timedelta(seconds=int(s), microseconds=int(u))
             for s, u in zip(rng.integers(0, 10**7, size=n), rng.integers(0, 10**6, size=n), strict=True)]  # fmt: skip
    values = {"int": ints.tolist(), "float": floats.tolist(), "bool": bools.tolist(),
              "string": cats.tolist(), "date": dates, "datetime": times}  # fmt: skip
    cols: dict[str, pl.Series] = {"x0": pl.Series("x0", x0.round(6))}
    dtypes = {"int": pl.Int64, "float": pl.Float64, "bool": pl.Boolean, "string": pl.String,
              "date": pl.Date, "datetime": pl.Datetime("us")}  # fmt: skip
    for t in TYPES:
        m = _mask(rng, n, case.missing)
        cols[f"c_{t}"] = pl.Series(
            f"c_{t}", [None if m[i] else v for i, v in enumerate(values[t])], dtype=dtypes[t]
        )
    if case.fmt == "parquet" and case.missing == "some":
        # Parquet keeps NaN apart from null: both are missing values, to every stage
        nan = pl.Series(rng.random(n) < 0.1)
        cols["c_float"] = (
            pl.select(pl.when(nan).then(float("nan")).otherwise(cols["c_float"]))
            .to_series()
            .alias("c_float")
        )
    score = x0 + 0.05 * (ints - 25) + 0.8 * bools + rng.normal(scale=0.5, size=n)
    if case.label == "regression":
        label = pl.Series("y", (3 * score + 7).round(6))
    elif case.label == "binary_01":
        label = pl.Series("y", (score > 0.3).astype(np.int64))
    elif case.label == "binary_string":
        label = pl.Series("y", np.where(score > 0.3, "yes", "no"))
    else:  # three common classes and a rare one
        y = np.digitize(score, [-0.4, 0.9]).astype(object)
        names = np.array(["low", "mid", "high"], dtype=object)[y.astype(int)]
        names[rng.random(n) < 0.04] = "rare"
        label = pl.Series("y", names.astype(str))
    # a few rows without a label: dropped and counted, never a crash
    label = label.scatter(rng.choice(n, size=max(1, n // 100), replace=False), None)
    return pl.DataFrame([*cols.values(), label])


def sklearn_frame(name: str) -> pl.DataFrame:
    from sklearn import datasets

    d = getattr(datasets, f"load_{name}")()
    names = [str(f).replace(" ", "_").replace("(", "").replace(")", "") for f in d.feature_names]
    frame = pl.DataFrame({c: d.data[:, i] for i, c in enumerate(names)})
    if name == "diabetes":
        return frame.with_columns(y=pl.Series(d.target.astype(float)))
    return frame.with_columns(y=pl.Series([str(d.target_names[t]) for t in d.target]))


def write_source(frame: pl.DataFrame, fmt: str, path: Path) -> Path:
    path = path.with_suffix(f".{fmt}")
    if fmt == "csv":
        frame.write_csv(path)
    elif fmt == "parquet":
        frame.write_parquet(path)
    else:
        records = [
            {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in r.items()}
            for r in frame.iter_rows(named=True)
        ]
        with open(path, "w") as f:
            if fmt == "json":
                json.dump(records, f)
            else:
                f.write("\n".join(json.dumps(r) for r in records) + "\n")
    return path


# -- the spec and configs -------------------------------------------------------------------


def feature_spec(frame: pl.DataFrame, types: dict[str, str]) -> dict[str, Any]:
    """A transform per usable column: imputed where training has missing values."""
    features = []
    for col, t in types.items():
        if col == "y":
            continue
        from mlstage.core.missing import missing_as_null

        present = (
            frame.select(missing_as_null(col, frame.schema[col])).to_series().drop_nulls().len()
        )
        if present == 0:
            continue  # an all-missing column holds nothing to learn
        has_missing = present < frame.height
        if t in ("int", "float"):
            entry = {"column": col, "transform": "standardize"}
            if has_missing:
                entry |= {"impute": "median", "indicator": True}
        elif t in ("string", "bool"):
            entry = {"column": col, "transform": "one_hot"}
        else:
            entry = {
                "column": col,
                "transform": "datetime",
                "parts": ["year", "month", "dayofweek"],
            }
            if has_missing:
                entry["impute"] = "mode"
        features.append(entry)
    return {"format": "mlstage-features/1", "label": "y", "features": features}


def train_config(case: Case) -> dict[str, Any]:
    est = FAMILIES[case.family][0 if case.task == "classification" else 1]
    return {"format": "mlstage-train/1", "task": case.task, "estimator": est,
            "params": PARAMS.get(est, {}), "seed": 0}  # fmt: skip


# -- running and checking -------------------------------------------------------------------


def _close(a, b, rel: float = 1e-9) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


def run_chain(case: Case, root: Path) -> dict[str, Any]:
    """The whole chain on one case; every stage's result is checked. Returns facts for the test."""
    from sklearn import metrics as skm
    from starlette.testclient import TestClient

    from mlstage import (
        evaluate,
        featurize,
        ingest,
        monitor,
        predict,
        schema,
        stats,
        train,
        validate,
    )
    from mlstage.model.artifact import Model
    from mlstage.model.whatif import whatif
    from mlstage.serving.app import create_app
    from mlstage.stages.deploy import deploy
    from mlstage.store.store import Store

    frame = generate(case)
    src = write_source(frame, case.fmt, root / "source")
    # ingest: rows and values read back equal to what was written
    ing = ingest([src], root / "data", split={"train": 7, "eval": 3})
    types = ing.manifest["summary"]["schema"]
    back = pl.concat(
        [pl.read_parquet(root / "data" / f"{s}.parquet") for s in ("train", "eval")],
        how="vertical_relaxed",
    )
    assert back.height == frame.height
    _assert_same_rows(frame, back, types)
    # stats: counts and missing equal a direct polars count
    st = stats(root / "data", root / "stats")
    doc = json.loads((root / "stats" / "stats.json").read_text())
    train_df = pl.read_parquet(root / "data" / "train.parquet")
    for col, info in doc["splits"]["train"]["columns"].items():
        assert info["missing"] == train_df[col].null_count(), col
    assert st.manifest["kind"] == "stats"
    # schema + validate: the training split fits the schema inferred from it
    schema(root / "stats", root / "schema", label="y")
    v = validate(root / "data", root / "anomalies", schema=root / "schema", baseline=root / "stats")
    found = json.loads((root / "anomalies" / "anomalies.json").read_text())["anomalies"]
    assert not [a for a in found if a["split"] == "train" and a["severity"] == "error"], found
    # the eval split is a random (hashed) split of the same data: drift is counted, and
    # test_matrix checks the rate over the cases against the documented level (issue 16)
    random_split_drift = [(a["column"], a["p_value"], a["significance"]) for a in found
                          if a["type"] in ("drift", "label_drift")]  # fmt: skip
    assert v.manifest["kind"] == "anomalies"
    # featurize and train
    spec = feature_spec(train_df, types)
    (root / "spec.json").write_text(json.dumps(spec))
    featurize(root / "data", root / "features", spec=root / "spec.json")
    (root / "train.json").write_text(json.dumps(train_config(case)))
    t = train(root / "features", root / "model", config=root / "train.json")
    unlabelled = train_df["y"].null_count()
    assert t.manifest["summary"]["unlabelled_rows"] == unlabelled
    model = Model.load(root / "model")
    # evaluate with slices and fairness; metrics equal scikit-learn's on predict's output
    slice_col = "c_string" if "c_string" in types else None
    cfg: dict[str, Any] = {"format": "mlstage-evaluate/1", "min_slice_size": 20, "thresholds": {}}
    if slice_col:
        cfg |= {"slices": [[slice_col]], "sensitive": [slice_col]}
    if case.task == "classification":
        cfg["positive"] = model.class_names[-1]
        cfg["thresholds"]["accuracy"] = {"min": 0.0}
    else:
        cfg["thresholds"]["mae"] = {"max": 1e300}  # SGD may diverge on unscaled years
    (root / "evaluate.json").write_text(json.dumps(cfg))
    e = evaluate(root / "model", root / "data", root / "evaluation", config=root / "evaluate.json")
    metrics = json.loads((root / "evaluation" / "metrics.json").read_text())
    predict(root / "model", root / "data", root / "predictions", split="eval", keep=["y"])
    preds = pl.read_parquet(root / "predictions" / "predictions.parquet")
    eval_df = pl.read_parquet(root / "data" / "eval.parquet")
    assert preds.height == eval_df.height
    labelled = preds.filter(pl.col("y").is_not_null())
    assert metrics["rows"] == labelled.height
    assert metrics["unlabelled_rows"] == eval_df["y"].null_count()
    if case.task == "classification":
        y_true = [str(v).lower() if isinstance(v, bool) else str(v) for v in labelled["y"]]
        y_pred = [str(v) for v in labelled["prediction"]]
        assert _close(metrics["overall"]["accuracy"], skm.accuracy_score(y_true, y_pred))
        if len(model.class_names) > 2:
            ref = skm.f1_score(
                y_true, y_pred, average="macro", labels=model.class_names, zero_division=0
            )
            assert _close(metrics["overall"]["f1"], ref)
    else:
        y_true, y_pred = labelled["y"].to_numpy(), labelled["prediction"].to_numpy()
        # predict and evaluate run the estimator on batches of different sizes: BLAS sums
        # (MLP, SVR) may differ in the last digits
        assert _close(metrics["overall"]["mae"], skm.mean_absolute_error(y_true, y_pred), 1e-6)
        assert _close(metrics["overall"]["r2"], skm.r2_score(y_true, y_pred), 1e-6)
    if slice_col:
        groups = metrics["fairness"][slice_col]["groups"]
        assert sum(g["rows"] for g in groups.values()) == labelled.height
    assert e.manifest["summary"]["blessed"] is True
    # the row path (serving, what-if) equals the batch path, nulls included
    rows = [dict(r) for r in eval_df.drop("y").head(5).iter_rows(named=True)]
    nulls = {c: None for c in model.signature["inputs"]}
    batch = preds.head(5)["prediction"].to_list()
    row_preds, _ = model.predict_rows([model.coerce(r) for r in rows])
    _assert_predictions_equal(row_preds, batch, case.task)
    null_pred, _ = model.predict_rows([model.coerce(nulls)])
    assert len(null_pred) == 1
    varied = next(c for c in model.signature["inputs"])
    w = whatif(model, nulls, [(varied, [rows[0][varied], None])])
    assert len(w[0]["rows"]) == 2
    # deploy and serve over both protocols, a row of nulls included
    store = Store.open()
    deploy(store, str(root / "model"), str(root / "evaluation"), root / "registry", name="m")
    app = create_app(root / "registry", log_dir=str(root / "logs"), watch=False)
    instances = [{k: _jsonable(v) for k, v in r.items()} for r in rows] + [nulls]
    with TestClient(app) as client:
        r = client.post("/v1/models/m:predict", json={"instances": instances})
        assert r.status_code == 200, r.text
        _assert_predictions_equal(r.json()["predictions"][:5], batch, case.task)
        csv_body = pl.DataFrame(instances, infer_schema_length=None).write_csv()
        r = client.post("/invocations", content=csv_body, headers={"Content-Type": "text/csv"})
        assert r.status_code == 200, r.text
        assert len(r.json()["predictions"]) == len(instances)
    # monitor the evaluation split as if it were served traffic
    mon = monitor(root / "data", root / "monitor", baseline=root / "stats",
                  schema=root / "schema", evaluation=root / "evaluation")  # fmt: skip
    report = json.loads((root / "monitor" / "report.json").read_text())
    assert report["requests"]["rows"] > 0
    assert mon.manifest["kind"] == "monitor"
    return {"types": types, "classes": model.class_names, "metrics": metrics,
            "random_split_drift": random_split_drift}  # fmt: skip


def _jsonable(v):
    if isinstance(v, float) and math.isnan(v):
        return None  # JSON has no NaN: a client sends null
    return v.isoformat() if isinstance(v, dt.date) else v


def _assert_predictions_equal(got: list, want: list, task: str) -> None:
    if task == "regression":
        assert np.allclose(np.asarray(got, dtype=float), np.asarray(want, dtype=float), rtol=1e-5)
    else:
        assert [str(g).lower() for g in got] == [str(w).lower() for w in want]


def _assert_same_rows(written: pl.DataFrame, read: pl.DataFrame, types: dict[str, str]) -> None:
    """Every value read back equals the value written (rows compared in a canonical order)."""
    from mlstage.core.hashing import canonical_text

    def canon(frame: pl.DataFrame) -> list[tuple]:
        out = []
        for r in frame.iter_rows():
            out.append(tuple("\x00" if v is None else canonical_text(v) for v in r))
        return sorted(out)

    cols = [c for c in written.columns if types.get(c) is not None]
    w = written.select(cols)
    # a column read from text with no value at all has no type to recover: compared as text
    r = read.select(cols)
    for c in cols:
        if w[c].dtype != r[c].dtype:
            if w[c].null_count() == w.height:
                w = w.with_columns(pl.col(c).cast(r[c].dtype))
            else:
                raise AssertionError(
                    f"column {c}: wrote {w[c].dtype}, read {r[c].dtype} ({types[c]})"
                )
    assert canon(w) == canon(r)
