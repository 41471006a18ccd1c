"""`mlstage report`: a self-contained HTML page of an artifact."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import app


@app.command("report")
def report_cmd(
    artifact: Annotated[
        str,
        typer.Argument(
            metavar="ARTIFACT",
            help="A stats, anomalies, evaluation or monitor artifact.",
            show_default=False,
        ),
    ],
    out: Annotated[
        str,
        typer.Option(
            "-o",
            "--out",
            metavar="FILE.html",
            help="The page to write ('-': stdout).",
            show_default=False,
        ),
    ],
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            metavar="ARTIFACT",
            help="Another stats (or evaluation) artifact to draw beside this one.",
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            metavar="DIR",
            help="The store (default: MLSTAGE_STORE, else .mlstage/ nearby).",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show a traceback on an internal error.")
    ] = False,
) -> None:
    """Write a self-contained HTML page (inline SVG charts, no network) for an artifact."""
    from .common import handle_errors

    with handle_errors(debug):
        from ..report import report
        from .render import stderr_console

        result = report(artifact, None if out == "-" else out, baseline=baseline, store=store)
        if not quiet and result.path is not None:
            stderr_console().print(
                f"report: wrote {result.path} ({result.kind} {result.artifact[:12]}, {result.bytes:,} bytes)",
                markup=False,
            )
