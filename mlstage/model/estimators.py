"""The estimators `train` may build, by scikit-learn class name, and their tuning spaces.

Nothing is ever imported from a name the user wrote: a name is looked up in
ESTIMATORS, whose module paths are written here. XGBoost and LightGBM come through
their scikit-learn interfaces and are optional (the `boost` extra): see OPTIONAL and
BOOST_DEFAULTS.
"""

from __future__ import annotations

import importlib
import re
import sys
import warnings
from typing import Any

from ..errors import BadInput

# name -> (module, task)
ESTIMATORS: dict[str, tuple[str, str]] = {
    "LogisticRegression": ("sklearn.linear_model", "classification"),
    "SGDClassifier": ("sklearn.linear_model", "classification"),
    "RidgeClassifier": ("sklearn.linear_model", "classification"),
    "DecisionTreeClassifier": ("sklearn.tree", "classification"),
    "RandomForestClassifier": ("sklearn.ensemble", "classification"),
    "ExtraTreesClassifier": ("sklearn.ensemble", "classification"),
    "GradientBoostingClassifier": ("sklearn.ensemble", "classification"),
    "HistGradientBoostingClassifier": ("sklearn.ensemble", "classification"),
    "KNeighborsClassifier": ("sklearn.neighbors", "classification"),
    "SVC": ("sklearn.svm", "classification"),
    "LinearSVC": ("sklearn.svm", "classification"),
    "GaussianNB": ("sklearn.naive_bayes", "classification"),
    "BernoulliNB": ("sklearn.naive_bayes", "classification"),
    "MultinomialNB": ("sklearn.naive_bayes", "classification"),
    "MLPClassifier": ("sklearn.neural_network", "classification"),
    "DummyClassifier": ("sklearn.dummy", "classification"),
    "LinearRegression": ("sklearn.linear_model", "regression"),
    "Ridge": ("sklearn.linear_model", "regression"),
    "Lasso": ("sklearn.linear_model", "regression"),
    "ElasticNet": ("sklearn.linear_model", "regression"),
    "SGDRegressor": ("sklearn.linear_model", "regression"),
    "DecisionTreeRegressor": ("sklearn.tree", "regression"),
    "RandomForestRegressor": ("sklearn.ensemble", "regression"),
    "ExtraTreesRegressor": ("sklearn.ensemble", "regression"),
    "GradientBoostingRegressor": ("sklearn.ensemble", "regression"),
    "HistGradientBoostingRegressor": ("sklearn.ensemble", "regression"),
    "KNeighborsRegressor": ("sklearn.neighbors", "regression"),
    "SVR": ("sklearn.svm", "regression"),
    "LinearSVR": ("sklearn.svm", "regression"),
    "MLPRegressor": ("sklearn.neural_network", "regression"),
    "DummyRegressor": ("sklearn.dummy", "regression"),
    # optional: pip install 'mlstage[boost]'
    "XGBClassifier": ("xgboost", "classification"),
    "XGBRegressor": ("xgboost", "regression"),
    "LGBMClassifier": ("lightgbm", "classification"),
    "LGBMRegressor": ("lightgbm", "regression"),
}

# Libraries outside mlstage's own dependencies: module -> the extra that installs it.
OPTIONAL = {"xgboost": "boost", "lightgbm": "boost"}
# Classifiers that need the classes numbered 0..k-1 (train encodes other labels for them).
INDEX_CLASSES = {"XGBClassifier"}
# XGBoost and LightGBM default to every core, and write the thread count into the model
# file (XGBoost's config, LightGBM's parameters). One thread unless the config sets
# `n_jobs`: the same inputs and seed give the same bytes on any machine (the trees do not
# depend on the count, but the file does); tuning runs its trials in parallel on every
# core, and threads inside each trial oversubscribe the cores (LightGBM, 8 trials x 3
# folds on this 2-core machine: 8 s with one thread each, 29 s with two), as does any
# other busy process (OpenMP threads spin: one fit 4 s with one thread, 20 s with two).
BOOST_THREADS = 1
# Defaults set unless the config sets them. LightGBM: silent (its native log would go to
# stdout), and its deterministic mode with the column-wise histogram forced (it otherwise
# picks row- or column-wise by timing both, and the choice may change the model).
BOOST_DEFAULTS: dict[str, dict[str, Any]] = {
    "xgboost": {"n_jobs": BOOST_THREADS},
    "lightgbm": {
        "n_jobs": BOOST_THREADS,
        "verbosity": -1,
        "deterministic": True,
        "force_col_wise": True,
    },
}


