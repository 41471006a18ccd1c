"""What every command shares: the common options (declared once), error handling
and the rendering of a stage's result.

Exit codes (one table, one place):
    0  success, including "up to date"
    1  the stage ran and a gate failed or a problem was found (anomalies, drift,
       not blessed, deploy refused, verify mismatch)
    2  usage error or bad input; nothing was written
    3  unexpected internal error (a traceback only with --debug)
"""

from __future__ import annotations

import functools
import inspect
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from ..errors import BadInput, DiskFull, ExitCode, MlstageError, is_disk_full
from .render import print_json_line, short_id, stderr_console, summary_text


@dataclass
class Common:
    out: str | None
    json: bool
    quiet: bool
    force: bool
    dry_run: bool
    store: Path | None
    debug: bool

    def run_options(self) -> dict:
        """The options every stage function takes besides its own."""
        return {"store": self.store, "force": self.force, "dry_run": self.dry_run}

    def out_path(self, *, allow_stdout: bool = False) -> Path | None:
        """The output directory; None for '-' (payload to stdout, kept in the store)."""
        if self.out is None:
            raise BadInput("missing option -o/--out DIR")
        if self.out == "-":
            if not allow_stdout:
                raise BadInput("-o -: this stage's output is several files; give a directory")
            return None
        return Path(self.out)


def _param(name: str, annotation, default) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default
    )


_STAGE_OPTIONS = [
    _param(
        "out",
        Annotated[
            str | None,
            typer.Option(
                "-o",
                "--out",
                metavar="DIR",
                help="Output artifact directory ('-': payload to stdout).",
                show_default=False,
            ),
        ],
        None,
    ),
    _param(
        "json",
        Annotated[
            bool, typer.Option("--json", help="Print one JSON line with the result on stdout.")
        ],
        False,
    ),
    _param(
        "quiet",
        Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")],
        False,
    ),
    _param(
        "force",
        Annotated[bool, typer.Option("--force", help="Run even when the output is up to date.")],
        False,
    ),
    _param(
        "dry_run",
        Annotated[
            bool, typer.Option("--dry-run", help="Say whether the stage would run; write nothing.")
        ],
        False,
    ),
    _param(
        "store",
        Annotated[
            Path | None,
            typer.Option(
                "--store",
                metavar="DIR",
                help="Store directory (default: $MLSTAGE_STORE, else .mlstage/ found upwards).",
                show_default=False,
            ),
        ],
        None,
    ),
    _param(
        "debug",
        Annotated[bool, typer.Option("--debug", help="Show a traceback on internal errors.")],
        False,
    ),
]
_STORE_OPTIONS = [p for p in _STAGE_OPTIONS if p.name in ("json", "store", "debug")]

# The stages whose per-partition work can run on a Dask cluster (`core.engine`) take it.
EngineOption = Annotated[
    str | None,
    typer.Option(
        "--engine",
        metavar="ADDRESS",
        envvar="MLSTAGE_ENGINE",
        help="Run the per-partition work on this Dask scheduler (tcp://host:8786; 'local':"
        " here); the output is the same, byte for byte.",
        show_default=False,
    ),
]


@contextmanager
def handle_errors(debug: bool) -> Iterator[None]:
    """Map the core's typed errors to one line on stderr and an exit code."""
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except MlstageError as e:
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"error: {e.cli_message()}\n")
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise typer.Exit(130) from None
    except BrokenPipeError:
        raise typer.Exit(ExitCode.OK) from None
    except Exception as e:  # the one place an unexpected error becomes exit 3
        if debug:
            traceback.print_exc()
        if is_disk_full(e):
            full = DiskFull(getattr(e, "filename", None) or "the output's folder or the store")
            sys.stderr.write(f"error: {full}\n")
            raise typer.Exit(full.exit_code) from None
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        sys.stderr.write(
            f"internal error: {type(e).__name__}: {text} (rerun with --debug for a traceback)\n"
        )
        raise typer.Exit(ExitCode.INTERNAL) from None


def _with_options(
    fn: Callable, extra: list[inspect.Parameter], build: Callable[[dict], object]
) -> Callable:
    # eval_str: the command modules use `from __future__ import annotations`, and typer
    # needs the real Annotated objects to see each option's declaration and help.
    sig = inspect.signature(fn, eval_str=True)
    own = [p for p in sig.parameters.values() if p.name != "common"]

    @functools.wraps(fn)
    def wrapper(**kwargs):
        import warnings

        from ..core import progress

        common = build({p.name: kwargs.pop(p.name) for p in extra})
        debug = getattr(common, "debug", False)
        # progress bars on a terminal only: never in a pipe, a cron log, or under --quiet
        shown = getattr(common, "quiet", True) is False and sys.stderr.isatty()
        with handle_errors(debug), warnings.catch_warnings(), progress.shown_on_stderr(shown):
            if not debug:  # libraries' warnings are noise in a cron log; --debug shows them
                warnings.simplefilter("ignore")
            return fn(common=common, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=own + extra, return_annotation=None)
    wrapper.__annotations__ = {p.name: p.annotation for p in own + extra}
    return wrapper


def stage_command(app: typer.Typer, name: str, **kwargs) -> Callable:
    """Register a stage: adds the common options, passed in as `common: Common`."""

    def deco(fn: Callable) -> Callable:
        app.command(name, **kwargs)(_with_options(fn, _STAGE_OPTIONS, lambda d: Common(**d)))
        return fn

    return deco


@dataclass
class StoreCommon:
    json: bool
    store: Path | None
    debug: bool


def store_command(app: typer.Typer, name: str, **kwargs) -> Callable:
    """Register an inspection/store command: adds --json, --store and --debug."""

    def deco(fn: Callable) -> Callable:
        app.command(name, **kwargs)(_with_options(fn, _STORE_OPTIONS, lambda d: StoreCommon(**d)))
        return fn

    return deco


def emit_result(stage: str, result, common: Common, details: str = "") -> None:
    """Report a stage's result (stderr for people, stdout for --json) and exit with its code."""
    if common.json:
        print_json_line(result.as_json())
    if not common.quiet:
        console = stderr_console()
        m = result.manifest
        where = str(result.path) if result.path else "the store"
        if result.dry_run:
            state = "would run" if result.would_run else "up to date, would not run"
            console.print(f"{stage}: {where}: {state}", markup=False)
        elif result.up_to_date:
            console.print(
                f"{stage}: {where} up to date ({m['kind']} {short_id(m['id'])})", markup=False
            )
        else:
            console.print(f"{stage}: wrote {where} ({m['kind']} {short_id(m['id'])})", markup=False)
        if m and not result.dry_run:
            text = details or summary_text(m["summary"])
            if text:
                console.print(f"  {text}", markup=False)
        for note in result.notes:
            console.print(f"{stage}: note: {note}", markup=False)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


__all__ = [
    "Common",
    "EngineOption",
    "StoreCommon",
    "stage_command",
    "store_command",
    "emit_result",
    "handle_errors",
    "ExitCode",
]
