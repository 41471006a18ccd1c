"""`mlstage deploy`: a blessed model into the registry under a label (a canary, a
shadow); `--promote`; `--rollback`."""

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
    allow_new_signature: Annotated[
        bool,
        typer.Option(
            "--allow-new-signature",
            help="Deploy a model whose task, label or inputs differ from the stable version's.",
        ),
    ] = False,
    message: Annotated[
        str, typer.Option("--message", metavar="TEXT", help="A note for the history.")
    ] = "",
    label: Annotated[
        str,
        typer.Option("--label", metavar="LABEL", help="The label to point (or roll back)."),
    ] = "stable",
    canary: Annotated[
        float | None,
        typer.Option(
            "--canary",
            metavar="PERCENT",
            help="Send this share of unlabelled traffic to the model (label canary).",
        ),
    ] = None,
    shadow: Annotated[
        bool,
        typer.Option(
            "--shadow", help="Send a copy of every request to the model, answered by nobody."
        ),
    ] = False,
    promote: Annotated[
        bool,
        typer.Option("--promote", help="Point stable at the canary's (or shadow's) version."),
    ] = False,
    rollback: Annotated[
        bool,
        typer.Option(
            "--rollback",
            help="Point the label back at its previous version (or --to N); a canary or shadow ends.",
        ),
    ] = False,
    to: Annotated[
        int | None, typer.Option("--to", metavar="N", help="With --rollback: the version to serve.")
    ] = None,
    skip_check: Annotated[
        bool,
        typer.Option(
            "--skip-check", help="Point without the pre-push check in a real server (recorded)."
        ),
    ] = False,
    check_latency_ms: Annotated[
        float,
        typer.Option(
            "--check-latency-ms",
            metavar="MS",
            help="The pre-push check's bound on single-row requests' p95.",
        ),
    ] = 500.0,
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

        if rollback and promote:
            raise BadInput("--rollback and --promote: give one")
        if rollback or promote:
            what = "--rollback" if rollback else "--promote"
            if model is not None or evaluation is not None:
                raise BadInput(f"{what} takes no MODEL or --evaluation")
            if canary is not None or shadow:
                raise BadInput(f"{what} takes no --canary or --shadow")
            if skip_check or allow_unblessed or allow_new_signature:
                raise BadInput(f"{what} points at a version already checked: no --skip-check,"
                               " --allow-unblessed or --allow-new-signature")  # fmt: skip
            if promote and to is not None:
                raise BadInput("--promote takes the canary's version: no --to")
        elif to is not None:
            raise BadInput("--to is for --rollback")
        if rollback:
            result = reg.rollback(registry, name=name, to=to, message=message, label=label)
        elif promote:
            result = reg.promote(
                registry, name=name, label=None if label == "stable" else label, message=message
            )
        else:
            if model is None:
                raise BadInput("give MODEL to deploy (or --rollback, --promote)")
            if not check_latency_ms > 0:
                raise BadInput(f"--check-latency-ms {check_latency_ms}: a positive bound")
            st = Store.open(store, near=registry.absolute().parent)
            result = reg.deploy(
                st,
                model,
                evaluation,
                registry,
                name=name,
                allow_unblessed=allow_unblessed,
                message=message,
                label=label,
                canary=canary,
                shadow=shadow,
                check=reg.CheckOptions(skip=skip_check, latency_ms=check_latency_ms),
                allow_new_signature=allow_new_signature,
            )
        if json_:
            print_json_line(result.as_json())
        if not quiet:
            where = f"{result.registry}/{result.name}"
            checked = result.check
            if isinstance(checked, dict):
                checked = (
                    f"; checked in a server: {checked['rows']} {checked['source']} rows,"
                    f" p95 {checked['p95_ms']:g} ms"
                )
            else:
                checked = "; pre-push check skipped" if checked == "skipped" else ""
            text = (
                f"deploy: {where} up to date ({result.label} is version {result.version})"
                if result.up_to_date
                else f"deploy: {where} now serves version {result.version}"
                + ("" if result.label == "stable" else f" as {result.label}")
                + f" (model {result.model[:12]}, {result.action}{checked})"
            )
            if result.action.startswith("end-"):
                text = f"deploy: {where}: the {result.label} of version {result.version} ended"
            stderr_console().print(text, markup=False)
