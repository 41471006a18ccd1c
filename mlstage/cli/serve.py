"""`mlstage serve`: the HTTP model server over a registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .app import app


@app.command("serve")
def serve_cmd(
    registry: Annotated[
        Path,
        typer.Option(
            "--registry",
            metavar="REGISTRY",
            help="Registry directory to serve.",
            show_default=False,
        ),
    ] = Path("registry"),
    host: Annotated[
        str, typer.Option("--host", metavar="HOST", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", metavar="PORT", help="Port to listen on.")] = 8501,
    workers: Annotated[int, typer.Option("--workers", metavar="N", help="Worker processes.")] = 1,
    log_dir: Annotated[
        Path | None,
        typer.Option(
            "--log-dir",
            metavar="DIR",
            help="Append requests and predictions to Parquet files here.",
        ),
    ] = None,
    log_exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--log-exclude", metavar="COLUMN", help="Keep this column out of the logs (repeatable)."
        ),
    ] = None,
    log_sample: Annotated[
        float,
        typer.Option("--log-sample", metavar="FRACTION", help="Log this fraction of requests."),
    ] = 1.0,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show a traceback on internal errors.")
    ] = False,
) -> None:
    """Serve every model in the registry over HTTP (TF Serving's REST API and MLflow's /invocations)."""
    from .common import handle_errors

    with handle_errors(debug):
        from ..serving.server import run

        run(
            registry,
            host=host,
            port=port,
            workers=workers,
            log_dir=log_dir,
            log_exclude=log_exclude or [],
            log_sample=log_sample,
        )
