"""`train`: a scikit-learn estimator on a features artifact, optionally tuned.

The config (mlstage-train/1) names the estimator by class name from an allowed
set (`estimators`), its params (checked by scikit-learn's own validation before
any data is read), a seed passed to every random component, an optional weight
column and optional tuning (grid, random or successive-halving search with
cross-validation, stratified for classification, in parallel). The final model
is refit on the whole training split. The artifact alone is enough to serve.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..core.documents import validate
from ..core.engine import Engine, engine_for
from ..core.jsonio import jsonable
from ..data.splits import splits_of, training_split
from ..errors import BadInput
from ..features.fitted import read_transform_doc
from ..model.artifact import write_model_files
from ..model.training_data import column, labelled
from ..store.refs import load_document, load_input
from ..store.store import Store, store_for
from .base import StagePlan, StageResult, run_stage

ALGORITHM = 3  # 2: rows without a label dropped and counted; 3: BLAS on one thread
# Estimators whose max_iter bounds a solver that stops on convergence (boosting's is its trees).
ITERATIVE_SOLVERS = {
    "LogisticRegression", "LinearSVC", "LinearSVR", "Lasso", "ElasticNet",
    "MLPClassifier", "MLPRegressor", "SGDClassifier", "SGDRegressor",
}  # fmt: skip
SEARCHES = {
    "grid": "GridSearchCV",
    "random": "RandomizedSearchCV",
    "halving": "HalvingRandomSearchCV",
}


def check_estimator(config: Any, where: str) -> None:
    """The estimator, params and search space of a format-valid config, checked by
    scikit-learn (which takes seconds to import: run only when the stage will run)."""
    from ..model.estimators import build, check_savable, distributions, known_params

    try:
        estimator = build(
            config["estimator"], config["task"], config.get("params", {}), config.get("seed", 0)
        )
        check_savable(config["estimator"], estimator)
        tune = config.get("tune")
        if tune:
            from sklearn.metrics import get_scorer_names

            scoring = tune.get("scoring")
            if scoring is not None and scoring not in get_scorer_names():
                raise BadInput(
                    f"at $.tune.scoring: unknown scorer {scoring!r}; see sklearn.metrics.get_scorer_names()"
                )
            space = distributions(
                tune["space"], tune.get("search", "random"), config.get("seed", 0)
            )
            known = known_params(config["estimator"], type(estimator)) | set(estimator.get_params())
            for key in space:
                if key not in known:
                    raise BadInput(
                        f"at $.tune.space.{key}: {config['estimator']} has no parameter {key!r}"
                    )
    except BadInput as e:
        raise BadInput(e.reason, file=where) from None


def train(
    features: str | Path,
    out: str | Path | None,
    *,
    config: str | Path,
    store: str | Path | Store | None = None,
    force: bool = False,
    dry_run: bool = False,
    engine: str | Engine | None = None,
) -> StageResult:
    """Train the estimator CONFIG names on FEATURES' training split (search trials on `engine`)."""
    st = store_for(store, out)
    cfg, cfg_in = load_document(st, str(config), "config", "config.json", "model")
    validate(cfg, "mlstage-train/1", str(config))
    path, manifest, feat_in = load_input(st, str(features), "features", ("features",))
    transform_doc = read_transform_doc(path)
    label = transform_doc.get("label")
    if not label:
        raise BadInput(
            "the features have no label (the spec sets none); train needs one", file=str(features)
        )
    if cfg["task"] == "regression" and label["type"] not in ("int", "float"):
        raise BadInput(
            f'a regression label must be numeric; "{label["column"]}" is {label["type"]}',
            file=str(features),
        )
    weight = cfg.get("weight")
    if weight is not None and weight not in transform_doc.get("passthrough", {}):
        raise BadInput(
            f'at $.weight: "{weight}" is not a passthrough column of the features', file=str(config)
        )
    splits = splits_of(path, manifest)
    fit_name = training_split(splits, str(features))
    data_ids = [i["id"] for i in manifest["inputs"] if i["role"] == "data"]
    plan = StagePlan(
        "train",
        "model",
        ALGORITHM,
        {"config": cfg},
        [feat_in, cfg_in],
        check=lambda: check_estimator(cfg, str(config)),
    )

    def produce(tmp: Path) -> dict[str, Any]:
        import numpy as np

        from ..model.estimator_file import ESTIMATOR_FILE, model_file_bytes
        from ..model.estimators import index_classes, one_blas_thread

        feature_cols = list(transform_doc["outputs"])
        X, y, unlabelled, keep = labelled(splits[fit_name].parts, feature_cols, label["column"])
        if unlabelled:
            sys.stderr.write(
                f"warning: {fit_name} split: {unlabelled} rows without a label"
                f" ({label['column']!r}) left out of training\n"
            )
        if y.size == 0:
            raise BadInput(
                f"no row of the training split has a label ({unlabelled} rows, all missing)",
                file=str(features),
                column=label["column"],
            )
        if cfg["task"] == "classification" and len(set(y.tolist())) < 2:
            raise BadInput(
                f'the label "{label["column"]}" has one class in the training split; a classifier needs two or more',
                file=str(features),
            )
        w = column(splits[fit_name].parts, weight).to_numpy()[keep] if weight else None
        classes = index_classes(cfg["estimator"], cfg["task"], y)
        y_fit = y if classes is None else np.searchsorted(classes, y)
        with engine_for(engine).joblib(), one_blas_thread():  # the refit runs here
            estimator, cv, caught = _fit_quietly(cfg, X, y_fit, w, feature_cols)
        metrics = {
            "format": "mlstage-model-metrics/1",
            "task": cfg["task"],
            "splits": {},
            "cv": cv,
            "warnings": caught,
            "unlabelled_rows": {fit_name: unlabelled},
        }
        metrics["splits"][fit_name] = _metrics(
            cfg["task"], estimator, X, y, sample=True, seed=cfg.get("seed", 0), classes=classes
        )
        del X
        for name, file in splits.items():
            if name != fit_name:
                Xs, ys, metrics["unlabelled_rows"][name], _ = labelled(
                    file.parts, feature_cols, label["column"]
                )
                if ys.size:
                    metrics["splits"][name] = _metrics(
                        cfg["task"], estimator, Xs, ys, classes=classes
                    )
        data = model_file_bytes(estimator, cfg["estimator"], str(config))
        (tmp / ESTIMATOR_FILE).write_bytes(data)
        signature = _signature(st, manifest, transform_doc, cfg["task"], estimator, classes)
        write_model_files(tmp, transform_doc, signature, jsonable(metrics))
        used = {
            k: v
            for k, v in estimator.get_params().items()
            if k in cfg.get("params", {}) or (cv and k in cv["best_params"])
        }
        return jsonable(
            {
                "estimator": cfg["estimator"],
                "task": cfg["task"],
                "params": used,
                "label": label["column"],
                "classes": signature["label"].get("classes"),
                "features": manifest["id"],
                "data": data_ids[0] if data_ids else None,
                "cv_score": cv["best_score"] if cv else None,
                "unlabelled_rows": unlabelled,
                "scoring": cv["scoring"] if cv else None,
                "metrics": metrics["splits"],
            }
        )

    return run_stage(
        plan, produce, Path(out) if out else None, store=st, force=force, dry_run=dry_run
    )