def estimator_class(name: str, task: str):
    if name not in ESTIMATORS:
        raise BadInput(
            f"at $.estimator: {name!r} is not an allowed estimator; choose from {', '.join(sorted(ESTIMATORS))}"
        )
    module, kind = ESTIMATORS[name]
    if kind != task:
        raise BadInput(f"at $.estimator: {name} is a {kind} estimator, but the task is {task}")
    return getattr(require_library(name), name)


def library(name: str) -> str | None:
    """The optional library an allowed estimator comes from (None for scikit-learn's)."""
    module = ESTIMATORS.get(name, ("",))[0].split(".")[0]
    return module if module in OPTIONAL else None


def require_library(name: str):
    """The module of an allowed estimator, imported; an optional library that is absent
    (or cannot load) is bad input naming the extra that installs it."""
    module = ESTIMATORS[name][0]
    lib = library(name)
    if lib is None:
        return importlib.import_module(module)
    hint = f"{name} needs the {lib} library: pip install 'mlstage[{OPTIONAL[lib]}]'"
    try:
        found = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if (e.name or lib).split(".")[0] == lib:
            raise BadInput(hint) from None
        raise BadInput(f"{hint} (it is installed but cannot load: {first_line(e)})") from None
    except Exception as e:  # ImportError, OSError; XGBoostError when its shared library fails
        raise BadInput(f"{hint} (it is installed but cannot load: {first_line(e)})") from None
    if lib == "lightgbm":
        found.register_logger(_LightGBMLog())
    return found


class _LightGBMLog:
    """LightGBM's log, which it prints to stdout (where it would break `--json` output):
    its native messages go to stderr (there are none at mlstage's default verbosity, -1,
    but for fatal errors, which are dropped: they reach mlstage as exceptions, with the
    same text), its Python-side warnings become Python warnings, which `train` records."""

    def info(self, msg: str) -> None:
        if "[Fatal]" not in msg:
            sys.stderr.write(msg.rstrip("\n") + "\n")

    def warning(self, msg: str) -> None:
        warnings.warn(msg, UserWarning, stacklevel=2)


def index_classes(name: str, task: str, y):
    """The label's values, sorted, when the estimator needs its classes numbered 0..k-1
    (XGBoost's classifier) and they are not: `train` then fits it on their positions in
    this array, which `signature.json` keeps (`"encoded": true`) to decode predictions.
    A string or bool label is numbered 0..k-1 by featurize already."""
    import numpy as np

    if task != "classification" or name not in INDEX_CLASSES:
        return None
    values = np.unique(y)
    return None if np.array_equal(values, np.arange(values.size)) else values


def fit_errors(name: str) -> tuple[type[BaseException], ...]:
    """The exceptions by which an estimator refuses its data or its params when fitting:
    ValueError for scikit-learn and XGBoost (whose XGBoostError is one), and LightGBM's
    own LightGBMError."""
    if library(name) == "lightgbm":
        from lightgbm.basic import LightGBMError

        return (ValueError, LightGBMError)
    return (ValueError,)


