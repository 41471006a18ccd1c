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
    from .stages.ingest import ingest

__all__ = ["__version__", "ingest", "MlstageError", "BadInput", "NotFound", "CorruptArtifact"]


def __getattr__(name: str):
    if name == "ingest":
        from .stages.ingest import ingest

        return ingest
    raise AttributeError(f"module 'mlstage' has no attribute {name!r}")
