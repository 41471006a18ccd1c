"""Progress on long work (ingest, stats, train's search, predict), shown on a terminal.

Stages say what they are doing through `task()`. Nothing is shown unless the CLI turned
progress on (`shown_on_stderr`), which it does only when stderr is a terminal and
`--quiet` was not given: a pipe, a cron log and a library call see nothing, and pay
nothing but a function call per step.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_progress: Any = None  # a rich.progress.Progress while the CLI shows progress


class Task:
    def __init__(self, progress: Any = None, task_id: Any = None):
        self._progress, self._id = progress, task_id

    def advance(self, n: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._id, n)


@contextmanager
def task(description: str, total: float | None = None) -> Iterator[Task]:
    """A step of work: a bar when `total` is known (advance it), else a spinner."""
    progress = _progress
    if progress is None:
        yield Task()
        return
    task_id = progress.add_task(description, total=total)
    try:
        yield Task(progress, task_id)
    finally:
        progress.remove_task(task_id)


@contextmanager
def shown_on_stderr(enabled: bool) -> Iterator[None]:
    """Show tasks on stderr for the block (transient: the lines go when it ends)."""
    global _progress
    if not enabled:
        yield
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               TaskProgressColumn(), TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        _progress = progress
        try:
            yield
        finally:
            _progress = None
