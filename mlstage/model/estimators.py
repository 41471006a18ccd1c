"""The estimators `train` may build, by scikit-learn class name, and their tuning spaces.

Nothing is ever imported from a name the user wrote: a name is looked up in
ESTIMATORS, whose module paths are written here.
"""

from __future__ import annotations

import importlib
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
}


def estimator_class(name: str, task: str):
    if name not in ESTIMATORS:
        raise BadInput(
            f"at $.estimator: {name!r} is not an allowed estimator; choose from {', '.join(sorted(ESTIMATORS))}"
        )
    module, kind = ESTIMATORS[name]
    if kind != task:
        raise BadInput(f"at $.estimator: {name} is a {kind} estimator, but the task is {task}")
    return getattr(importlib.import_module(module), name)


def build(name: str, task: str, params: dict[str, Any], seed: int):
    """The estimator with its params checked by scikit-learn's own validation."""
    cls = estimator_class(name, task)
    known = cls().get_params()
    for key in params:
        if key not in known:
            raise BadInput(
                f"at $.params.{key}: {name} has no parameter {key!r}; it has: {', '.join(sorted(known))}"
            )
    params = dict(params)
    if "random_state" in known and "random_state" not in params:
        params["random_state"] = seed
    estimator = cls(**params)
    check_params(estimator, "$.params")
    return estimator


def check_params(estimator, where: str) -> None:
    """scikit-learn's parameter validation, as bad input naming the parameter."""
    from sklearn.utils._param_validation import InvalidParameterError

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