def _fit_quietly(cfg: dict[str, Any], X, y, w, feature_cols: list[str]):
    """Fit, keeping scikit-learn's warnings as a list recorded in metrics.json and said
    once on stderr. Convergence warnings are silenced during the fit (scikit-learn hands
    the warning filters to its CV workers, which would print one per fold) and the
    chosen model's convergence is checked afterwards instead."""
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator, cv = _fit(cfg, X, y, w, feature_cols)
    messages = {f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in seen}
    max_iter = estimator.get_params().get("max_iter")
    n_iter = getattr(estimator, "n_iter_", None)
    if (
        cfg["estimator"] in ITERATIVE_SOLVERS
        and isinstance(max_iter, int)
        and n_iter is not None
        and int(np.max(n_iter)) >= max_iter
    ):
        messages.add(
            f"ConvergenceWarning: {cfg['estimator']} stopped at max_iter={max_iter} before converging"
        )
    for m in sorted(messages):
        sys.stderr.write(f"warning: {m}\n")
    return estimator, cv, sorted(messages)


def _fit(cfg: dict[str, Any], X, y, w, feature_cols: list[str]):
    import numpy as np

    from ..model.estimators import build, first_line, fit_errors

    seed = cfg.get("seed", 0)
    estimator = build(cfg["estimator"], cfg["task"], cfg.get("params", {}), seed)
    fit_params = {"sample_weight": w} if w is not None else {}
    try:
        fitted = _search(cfg, estimator, X, y, fit_params, seed)
        fitted[0].predict(X[:1])  # some refusals come only at prediction (KNN's n_neighbors)
        return fitted
    except fit_errors(cfg["estimator"]) as e:  # the estimator refuses this data or these params
        # the remedy for missing values only when they are what the estimator refused
        # ("Input X contains NaN"): another refusal on such data keeps its own reason
        if "NaN" in str(e) and np.isnan(X).any():
            nan_cols = [
                c for c, bad in zip(feature_cols, np.isnan(X).any(axis=0), strict=True) if bad
            ]
            raise BadInput(
                f"{cfg['estimator']} does not accept missing values, and these features have some"
                f" in the training split: {', '.join(nan_cols[:10])}"
                + (f" and {len(nan_cols) - 10} more" if len(nan_cols) > 10 else "")
                + '; add "impute" to their'
                " entries in the feature spec, or choose an estimator that accepts missing values"
                " (e.g. HistGradientBoostingClassifier/Regressor)"
            ) from None
        raise BadInput(
            f"{cfg['estimator']} cannot be fitted on these features: {first_line(e)}"
        ) from None


