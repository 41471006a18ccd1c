"""The model artifact and the prediction core that `evaluate`, `predict` and `serve` share.

Payload of a model artifact:
    model.skops      the fitted estimator (skops: no pickle), written byte-for-byte
                     reproducibly (see `dump_estimator`)
    transform.json   the fitted feature transform, copied from the features artifact
    signature.json   raw input columns (type, nullable, range, domain), label, classes, task
    metrics.json     training and cross-validation metrics

`Model.load` checks every file's sha256 against the manifest and the scikit-learn
version it was trained with before unpickling anything, and loads the estimator
with skops trusting only the types in TRUSTED (never a list read from the file).

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
from pathlib import Path
from typing import Any

from ..core.artifact import check_files, read_manifest
from ..core.missing import DEFAULT_NULLS
from ..errors import BadInput, CorruptArtifact

ESTIMATOR_FILE = "model.skops"
SIGNATURE_FILE = "signature.json"
METRICS_FILE = "metrics.json"
FLOAT32_MAX = 3.4028234663852886e38
# Every type a model file may hold beyond primitives, numpy and skops' own internal list
# (losses, links, binning). Explicit: skops is imported without its default trust of every
# scikit-learn estimator (see `_skops_io`), so an estimator is trusted only when named here;
# tests hold this list to `estimators.ESTIMATORS` and load each (and variants) in a fresh
# interpreter. Not loadable, as before: HistGradientBoosting with categorical_features
# (its file holds a ColumnTransformer and functools.partial, which stay untrusted).
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


def read_signature(path: Path) -> dict[str, Any]:
    """`signature.json` of a model artifact: raw inputs, label and classes, task."""
    return json.loads((path / SIGNATURE_FILE).read_text())


def write_model_files(folder: Path, transform_doc: dict, signature: dict, metrics: dict) -> None:
    """The model's JSON files beside its estimator (`train` writes the estimator itself)."""
    from ..core.jsonio import dumps_pretty
    from ..features.fitted import write_transform_doc

    write_transform_doc(folder, transform_doc)
    (folder / SIGNATURE_FILE).write_text(dumps_pretty(signature))
    (folder / METRICS_FILE).write_text(dumps_pretty(metrics))


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


class Model:
    """A loaded model artifact: raw rows in, predictions in the label's own values out."""

    def __init__(
        self, path: Path, manifest: dict[str, Any], estimator, transform, signature: dict[str, Any]
    ):
        self.path = path
        self.manifest = manifest
        self.id = manifest["id"]
        self.estimator = estimator
        self.transform = transform
        self.signature = signature
        self.task = signature["task"]
        label = signature["label"]
        self.label = label["column"]
        # Class names as text (booleans true/false), in the estimator's order.
        self.classes: list[str] | None = label.get("classes")
        # A string/bool label was encoded as class indices by featurize (or another label
        # by train, for an estimator that needs classes 0..k-1): decode them.
        encoded = (
            transform.label is not None and transform.label.get("classes") is not None
        ) or bool(label.get("encoded"))
        self._values = [_label_value(c, label["type"]) for c in self.classes] if encoded else None

    @classmethod
    def load(cls, path: str | Path) -> Model:
        from importlib.metadata import version

        path = Path(path)
        manifest = read_manifest(path)
        if manifest["kind"] != "model":
            raise BadInput(
                f"this is a {manifest['kind']} artifact; expected a model", file=str(path)
            )
        problems = check_files(path, manifest)
        if problems:
            raise CorruptArtifact(
                f"refusing to load a model whose files do not match its manifest: {problems[0]}"
            )
        trained = manifest["environment"].get("scikit-learn", "?")
        here = version("scikit-learn")
        if _minor(trained) != _minor(here):
            raise BadInput(
                f"the model was trained with scikit-learn {trained}, this is scikit-learn {here};"
                " a model loads only under the same minor version (retrain it, or install that version)",
                file=str(path),
            )
        from ..features.fitted import FittedTransform, read_transform_doc

        signature = read_signature(path)
        _check_library(path, manifest, signature)
        try:
            estimator = load_estimator((path / ESTIMATOR_FILE).read_bytes())
        except Exception as e:  # skops raises UntrustedTypesFoundException and friends
            raise CorruptArtifact(
                f"{path / ESTIMATOR_FILE}: cannot load the estimator safely: {e}"
            ) from None
        transform = FittedTransform(read_transform_doc(path))
        return cls(path, manifest, estimator, transform, signature)

    # -- prediction ---------------------------------------------------------------------
    def _decode(self, raw) -> list:
        import numpy as np

        if self._values is None:
            return np.asarray(raw).tolist()
        return np.asarray(self._values, dtype=object)[np.asarray(raw, dtype=np.int64)].tolist()

    def predict_matrix(self, X):
        """Predictions (a list of label values) and class probabilities (an array of
        shape rows x classes in `class_names` order; None for regression)."""
        try:
            return self._predict_matrix(X)
        except ValueError:
            import numpy as np

            # Models fitted before missing inputs got a fill value (featurize algorithm 1)
            # pass NaN on to estimators that refuse it: bad input, named, not a crash.
            nan = np.isnan(X).any(axis=0) if X.size else []
            cols = [c for c, bad in zip(self.transform.outputs, nan, strict=True) if bad]
            if cols:
                raise BadInput(
                    f"the model cannot take missing values in {', '.join(cols[:5])}"
                    " (it was trained without any there; retrain to impute them)"
                ) from None
            raise

    def _predict_matrix(self, X):
        import numpy as np

        if self.task == "regression":
            return [float(v) for v in self.estimator.predict(X)], None
        proba = None
        if hasattr(self.estimator, "predict_proba"):
            try:
                proba = self.estimator.predict_proba(X)
            except (AttributeError, NotImplementedError):  # e.g. SVC without probability=True
                proba = None
        if proba is not None:
            # argmax of the probabilities, so a prediction always agrees with them
            raw = self.estimator.classes_[np.argmax(proba, axis=1)]
            return self._decode(raw), proba
        return self._decode(self.estimator.predict(X)), None

    def features(self, frame):
        """The feature matrix (float32, C order) of a polars frame of raw columns."""
        import numpy as np

        from ..core.coltypes import type_name

        # a column of another type (int 0/1 for a bool input) would be read as unseen values
        types = {c: type_name(t) or str(t) for c, t in frame.schema.items()}
        self.transform.check_columns(types, "the data", need_label=False, passthrough=False)
        out = self.transform.apply_lazy(frame.lazy(), with_label=False, passthrough=False).collect()
        return np.ascontiguousarray(out.to_numpy(), dtype=np.float32)

    def predict_frame(self, frame):
        return self.predict_matrix(self.features(frame))

    def coerce(self, row: dict[str, Any], *, absent_ok: bool = False) -> dict[str, Any]:
        """A raw row from JSON with every input converted to its signature type.

        An absent field is bad input unless `absent_ok`; an explicit null is a missing value.
        """
        out = {}
        for col, info in self.signature["inputs"].items():
            if col not in row and not absent_ok:
                raise BadInput(f'field "{col}" is absent (send null for a missing value)')
            out[col] = coerce_value(row.get(col), info["type"], col)
        return out

    def predict_rows(self, rows: list[dict[str, Any]]):
        """The per-row path (serving): values already of their signature types."""
        import numpy as np

        fn = self.transform.row_function()
        X = np.array([fn(r) for r in rows], dtype=np.float32).reshape(
            len(rows), len(self.transform.outputs)
        )
        if np.isinf(X).any():  # a value the transform took past float32 (e.g. a huge log input)
            raise BadInput("a value is too large for the model's features")
        return self.predict_matrix(X)

    @property
    def class_names(self) -> list[str] | None:
        if self.task == "regression":
            return None
        return self.classes or [str(c) for c in self.estimator.classes_]


