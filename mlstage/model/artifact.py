"""The model artifact and the prediction core that `evaluate`, `predict` and `serve` share.

Payload of a model artifact:
    model.skops      the fitted estimator (skops: no pickle), written byte-for-byte
                     reproducibly (see `estimator_file`)
    transform.json   the fitted feature transform, copied from the features artifact
    signature.json   raw input columns (type, nullable, range, domain), label, classes, task
    metrics.json     training and cross-validation metrics

`Model.load` checks every file's sha256 against the manifest and the scikit-learn
version it was trained with before unpickling anything, and loads the estimator
through `estimator_file` (skops, trusting only the types in its TRUSTED).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.artifact import check_files, read_manifest
from ..core.missing import DEFAULT_NULLS
from ..errors import BadInput, CorruptArtifact
from .estimator_file import ESTIMATOR_FILE, load_estimator

SIGNATURE_FILE = "signature.json"
METRICS_FILE = "metrics.json"
FLOAT32_MAX = 3.4028234663852886e38


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
        self.transform.check_values(frame.lazy(), "the data being scored")
        out = self.transform.apply_lazy(frame.lazy(), with_label=False, passthrough=False).collect()
        X = np.ascontiguousarray(out.to_numpy(), dtype=np.float32)
        if np.isinf(X).any():  # ±inf in the data, or a value past float32 (as the row path)
            raise self._too_large(frame, X)
        return X

    def _too_large(self, frame, X) -> BadInput:
        """The first infinite feature, named by its input column and that column's value."""
        import numpy as np

        row, col = (int(i[0]) for i in np.nonzero(np.isinf(X)))
        output = self.transform.outputs[col]
        column = self.transform.input_of(output)
        return BadInput(
            f"value {frame[column][row]!r} makes feature {output!r} infinite or too large for"
            " the model's (float32) features; fix or drop it, or make it missing",
            column=column,
        )

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
            from ..core.coltypes import utc_wall_time

            return utc_wall_time(value)
    except (ValueError, TypeError, OverflowError):
        pass
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    raise BadInput(f'field "{field}": cannot convert {shown} to {type_name}')
