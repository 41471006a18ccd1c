"""A model's estimator file, `model.skops`: what it may hold, how it is read and written.

The estimator is written with skops (no pickle) and read trusting only the types in
TRUSTED, never a list read from the file. `dump_estimator` makes the bytes reproducible:
the same estimator gives the same file.

XGBoost and LightGBM models go through skops too, as skops supports them: their
scikit-learn wrappers are plain objects, and each wrapper's Booster is kept as the
library's own model format inside `model.skops` (XGBoost's binary JSON, UBJSON, of
model and config, stored as a bytearray; LightGBM's text model, stored as a string),
which the library's own parser reads back when skops restores the Booster (its
`__setstate__`); no pickle anywhere. The alternative, the model files beside
`model.skops` rebuilt through the wrappers by hand, would copy the wrappers' private
attributes into mlstage. XGBoost does not promise that this snapshot loads under another
version, so such a model, like scikit-learn's, loads only under the minor version of
its library it was trained with (`signature.json` records it).
"""

from __future__ import annotations

import io
import json
import threading
import zipfile

ESTIMATOR_FILE = "model.skops"

# Every type a model file may hold beyond primitives, numpy and skops' own internal list
# (losses, links, binning). Explicit: skops is imported without its default trust of every
# scikit-learn estimator (see `_skops_io`), so an estimator is trusted only when named here;
# tests hold this list to `estimators.ESTIMATORS` and load each (and variants) in a fresh
# interpreter. A function a file names (inside a functools.partial or a
# FunctionTransformer) is a type of its own, trusted only when named here: trusting
# partial does not let `partial(os.system, ...)` load (tested). `train` refuses to write
# a file holding anything else (`untrusted_types`).
TRUSTED = [
    # the estimators `train` builds (model.estimators.ESTIMATORS)
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.linear_model._stochastic_gradient.SGDClassifier",
    "sklearn.linear_model._stochastic_gradient.SGDRegressor",
    "sklearn.linear_model._ridge.RidgeClassifier",
    "sklearn.linear_model._ridge.Ridge",
    "sklearn.linear_model._base.LinearRegression",
    "sklearn.linear_model._coordinate_descent.Lasso",
    "sklearn.linear_model._coordinate_descent.ElasticNet",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.ensemble._forest.ExtraTreesRegressor",
    "sklearn.ensemble._gb.GradientBoostingClassifier",
    "sklearn.ensemble._gb.GradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
    "sklearn.neighbors._classification.KNeighborsClassifier",
    "sklearn.neighbors._regression.KNeighborsRegressor",
    "sklearn.svm._classes.SVC",
    "sklearn.svm._classes.SVR",
    "sklearn.svm._classes.LinearSVC",
    "sklearn.svm._classes.LinearSVR",
    "sklearn.naive_bayes.GaussianNB",
    "sklearn.naive_bayes.BernoulliNB",
    "sklearn.naive_bayes.MultinomialNB",
    "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
    "sklearn.neural_network._multilayer_perceptron.MLPRegressor",
    "sklearn.dummy.DummyClassifier",
    "sklearn.dummy.DummyRegressor",
    # estimators inside them: a forest's trees, label encoders, a boosting's initial model
    "sklearn.tree._classes.ExtraTreeClassifier",
    "sklearn.tree._classes.ExtraTreeRegressor",
    "sklearn.preprocessing._label.LabelBinarizer",
    "sklearn.preprocessing._label.LabelEncoder",
    # their fitted parts
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    # a neighbours tree's metric: every one scikit-learn has but PyFuncDistance64 (which
    # holds a Python function); a model with metric="canberra" trained but never loaded
    "sklearn.metrics._dist_metrics.BrayCurtisDistance64",
    "sklearn.metrics._dist_metrics.CanberraDistance64",
    "sklearn.metrics._dist_metrics.ChebyshevDistance64",
    "sklearn.metrics._dist_metrics.DiceDistance64",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.HammingDistance64",
    "sklearn.metrics._dist_metrics.HaversineDistance64",
    "sklearn.metrics._dist_metrics.JaccardDistance64",
    "sklearn.metrics._dist_metrics.KulsinskiDistance64",
    "sklearn.metrics._dist_metrics.MahalanobisDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance64",
    "sklearn.metrics._dist_metrics.MatchingDistance64",
    "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    "sklearn.metrics._dist_metrics.RogersTanimotoDistance64",
    "sklearn.metrics._dist_metrics.RussellRaoDistance64",
    "sklearn.metrics._dist_metrics.SEuclideanDistance64",
    "sklearn.metrics._dist_metrics.SokalMichenerDistance64",
    "sklearn.metrics._dist_metrics.SokalSneathDistance64",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    # HistGradientBoosting's categorical_features: its preprocessor, an ordinal encoder
    # in a column transformer, the rest passed through check_array (by name)
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.preprocessing._encoders.OrdinalEncoder",
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "functools.partial",
    "sklearn.utils.validation.check_array",
    # XGBoost (the boost extra): the wrappers, and the Booster, whose state is its model
    # as the bytes of XGBoost's own format (restored by XGBoost's parser)
    "xgboost.sklearn.XGBClassifier",
    "xgboost.sklearn.XGBRegressor",
    "xgboost.core.Booster",
    "builtins.bytearray",
    # LightGBM (the boost extra): the wrappers, the Booster, whose state is its text
    # model (restored by LightGBM's parser), and the wrapper's record of best scores
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.sklearn.LGBMRegressor",
    "lightgbm.basic.Booster",
    "collections.OrderedDict",
]
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_SKOPS_IMPORT = threading.Lock()