def _check_library(path: Path, manifest: dict[str, Any], signature: dict[str, Any]) -> None:
    """An optional library the model needs (XGBoost, LightGBM) is installed, at the minor
    version it was trained with; otherwise bad input naming the extra or both versions."""
    import importlib

    from .estimators import OPTIONAL, library, require_library

    name = manifest.get("summary", {}).get("estimator")
    if isinstance(name, str) and library(name) is not None:
        require_library(name)  # absent: "XGBClassifier needs the xgboost library: pip ..."
    lib = signature.get("library")
    if lib and lib.get("name") in OPTIONAL:
        here = importlib.import_module(lib["name"]).__version__
        if _minor(lib["version"]) != _minor(here):
            raise BadInput(
                f"the model was trained with {lib['name']} {lib['version']}, this is"
                f" {lib['name']} {here}; a model loads only under the same minor version"
                " (retrain it, or install that version)",
                file=str(path),
            )


def _label_value(text: str, type_name: str):
    if type_name == "bool":
        return text == "true"
    if type_name == "int":
        return int(text)
    if type_name == "float":
        return float(text)
    return text


def coerce_value(value, type_name: str, field: str):
    """A JSON (or CSV) value as the signature's type; None stays None (a missing value).

    Raises BadInput naming the field when the value cannot be converted.
    """
    import datetime as dt
    import math

    if value is None or (isinstance(value, str) and value.strip() in DEFAULT_NULLS):
        return None  # the markers ingest reads as missing are missing here too
    try:
        if type_name == "float":
            if isinstance(value, bool):
                raise ValueError
            out = float(value)
            if math.isnan(out):
                return None
            if not abs(out) <= FLOAT32_MAX:  # features are float32: a larger value becomes inf
                raise ValueError
            return out
        if type_name == "int":
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            out = int(value)
            if abs(out) > FLOAT32_MAX:
                raise ValueError
            return out
        if type_name == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "false"):
                return text == "true"
            raise ValueError
        if type_name == "string":
            if isinstance(value, dict | list):
                raise ValueError
            from ..core.hashing import canonical_text

            return canonical_text(value)
        if type_name == "date":
            return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
        if type_name == "datetime":
            if isinstance(value, dt.datetime):
                return value
            parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            if parsed.tzinfo is not None:
                parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
            return parsed
    except (ValueError, TypeError, OverflowError):
        pass
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    raise BadInput(f'field "{field}": cannot convert {shown} to {type_name}')
