"""`mlstage validate`: a dataset against a schema and a baseline."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import app
from .common import Common, EngineOption, emit_result, stage_command


@stage_command(app, "validate")
def validate_cmd(
    dataset: Annotated[
        str,
        typer.Argument(metavar="DATASET", help="Dataset artifact to check.", show_default=False),
    ],
    schema: Annotated[
        str,
        typer.Option(
            "--schema",
            metavar="SCHEMA",
            help="Schema: a schema artifact, or a JSON/TOML file.",
            show_default=False,
        ),
    ],
    split: Annotated[
        str | None,
        typer.Option("--split", metavar="NAME", help="Only this split (default: every split)."),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            metavar="STATS|DATASET",
            help="Check drift/skew against this baseline's train split.",
        ),
    ] = None,
    environment: Annotated[
        str,
        typer.Option(
            "--environment",
            metavar="ENV",
            help="training|serving (serving: the label may be absent).",
        ),
    ] = "training",
    engine: EngineOption = None,
    *,
    common: Common,
) -> None:
    """Check a dataset against a schema, and for drift against a baseline; exit 1 on an error."""
    from ..stages.validate import validate

    result = validate(
        dataset,
        common.out_path(),
        schema=schema,
        split=split,
        baseline=baseline,
        environment=environment,
        engine=engine,
        **common.run_options(),
    )
    if result.manifest and not common.quiet and not result.dry_run:
        from ..validation.checks import ANOMALIES
        from .render import anomalies_table

        anomalies_table(result.folder / ANOMALIES)
    emit_result("validate", result, common)
