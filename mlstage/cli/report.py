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
            help="A stats, anomalies, evaluation or monitor artifact; with --card, a model or REGISTRY/NAME.",
            show_default=False,
        ),
    ],
    out: Annotated[
        str,
        typer.Option(
            "-o",
            "--out",
            metavar="FILE.html",
            help="The page to write ('-': stdout); with --card, FILE.json writes the card as JSON.",
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
    card: Annotated[
        bool,
        typer.Option(
            "--card",
            help="A model card of MODEL or REGISTRY/NAME: lineage, data, features, training,"
            " evaluation, gates, deployments.",
        ),
    ] = False,
    card_info: Annotated[
        str | None,
        typer.Option(
            "--card-info",
            metavar="FILE",
            help="With --card: owner, intended use, limitations... (YAML, JSON or TOML).",
        ),
    ] = None,
    evaluation: Annotated[
        str | None,
        typer.Option(
            "--evaluation",
            metavar="EVALUATION",
            help="With --card: the evaluation to show (default: the newest of the model).",
        ),
    ] = None,
    registry: Annotated[
        str | None,
        typer.Option(
            "--registry",
            metavar="REGISTRY",
            help="With --card and a MODEL: where to look for its deployments.",
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="With --card: the card as JSON (also when -o ends in .json)."),
    ] = False,
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
    """Write a self-contained HTML page (inline SVG charts, no network) for an artifact, or a model card (--card)."""
    from .common import handle_errors

    with handle_errors(debug):
        from ..errors import BadInput
        from ..report import card as make_card
        from ..report import report
        from .render import stderr_console

        target = None if out == "-" else out
        if card:
            if baseline is not None:
                raise BadInput("--baseline is for artifact reports, not --card")
            result = make_card(artifact, target, as_json=True if as_json else None, info=card_info,
                               evaluation=evaluation, registry=registry, store=store)  # fmt: skip
        else:
            given = [name for name, value in (("--card-info", card_info), ("--evaluation", evaluation),
                                              ("--registry", registry), ("--json", as_json)) if value]  # fmt: skip
            if given:
                raise BadInput(f"{', '.join(given)}: only with --card")
            result = report(artifact, target, baseline=baseline, store=store)
        if not quiet and result.path is not None:
            stderr_console().print(
                f"report: wrote {result.path} ({result.kind} {result.artifact[:12]}, {result.bytes:,} bytes)",
                markup=False,
            )
