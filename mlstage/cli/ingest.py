"""`mlstage ingest`: raw files to a typed, split Parquet dataset."""

from __future__ import annotations

from typing import Annotated

import typer

from ..data.splits import DEFAULT_PARTITION_ROWS
from ..errors import BadInput
from .app import app
from .common import Common, EngineOption, emit_result, stage_command
from .render import table_to_stdout


@stage_command(app, "ingest")
def ingest_cmd(
    sources: Annotated[
        list[str],
        typer.Argument(
            metavar="SOURCE",
            help="Files, globs, directories, or '-' for stdin.",
            show_default=False,
        ),
    ],
    format: Annotated[
        str, typer.Option("--format", metavar="FORMAT", help="auto|csv|tsv|parquet|json|jsonl|ipc")
    ] = "auto",
    null: Annotated[
        list[str] | None,
        typer.Option(
            "--null",
            metavar="VALUE",
            help="Another missing-value marker (repeatable), e.g. --null '?'.",
        ),
    ] = None,
    type_: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            metavar="COLUMN=TYPE",
            help="COLUMN=TYPE (int|float|bool|string|date|datetime), repeatable.",
        ),
    ] = None,
    split: Annotated[
        list[str] | None,
        typer.Option(
            "--split",
            metavar="NAME=WEIGHT",
            help="NAME=WEIGHT, repeatable: --split train=8 --split eval=2.",
        ),
    ] = None,
    split_key: Annotated[
        list[str] | None,
        typer.Option(
            "--split-key",
            metavar="COLUMN",
            help="Split by the text hash of the seed and this column (repeatable).",
        ),
    ] = None,
    split_order: Annotated[
        str | None,
        typer.Option(
            "--split-order",
            metavar="COLUMN",
            help="Split by time: oldest rows of this column to the first split.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Seed of the hash split.")] = 0,
    infer_rows: Annotated[
        int, typer.Option("--infer-rows", metavar="N", help="Rows read to infer column types.")
    ] = 10_000,
    partition_rows: Annotated[
        int,
        typer.Option(
            "--partition-rows",
            metavar="N",
            help="Rows per file: a split of more rows is written as NAME.part-00000.parquet, ...",
        ),
    ] = DEFAULT_PARTITION_ROWS,
    append: Annotated[
        str | None,
        typer.Option(
            "--append",
            metavar="DATASET",
            help="Add SOURCES to DATASET as a new span: a new version sharing its partitions,"
            " read with its types, splits and seed.",
        ),
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(
            "--window",
            metavar="N|Nd",
            help="With --append: keep the newest N spans (the new one included), or with"
            " Nd (Nw) the spans dated within N days (weeks) of the newest, each span's date"
            " read from its files' names (incoming/2026-12-01.csv).",
        ),
    ] = None,
    engine: EngineOption = None,
    *,
    common: Common,
) -> None:
    """Read raw files into a typed, versioned Parquet dataset, optionally split."""
    from ..stages.ingest import ingest
    from ..stages.spans import append as append_span

    if append is not None:
        # a span is read exactly as the dataset it extends: no reading option of its own
        own = {"--format": format != "auto", "--null": bool(null), "--type": bool(type_),
               "--split": bool(split), "--split-key": bool(split_key),
               "--split-order": split_order is not None, "--seed": seed != 0,
               "--infer-rows": infer_rows != 10_000,
               "--partition-rows": partition_rows != DEFAULT_PARTITION_ROWS}  # fmt: skip
        given = [name for name, set_ in own.items() if set_]
        if given:
            raise BadInput(
                f"--append reads the new sources as DATASET was read; {given[0]} cannot be"
                " given with it"
            )
        out = common.out_path(allow_stdout=False)
        result = append_span(
            sources, append, out, window=window, engine=engine, **common.run_options()
        )
        emit_result("ingest", result, common)
        return
    if window is not None:
        raise BadInput("--window N keeps the newest spans of an --append; give --append DATASET")
    out = common.out_path(allow_stdout=not split)
    result = ingest(
        sources,
        out,
        format=format,
        null=null or [],
        types=type_ or [],
        split=split or [],
        split_key=split_key or [],
        split_order=split_order,
        seed=seed,
        infer_rows=infer_rows,
        partition_rows=partition_rows,
        engine=engine,
        **common.run_options(),
    )
    if out is None and result.manifest is not None:
        from ..data.splits import splits_of

        table_to_stdout(splits_of(result.path, result.manifest)["data"].parts)
        common = Common(**{**common.__dict__, "json": False})  # stdout holds the payload
    emit_result("ingest", result, common)
