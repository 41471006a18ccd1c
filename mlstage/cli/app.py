"""The typer application every command module registers itself on."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..errors import ExitCode
from ..version import __version__

app = typer.Typer(
    name="mlstage",
    help="Composable stages from raw data to a served, monitored model.\n\n"
    "Each stage reads artifacts and writes one new versioned artifact (-o DIR); "
    "exit codes: 0 ok, 1 gate failed, 2 bad input or usage, 3 internal error.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"mlstage {__version__}\n")
        raise typer.Exit(ExitCode.OK)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    pass
