"""mlstage: composable stages from raw data to a served, monitored model.

Every stage is a function here, and a subcommand of the `mlstage` command:

    from mlstage import ingest
    result = ingest(["sample_data/adult.csv"], "data/adult", null=["?"],
                    split={"train": 8, "eval": 2})

Heavy libraries (polars, pyarrow, scikit-learn) load on first use, not on import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import BadInput, CorruptArtifact, MlstageError, NotFound
from .version import __version__

if TYPE_CHECKING:
    from .model.artifact import Model
    from .stages.evaluate import evaluate
    from .stages.featurize import featurize
    from .stages.ingest import ingest
    from .stages.monitor import monitor
    from .stages.predict import predict
    from .stages.schema import schema
    from .stages.spans import append
    from .stages.stats import stats
    from .stages.train import train
    from .stages.validate import validate

__all__ = [
    "__version__",
    "ingest",
    "append",
    "stats",
    "schema",
    "validate",
    "featurize",
    "train",
    "evaluate",
    "predict",
    "monitor",
    "Model",
    "MlstageError",
    "BadInput",
    "NotFound",
    "CorruptArtifact",
]


_STAGES = {
    "ingest": "ingest",
    "append": "spans",
    "stats": "stats",
    "schema": "schema",
    "validate": "validate",
    "featurize": "featurize",
    "train": "train",
    "evaluate": "evaluate",
    "predict": "predict",
    "monitor": "monitor",
}


def __getattr__(name: str):
    if name in _STAGES:
        import importlib

        return getattr(importlib.import_module(f".stages.{_STAGES[name]}", __name__), name)
    if name == "Model":
        from .model.artifact import Model

        return Model
    raise AttributeError(f"module 'mlstage' has no attribute {name!r}")
