"""`mlstage predict`: batch predictions with the server's prediction core."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import app
from .common import Common, EngineOption, emit_result, stage_command
from .render import table_to_stdout


@stage_command(app, "predict")
def predict_cmd(
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL|REGISTRY/NAME",
            help="Model artifact, or a registry model (the version it serves).",
            show_default=False,
        ),
    ],
    dataset: Annotated[
        str, typer.Argument(metavar="DATASET", help="Dataset artifact.", show_default=False)
    ],
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            metavar="NAME",
            help="Only this split (default: every split, with a split column).",
        ),
    ] = None,
    keep: Annotated[
        list[str] | None,
        typer.Option(
            "--keep", metavar="COLUMN", help="Copy this input column to the output (repeatable)."
        ),
    ] = None,
    engine: EngineOption = None,
    *,
    common: Common,
) -> None:
    """Batch predictions (prediction, proba_<class>) with the same code as the server."""
    from ..stages.predict import predict

    out = common.out_path(allow_stdout=True)
    result = predict(
        model,
        dataset,
        out,
        split=split,
        keep=keep or [],
        engine=engine,
        **common.run_options(),
    )
    if out is None and result.manifest is not None:
        table_to_stdout([result.folder / "predictions.parquet"])
        common = Common(**{**common.__dict__, "json": False})
    emit_result("predict", result, common)