def _search(cfg: dict[str, Any], estimator, X, y, fit_params: dict[str, Any], seed: int):
    from ..model.estimators import distributions

    tune = cfg.get("tune")
    if not tune:
        return estimator.fit(X, y, **fit_params), None
    from sklearn import model_selection
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401  (makes Halving* importable)

    search = tune.get("search", "random")
    folds = tune.get("cv", 5)
    splitter = (
        model_selection.StratifiedKFold
        if cfg["task"] == "classification"
        else model_selection.KFold
    )(n_splits=folds, shuffle=True, random_state=seed)
    space = distributions(tune["space"], search, seed)
    scoring = tune.get("scoring") or (
        "accuracy" if cfg["task"] == "classification" else "neg_root_mean_squared_error"
    )
    common = {"cv": splitter, "scoring": scoring, "n_jobs": tune.get("n_jobs", -1), "refit": True}
    cls = getattr(model_selection, SEARCHES[search])
    if search == "grid":
        searcher = cls(estimator, space, **common)
    elif search == "random":
        searcher = cls(estimator, space, n_iter=tune.get("n_iter", 10), random_state=seed, **common)
    else:
        common.pop("refit")
        searcher = cls(estimator, space, random_state=seed, refit=True, **common)
    from ..core.progress import task

    # trials run in joblib's worker processes, which cannot report back: a spinner
    with task(f"train: {search} search, {folds}-fold"):
        searcher.fit(X, y, **fit_params)
    res = searcher.cv_results_
    trials = [
        {
            "params": jsonable({k: _plain(v) for k, v in p.items()}),
            "mean": float(m),
            "std": float(s),
            "rank": int(r),
        }
        for p, m, s, r in zip(
            res["params"],
            res["mean_test_score"],
            res["std_test_score"],
            res["rank_test_score"],
            strict=True,
        )
    ]
    if "iter" in res:  # successive halving: each round's candidates, on growing resources
        for trial, round_, used in zip(trials, res["iter"], res["n_resources"], strict=True):
            trial["round"], trial["samples"] = int(round_), int(used)
    best = searcher.best_index_
    cv = {
        "search": search,
        "folds": folds,
        "scoring": scoring,
        "best_params": {k: _plain(v) for k, v in searcher.best_params_.items()},
        "best_score": float(res["mean_test_score"][best]),
        "best_score_std": float(res["std_test_score"][best]),
        "trials": trials,
    }
    return searcher.best_estimator_, cv


def _plain(v):
    return v.item() if hasattr(v, "item") else v


METRIC_ROWS = 200_000  # training-split metrics on at most this many rows (a seeded sample)


