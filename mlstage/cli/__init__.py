"""The `mlstage` command: a thin layer over the library.

Commands parse options, call one library function, render the result and map
errors to exit codes (see `common`). Nothing here imports polars, pyarrow or
scikit-learn at module level, so `--help` and up-to-date runs stay fast; a stage
command that was up to date last time is answered before even typer loads
(`core.replay`).
"""

from __future__ import annotations

import sys


def main() -> None:
    import signal

    from ..core import replay

    # A closed pipe (`mlstage log | head`) ends the process quietly, as in any Unix tool.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    answered = replay.answer(sys.argv[1:])
    if answered is not None:
        raise SystemExit(answered)
    from .commands import app

    replay.run_recorded(sys.argv[1:], app)


def __getattr__(name: str):
    if name == "app":  # `from mlstage.cli import app` (tests drive it with CliRunner)
        from .commands import app

        # Importing the submodule `cli.app` bound that name to the module: rebind it.
        globals()["app"] = app
        return app
    raise AttributeError(name)


__all__ = ["app", "main"]