def first_line(e: BaseException) -> str:
    """The first non-empty line of an exception's text (some have none: then its type),
    without the source location XGBoost and LightGBM prefix or append to their messages."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if not lines:
        return type(e).__name__
    xgboost_where = r"^\[\d\d:\d\d:\d\d\] \S+:\d+: "  # "[12:00:00] src/gbm/gbm.cc:24: "
    lightgbm_where = r" at \S+, line \d+ ?\.?$"  # " at src/io/config_auto.cpp, line 352 ."
    return re.sub(lightgbm_where, "", re.sub(xgboost_where, "", lines[0]))


def known_params(name: str, cls) -> set[str]:
    """The parameter names a config may set: the estimator's `get_params()`, and for
    LightGBM also its own parameters by their main names (`max_bin`, `verbosity`,
    `deterministic`, ...), which its scikit-learn interface passes on but does not list."""
    known = set(cls().get_params())
    if library(name) == "lightgbm":
        try:
            from lightgbm.basic import _ConfigAliases

            known |= set(_ConfigAliases._get_all_param_aliases())
        except Exception:  # a private table: without it, at least the ones mlstage sets
            known |= set(BOOST_DEFAULTS["lightgbm"]) | {"force_row_wise"}
    return known


def _boost_defaults(lib: str, params: dict[str, Any]) -> dict[str, Any]:
    """BOOST_DEFAULTS the config leaves unset. LightGBM's `deterministic`,
    `force_col_wise` and `force_row_wise` go together: a config that sets any of them
    gets neither default (both switches at once is an error)."""
    out = {k: v for k, v in BOOST_DEFAULTS[lib].items() if k not in params}
    if lib == "lightgbm" and {"force_col_wise", "force_row_wise", "deterministic"} & set(params):
        out.pop("force_col_wise", None)
        out.pop("deterministic", None)
    return out


def build(name: str, task: str, params: dict[str, Any], seed: int):
    """The estimator with its params checked by scikit-learn's own validation."""
    cls = estimator_class(name, task)
    listed = cls().get_params()
    known = known_params(name, cls)
    for key in params:
        if key not in known:
            more = (
                " and LightGBM's own parameters by their main names"
                if library(name) == "lightgbm"
                else ""
            )
            raise BadInput(
                f"at $.params.{key}: {name} has no parameter {key!r}; it has: {', '.join(sorted(listed))}{more}"
            )
    params = dict(params)
    if "random_state" in listed and "random_state" not in params:
        params["random_state"] = seed
    lib = library(name)
    if lib is not None:
        params = _boost_defaults(lib, params) | params
    estimator = cls(**params)
    check_params(estimator, "$.params")
    return estimator


def check_params(estimator, where: str) -> None:
    """scikit-learn's parameter validation, as bad input naming the parameter.

    XGBoost's and LightGBM's estimators derive from scikit-learn's BaseEstimator but
    declare no constraints (`_parameter_constraints`) for it to check: their names are
    checked against `get_params()` by `build`, and their values by the library when it
    fits (a refusal is bad input with its reason, see train's `_fit`)."""
    from sklearn.utils._param_validation import InvalidParameterError

    if not hasattr(estimator, "_parameter_constraints"):
        return
    try:
        estimator._validate_params()
    except InvalidParameterError as e:
        # "The 'C' parameter of LogisticRegression must be ... Got -1 instead."
        raise BadInput(f"at {where}: {e}") from None


def distributions(space: dict[str, Any], search: str, seed: int) -> dict[str, Any]:
    """Tuning space: a list is a set of choices; uniform, loguniform, int are distributions."""
    from scipy import stats

    out: dict[str, Any] = {}
    for key, value in space.items():
        where = f"at $.tune.space.{key}"
        if isinstance(value, list):
            out[key] = value
            continue
        if search == "grid":
            raise BadInput(f"{where}: grid search takes lists of values, not distributions")
        ((kind, bounds),) = value.items()
        lo, hi = bounds
        if not lo < hi:
            raise BadInput(f"{where}: {kind} needs [low, high] with low < high")
        if kind == "uniform":
            out[key] = stats.uniform(lo, hi - lo)
        elif kind == "loguniform":
            if lo <= 0:
                raise BadInput(f"{where}: loguniform needs a positive low bound")
            out[key] = stats.loguniform(lo, hi)
        else:  # int, inclusive of both bounds
            out[key] = stats.randint(int(lo), int(hi) + 1)
    return out


def one_blas_thread():
    """A context in which BLAS runs on one thread: a dot product split across threads sums
    in another order, so a model (lbfgs' coefficients, its metrics) would depend on the
    machine's core count, and differ between this process and a Dask worker, which runs
    BLAS on one thread (found by the examples' chain on a cluster: another model id).
    Training's parallelism is its trials' (joblib), not BLAS's."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def check_savable(name: str, estimator) -> None:
    """Parameters whose fitted estimator a model file cannot hold, refused before the fit:
    histogram boosting keeps the scorer it stops early by, which skops cannot write."""
    from ..errors import BadInput

    p = estimator.get_params()
    if p.get("scoring") not in (None, "loss") and p.get("early_stopping", False) is not False:
        raise BadInput(
            f"at $.params.scoring: {name} with early stopping keeps its scorer"
            f' {p["scoring"]!r}, which a model file cannot hold; use "loss" (the default)'
            " or set early_stopping to false"
        )
