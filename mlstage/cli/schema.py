"""`mlstage schema`: infer an editable schema, or widen one."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import app
from .common import Common, emit_result, stage_command


@stage_command(app, "schema")
def schema_cmd(
    source: Annotated[
        str,
        typer.Argument(
            metavar="DATASET|STATS",
            help="Dataset or stats artifact (its train split is used).",
            show_default=False,
        ),
    ],
    label: Annotated[
        str | None,
        typer.Option(
            "--label",
            metavar="COLUMN",
            help="The label: expected only in the training environment.",
        ),
    ] = None,
    infer_ranges: Annotated[
        bool,
        typer.Option("--infer-ranges", help="Also record each numeric/date column's min and max."),
    ] = False,
    update: Annotated[
        str | None,
        typer.Option(
            "--update",
            metavar="SCHEMA",
            help="Widen this schema (file or artifact) to accept the data.",
        ),
    ] = None,
    *,
    common: Common,
) -> None:
    """Infer an editable schema from training statistics, or widen one (--update)."""
    from ..stages.schema import schema

    result = schema(
        source,
        common.out_path(),
        label=label,
        infer_ranges=infer_ranges,
        update=update,
        **common.run_options(),
    )
    if result.manifest and not common.quiet and not result.dry_run and update is not None:
        from .render import stderr_console

        changes = result.manifest["summary"].get("changes", [])
        console = stderr_console()
        console.print(f"schema: {len(changes)} changes" + (":" if changes else ""), markup=False)
        for change in changes:
            console.print(f"  {change}", markup=False)
    emit_result("schema", result, common)
