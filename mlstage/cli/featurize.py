"""`mlstage featurize`: fit a feature spec and apply it to every split."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import app
from .common import Common, EngineOption, emit_result, stage_command


@stage_command(app, "featurize")
def featurize_cmd(
    dataset: Annotated[
        str, typer.Argument(metavar="DATASET", help="Dataset artifact.", show_default=False)
    ],
    spec: Annotated[
        str | None,
        typer.Option(
            "--spec",
            metavar="SPEC",
            help="Feature spec (JSON/TOML) to fit on the training split and apply.",
        ),
    ] = None,
    transform: Annotated[
        str | None,
        typer.Option(
            "--transform",
            metavar="FEATURES|MODEL",
            help="Apply the transform fitted in this features or model artifact.",
        ),
    ] = None,
    fit_split: Annotated[
        str | None,
        typer.Option(
            "--fit-split",
            metavar="NAME",
            help="Split to fit on (default: train, else the only split).",
        ),
    ] = None,
    engine: EngineOption = None,
    *,
    common: Common,
) -> None:
    """Fit a declarative feature spec on the training split and apply it to every split."""
    from ..stages.featurize import featurize

    result = featurize(
        dataset,
        common.out_path(),
        spec=spec,
        transform=transform,
        fit_split=fit_split,
        engine=engine,
        **common.run_options(),
    )
    emit_result("featurize", result, common)
