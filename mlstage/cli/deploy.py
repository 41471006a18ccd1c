"""`mlstage deploy`: a blessed model into the registry; `--rollback`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import BadInput
from .app import app


@app.command("deploy")
def deploy_cmd(
    model: Annotated[
        str | None,
        typer.Argument(
            metavar="MODEL",
            help="Model artifact to deploy (not with --rollback).",
            show_default=False,
        ),
    ] = None,
    evaluation: Annotated[
        str | None,
        typer.Option(
            "--evaluation", metavar="EVALUATION", help="The evaluation that blessed this model."
        ),
    ] = None,
    registry: Annotated[
        Path,
        typer.Option(
            "--registry", metavar="REGISTRY", help="Registry directory.", show_default=False
        ),
    ] = Path("registry"),
    name: Annotated[
        str | None,
        typer.Option(
            "--name", metavar="NAME", help="Model name in the registry (default: its only one)."
        ),
    ] = None,
    allow_unblessed: Annotated[
        bool,
        typer.Option(
            "--allow-unblessed", help="Deploy even if not blessed (recorded in the history)."
        ),
    ] = False,
    message: Annotated[
        str, typer.Option("--message", metavar="TEXT", help="A note for the history.")
    ] = "",
    rollback: Annotated[
        bool,
        typer.Option(
            "--rollback", help="Point back at the previous version in the history (or --to N)."
        ),
    ] = False,
    to: Annotated[
        int | None, typer.Option("--to", metavar="N", help="With --rollback: the version to serve.")
    ] = None,
    json_: Annotated[
        bool, typer.Option("--json", help="Print one JSON line with the result.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Accepted for symmetry; never bypasses a gate.")
    ] = False,
    store: Annotated[
        str | None, typer.Option("--store", metavar="DIR", help="Store directory.")
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show a traceback on internal errors.")
    ] = False,
) -> None:
    """Put a blessed model in the registry and serve it (exit 1 when refused); or roll back."""
    from .common import handle_errors

    with handle_errors(debug):
        from ..stages import deploy as reg
        from ..store.store import Store
        from .render import print_json_line, stderr_console

        if rollback:
            if model is not None or evaluation is not None:
                raise BadInput("--rollback takes no MODEL or --evaluation")
            result = reg.rollback(registry, name=name, to=to, message=message)
        else:
            if model is None:
                raise BadInput("give MODEL to deploy (or --rollback)")
            st = Store.open(store, near=registry.absolute().parent)
            result = reg.deploy(
                st,
                model,
                evaluation,
                registry,
                name=name,
                allow_unblessed=allow_unblessed,
                message=message,
            )
        if json_:
            print_json_line(result.as_json())
        if not quiet:
            where = f"{result.registry}/{result.name}"
            text = (
                f"deploy: {where} up to date (serving version {result.version})"
                if result.up_to_date
                else f"deploy: {where} now serves version {result.version} (model {result.model[:12]}, {result.action})"
            )
            stderr_console().print(text, markup=False)
