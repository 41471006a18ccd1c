"""Every command, registered on the typer application (`app`)."""

from __future__ import annotations

# Each module registers its command on `app`; `--help` lists them in this order.
# isort: off
from . import ingest, stats, schema, validate, featurize, train, evaluate  # noqa: F401
from . import predict, whatif, deploy, serve, monitor, report, store_cmds  # noqa: F401

# isort: on
from .app import app

__all__ = ["app"]
