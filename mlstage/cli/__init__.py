"""The `mlstage` command: a thin layer over the library.

Commands parse options, call one library function, render the result and map
errors to exit codes (see `common`). Nothing here imports polars, pyarrow or
scikit-learn at module level, so `--help` and up-to-date runs stay fast.
"""

from __future__ import annotations

# Each module registers its command on `app`; `--help` lists them in this order.
# isort: off
from . import ingest, stats, schema, validate, featurize, train, evaluate  # noqa: F401
from . import predict, whatif, deploy, serve, monitor, report, store_cmds  # noqa: F401

# isort: on
from .app import app, main

__all__ = ["app", "main"]