def _metrics(
    task: str, estimator, X, y, *, sample: bool = False, seed: int = 0, classes=None
) -> dict[str, float]:
    """Quick metrics for the record (scikit-learn's functions); `evaluate` goes deeper.

    One prediction pass: class predictions are the argmax of the probabilities. On the
    training split, a sample bounds the cost (training metrics only flag over-fitting).
    `classes`: the label's values for the estimator's classes 0..k-1 (`index_classes`).
    """
    import numpy as np
    from sklearn import metrics as m

    if sample and len(y) > METRIC_ROWS:
        idx = np.sort(np.random.default_rng(seed).choice(len(y), METRIC_ROWS, replace=False))
        X, y = X[idx], y[idx]
    if task == "regression":
        pred = estimator.predict(X)
        return {
            "mae": float(m.mean_absolute_error(y, pred)),
            "rmse": float(np.sqrt(m.mean_squared_error(y, pred))),
            "r2": float(m.r2_score(y, pred)),
        }
    proba = None
    if hasattr(estimator, "predict_proba"):
        try:
            proba = estimator.predict_proba(X)
        except (AttributeError, NotImplementedError):
            proba = None
    labels = estimator.classes_ if classes is None else classes
    if proba is not None:
        pred = labels[np.argmax(proba, axis=1)]
    else:
        pred = estimator.predict(X)
        pred = pred if classes is None else classes[np.asarray(pred, dtype=np.int64)]
    out = {
        "accuracy": float(m.accuracy_score(y, pred)),
        "balanced_accuracy": float(m.balanced_accuracy_score(y, pred)),
        "f1_macro": float(m.f1_score(y, pred, average="macro")),
    }
    if proba is not None and len(labels) == 2 and len(np.unique(y)) == 2:
        out["roc_auc"] = float(m.roc_auc_score(y, proba[:, 1]))
        out["log_loss"] = float(m.log_loss(y, proba, labels=labels))
    return out


def _signature(
    st: Store, features_manifest, transform_doc, task: str, estimator, index_classes=None
) -> dict[str, Any]:
    """Raw inputs with type, nullability, range and domain as seen in training; the
    label; the optional library (name, version) the estimator needs, if any."""
    import polars as pl

    from ..core.hashing import canonical_text
    from ..model.estimators import OPTIONAL

    label = transform_doc["label"]
    inputs = dict(transform_doc["inputs"])
    profile: dict[str, dict[str, Any]] = {c: {"type": t} for c, t in inputs.items()}
    data = next((i for i in features_manifest["inputs"] if i["role"] == "data"), None)
    dataset = st.manifest(data["id"]) if data else None
    if dataset is not None:
        fit_split = features_manifest["summary"].get("fit_split") or "train"
        from ..data.splits import splits_of

        fit = splits_of(st.object_dir(dataset["id"]), dataset).get(fit_split)
        if fit is not None and all(p.exists() for p in fit.parts):
            frame = pl.read_parquet(fit.parts, columns=list(inputs))
            for col, t in inputs.items():
                s = frame[col]
                info = profile[col]
                info["nullable"] = bool(s.null_count() > 0 or (t == "float" and s.is_nan().any()))
                present = s.drop_nulls()
                if t in ("int", "float", "date", "datetime") and present.len():
                    lo, hi = present.min(), present.max()
                    info["min"], info["max"] = (
                        (lo.isoformat(), hi.isoformat()) if t in ("date", "datetime") else (lo, hi)
                    )
                if t in ("string", "bool"):
                    values = sorted({canonical_text(v) for v in present.unique().to_list()})
                    if len(values) <= 1000:
                        info["domain"] = values
    classes = None
    if task == "classification":
        values = estimator.classes_ if index_classes is None else index_classes
        classes = label["classes"] or [canonical_text(_plain(c)) for c in values]
    signature: dict[str, Any] = {
        "format": "mlstage-signature/1",
        "task": task,
        "inputs": profile,
        "label": {"column": label["column"], "type": label["type"], "classes": classes},
        "features": len(transform_doc["outputs"]),
    }
    if index_classes is not None:
        signature["label"]["encoded"] = True
    lib = type(estimator).__module__.split(".")[0]
    if lib in OPTIONAL:
        signature["library"] = {"name": lib, "version": sys.modules[lib].__version__}
    return jsonable(signature)
