"""Typed errors of the core and the exit codes they map to.

The CLI has one handler that turns these into a one-line message and an exit
code; the library raises them and never exits.
"""

from __future__ import annotations

import re
from enum import IntEnum


class ExitCode(IntEnum):
    """The exit codes of every command (README: Exit codes)."""

    OK = 0
    GATE = 1  # the stage ran and found a problem (anomalies, not blessed, verify mismatch)
    BAD_INPUT = 2  # usage error or bad input; nothing was written
    INTERNAL = 3  # unexpected internal error
    NO_TRAFFIC = 4  # monitor saw no request in its window: silence is not health


# A parameter named in a message, as its reader knows it: `split_key` to a Python caller,
# `--split-key` on the command line (see `opt`).
_OPTION = re.compile("\x00([^\x00]*)\x00([^\x00]*)\x00")


def opt(name: str, cli: str | None = None) -> str:
    """Name the parameter `name` in an error message; `cli` is its command-line spelling
    when it is not `--name` with dashes (`opt("types", "--type")`, `opt("out", "-o")`)."""
    return f"\x00{name}\x00{cli or '--' + name.replace('_', '-')}\x00"


def for_python(text: str) -> str:
    return _OPTION.sub(r"\1", text)


def for_cli(text: str) -> str:
    return _OPTION.sub(r"\2", text)


class MlstageError(Exception):
    """Base of every error the core raises on purpose. Its text names parameters as a
    Python caller knows them; `cli_message()` as the command line spells them."""

    exit_code = ExitCode.INTERNAL

    def __init__(self, *args) -> None:
        self.raw = str(args[0]) if args else ""
        super().__init__(for_python(self.raw), *args[1:])

    def cli_message(self) -> str:
        return for_cli(self.raw)

    def __reduce__(self):
        # Raised on a Dask worker, an error travels back to the client pickled: its
        # attributes (the raw text with the parameters' names, the file) come along.
        return (_restore, (type(self), self.args, self.__dict__))


def _restore(cls: type[MlstageError], args: tuple, state: dict) -> MlstageError:
    error = Exception.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class BadInput(MlstageError):
    """Bad input to a stage: unreadable or malformed file, bad option, bad config.

    The message names the file and, where known, the line, column and value.
    """

    exit_code = ExitCode.BAD_INPUT

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.reason = message
        where = []
        if file:
            where.append(str(file))
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f'column "{column}"')
        text = message
        if where:
            # file: line 17, column "age": reason
            head = where[0] if file else ""
            rest = ", ".join(where[1:] if file else where)
            prefix = ": ".join(p for p in (head, rest) if p)
            text = f"{prefix}: {message}"
        super().__init__(text)


class NotFound(BadInput):
    """A referenced artifact, file or store entry does not exist."""


class CorruptArtifact(BadInput):
    """An artifact whose files do not match its manifest, met while reading an input:
    bad input (exit 2). `verify`, whose job is to find them, reports them with exit 1."""


class DiskFull(MlstageError):
    """No space left on the device being written: neither the input's fault nor a bug."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, where) -> None:
        super().__init__(
            f"no space left on the device while writing under {where}: free some space"
            " (`mlstage gc` drops versions nothing holds) and run again"
        )


def is_disk_full(error: BaseException) -> bool:
    import errno

    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    return "No space left on device" in str(error)  # polars reports it as text
