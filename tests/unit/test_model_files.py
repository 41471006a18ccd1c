"""The estimator file: what a model load trusts, and what it imports.

`estimator_file._skops_io` imports skops without its default trust of every scikit-learn
estimator (listing them imports all of scikit-learn), so TRUSTED alone decides what
loads. These tests hold TRUSTED to the estimators `train` builds, and load every one of
them in a fresh interpreter, where skops is imported that way (in this process another
test may have imported skops with its default first).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

from mlstage.model.estimator_file import TRUSTED, dump_estimator
from mlstage.model.estimators import ESTIMATORS, OPTIONAL


def _installed(module: str) -> bool:
    top = module.split(".")[0]
    if top not in OPTIONAL:
        return True
    try:
        importlib.import_module(top)
    except ImportError:
        return False
    return True


ALLOWED = {name: spec for name, spec in ESTIMATORS.items() if _installed(spec[0])}


def _type_name(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def test_trusted_names_every_metric_a_neighbours_tree_may_hold_but_python_functions():
    import sklearn.metrics._dist_metrics as metrics

    names = {n for n in dir(metrics) if n.endswith("Distance64")}
    assert "EuclideanDistance64" in names  # the module still names its metrics this way
    trusted = {f"sklearn.metrics._dist_metrics.{n}" for n in names - {"PyFuncDistance64"}}
    assert trusted <= set(TRUSTED)
    assert "sklearn.metrics._dist_metrics.PyFuncDistance64" not in TRUSTED


def test_trusted_names_every_estimator_train_builds():
    missing = [
        name
        for name, (module, _) in ALLOWED.items()
        if _type_name(getattr(importlib.import_module(module), name)) not in TRUSTED
    ]
    assert missing == []


# Variants whose files hold other types than the defaults': a ball tree and another
# metric, other SGD losses, a multiclass boosting, an early-stopped network.
VARIANTS = [
    ("KNeighborsClassifier", {"algorithm": "ball_tree", "metric": "manhattan"}),
    ("KNeighborsRegressor", {"metric": "chebyshev"}),
    ("KNeighborsClassifier", {"metric": "canberra"}),
    ("KNeighborsRegressor", {"algorithm": "ball_tree", "metric": "braycurtis"}),
    ("SGDClassifier", {"loss": "log_loss"}),
    ("SGDRegressor", {"loss": "huber"}),
    ("GradientBoostingRegressor", {"loss": "huber", "n_estimators": 5}),
    ("HistGradientBoostingRegressor", {"loss": "poisson", "max_iter": 5}),
    ("MLPClassifier", {"solver": "sgd", "early_stopping": True, "max_iter": 20}),
    ("HistGradientBoostingClassifier", {"categorical_features": [0], "max_iter": 5}),
]


def _fitted(name: str, params: dict, rng):
    module, task = ESTIMATORS[name]
    X = rng.random((90, 3))
    y = (X[:, 0] * 3).astype(int) if task == "classification" else X[:, 1] + 0.1
    if "categorical_features" in params:  # categories are small non-negative integers
        X[:, 0] = np.floor(X[:, 0] * 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = getattr(importlib.import_module(module), name)(**params).fit(X, y)
    return estimator, X


LOADER = """
import json, sys
import numpy as np
from mlstage.model.estimator_file import load_estimator

cases = json.loads(sys.argv[1])
first = True
for path, X, expected in cases:
    estimator = load_estimator(open(path, "rb").read())
    got = np.asarray(estimator.predict(np.asarray(X)), dtype=float)
    assert np.allclose(got, expected), path
    if first:  # a linear model's load imports none of scikit-learn's other families
        loaded = [m for m in ("pytest", "sklearn.utils._testing", "sklearn.neural_network",
                              "sklearn.naive_bayes") if m in sys.modules]
        assert loaded == [], loaded
        first = False
print(len(cases))
"""


def test_a_fresh_process_loads_every_estimator_and_imports_only_what_it_names(tmp_path):
    rng = np.random.default_rng(0)
    cases = []
    plan = [("LogisticRegression", {})] + [(n, {}) for n in ALLOWED if n != "LogisticRegression"]
    for i, (name, params) in enumerate(plan + VARIANTS):
        estimator, X = _fitted(name, params, rng)
        path = tmp_path / f"{i:02d}-{name}.skops"
        path.write_bytes(dump_estimator(estimator))
        cases.append(
            [
                str(path),
                X[:10].tolist(),
                np.asarray(estimator.predict(X[:10]), dtype=float).tolist(),
            ]
        )
    out = subprocess.run(
        [sys.executable, "-c", LOADER, json.dumps(cases)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == str(len(cases))


def test_a_trusted_partial_does_not_let_its_function_through():
    """functools.partial is trusted (a histogram boosting's preprocessor holds one); the
    function it wraps is a type of its own, refused unless TRUSTED names it."""
    import functools
    import os

    from mlstage.model.estimator_file import _skops_io, load_estimator, untrusted_types

    data = _skops_io().dumps(functools.partial(os.system, "echo not run"))
    assert untrusted_types(data) == [f"{os.system.__module__}.system"]
    with pytest.raises(Exception, match="Untrusted types found"):
        load_estimator(data)


def test_a_type_outside_trusted_is_refused_in_a_fresh_process(tmp_path):
    from sklearn.preprocessing import StandardScaler  # an estimator, but not one train builds

    path = tmp_path / "scaler.skops"
    path.write_bytes(dump_estimator(StandardScaler().fit(np.ones((3, 2)))))
    code = (
        "import sys; from mlstage.model.estimator_file import load_estimator\n"
        "try:\n    load_estimator(open(sys.argv[1], 'rb').read())\n"
        "except Exception as e:\n    print(type(e).__name__, e)\nelse:\n    print('loaded')"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Untrusted" in out.stdout and "StandardScaler" in out.stdout, out.stdout
