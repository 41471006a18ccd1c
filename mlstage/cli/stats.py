"""`mlstage stats`: statistics per split and slice, or a merge of statistics."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import BadInput
from .app import app
from .common import Common, EngineOption, emit_result, stage_command


@stage_command(app, "stats")
def stats_cmd(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="DATASET",
            help="Dataset artifact (with --merge: two or more stats artifacts).",
            show_default=False,
        ),
    ],
    split: Annotated[
        str | None,
        typer.Option("--split", metavar="NAME", help="Only this split (default: every split)."),
    ] = None,
    slice_: Annotated[
        list[str] | None,
        typer.Option(
            "--slice",
            metavar="COLUMN[,COLUMN]",
            help="Also per value of this column (repeatable; several give their cross too; a,b is a cross).",
        ),
    ] = None,
    merge: Annotated[
        bool, typer.Option("--merge", help="Combine statistics of partitions computed apart.")
    ] = False,
    engine: EngineOption = None,
    *,
    common: Common,
) -> None:
    """Statistics per split and slice: counts, missing, quantiles, histograms, value frequencies."""
    from ..stages import stats as mod

    out = common.out_path()
    if merge:
        if split or slice_:
            raise BadInput(
                "--merge takes stats artifacts only; --split and --slice apply when computing"
            )
        result = mod.merge(inputs, out, **common.run_options())
    else:
        if len(inputs) != 1:
            raise BadInput("stats takes one dataset (use --merge to combine stats artifacts)")
        result = mod.stats(
            inputs[0],
            out,
            split=split,
            slices=slice_ or [],
            engine=engine,
            **common.run_options(),
        )
    if result.manifest and not common.quiet and not result.dry_run:
        from .render import stats_table

        stats_table(result.folder / "stats.json")
    emit_result("stats", result, common)
