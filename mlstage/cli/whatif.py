"""`mlstage whatif`: how one example's prediction changes with one input."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import app
from .common import StoreCommon, store_command


@store_command(app, "whatif")
def whatif_cmd(
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL", help="Model artifact (or REGISTRY/NAME).", show_default=False
        ),
    ],
    row: Annotated[
        str,
        typer.Option(
            "--row",
            metavar="JSON",
            help="The example: a JSON object, or @file.json.",
            show_default=False,
        ),
    ],
    vary: Annotated[
        list[str] | None,
        typer.Option(
            "--vary",
            metavar="COLUMN[=V1,V2,...]",
            help="Vary this input (default values: a grid over the training range, or the domain). Repeatable; none: every input.",
        ),
    ] = None,
    *,
    common: StoreCommon,
) -> None:
    """How one example's prediction changes as one of its inputs changes (--json: an array, one object per varied column)."""
    from ..model.whatif import whatif_model
    from .render import print_json, print_table

    results, class_names = whatif_model(model, row, vary, store=common.store)
    if common.json:
        print_json(results)
        return
    for r in results:
        classes = class_names or []
        rows = [
            [
                x["value"],
                x["prediction"],
                *(f"{x['probabilities'][c]:.3f}" for c in classes if x["probabilities"]),
            ]
            for x in r["rows"]
        ]
        cols = [
            "value",
            "prediction",
            *(f"P({c})" for c in classes if r["rows"] and r["rows"][0]["probabilities"]),
        ]
        print_table(cols, rows, title=f"varying {r['column']}")