def _skops_io():
    """`skops.io`, imported without listing every estimator scikit-learn has.

    On import, skops makes every scikit-learn estimator trusted by default, and to list
    them calls `sklearn.utils.all_estimators()`, which imports all of scikit-learn (and
    pytest, and dask's array API shim): ~0.3 s of a model's load here, seconds on a cold
    disk. mlstage never relies on that default (it names what it trusts, TRUSTED), so the
    list is made empty for that import: loading a model then imports only the modules
    its file names. Should skops already be imported, its default stands (the same
    types and more), and nothing else changes."""
    import sys

    with _SKOPS_IMPORT:  # two threads must not each save the other's stand-in
        if "skops.io" not in sys.modules:
            import sklearn.utils

            listing = sklearn.utils.all_estimators
            sklearn.utils.all_estimators = lambda *args, **kwargs: []
            try:
                import skops.io
            finally:
                sklearn.utils.all_estimators = listing
    import skops.io

    return skops.io


def load_estimator(data: bytes):
    """The estimator of a `model.skops` file's bytes, trusting only TRUSTED (and skops'
    own internal types); skops' exceptions pass through."""
    return _skops_io().loads(data, trusted=TRUSTED)


def untrusted_types(data: bytes) -> list[str]:
    """The types a `model.skops` file's bytes hold that loading it would refuse."""
    return [t for t in _skops_io().get_untrusted_types(data=data) if t not in TRUSTED]


def model_file_bytes(estimator, name: str, where: str) -> bytes:
    """`dump_estimator`, refusing (bad input) a model that could not be written or would not
    load: one that trains but fails at every `predict` is refused when it trains."""
    from ..errors import BadInput

    try:
        data = dump_estimator(estimator)
    except RecursionError:  # skops recursing through an object it cannot write
        raise BadInput(
            f"{name} with these parameters holds an object skops cannot write into a model"
            " file; change the parameters that bring it in",
            file=where,
        ) from None
    refused = untrusted_types(data)
    if refused:
        raise BadInput(
            f"{name} with these parameters holds types mlstage does not load"
            f" ({', '.join(refused)}); change the parameters that bring them in",
            file=where,
        )
    return data


def dump_estimator(estimator) -> bytes:
    """skops bytes made reproducible: the same estimator gives the same bytes.

    skops names objects by Python `id()` (in `__id__` and in the `.npy` file
    names), names a bytes or bytearray file (XGBoost's Booster) by a random uuid,
    and stamps zip entries with the time; ids and files are renumbered in order of
    appearance and entries written sorted, with a fixed time.
    """
    raw = zipfile.ZipFile(io.BytesIO(_skops_io().dumps(estimator)))
    schema = json.loads(raw.read("schema.json"))
    renumber: dict[int | str, int] = {}
    files: dict[str, str] = {}  # skops' file name -> ours

    def walk(node):
        if isinstance(node, dict):
            if "__id__" in node:
                node["__id__"] = renumber.setdefault(node["__id__"], len(renumber) + 1)
            file = node.get("file")
            if isinstance(file, str) and file.endswith(".npy"):
                old = int(file[: -len(".npy")])
                node["file"] = files[file] = f"{renumber.setdefault(old, len(renumber) + 1)}.npy"
            elif isinstance(file, str) and file.endswith(".bin"):
                node["file"] = files[file] = f"{renumber.setdefault(file, len(renumber) + 1)}.bin"
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    entries = {"schema.json": json.dumps(schema, indent=2).encode()}
    for name in raw.namelist():
        if name != "schema.json":
            if name not in files:  # a kind of file skops did not write before: not dropped
                raise RuntimeError(f"skops wrote {name}, which its schema does not name")
            entries[files[name]] = raw.read(name)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, entries[name], compresslevel=6)
    return out.getvalue()
