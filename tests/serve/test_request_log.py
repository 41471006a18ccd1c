"""The request log keeps rows through a failed write, and never writes on a request."""

from __future__ import annotations

import polars as pl
import pytest

from mlstage.serving import requestlog
from mlstage.serving.requestlog import RequestLog


def add(log: RequestLog, n: int, tag: str = "r") -> None:
    rows = [{"age": i} for i in range(n)]
    log.add(tag, "income", 1, rows, ["x"] * n, None, None)


def test_a_failed_write_keeps_the_rows_for_the_next_flush(tmp_path, monkeypatch):
    log = RequestLog(tmp_path)
    add(log, 5)
    real = pl.DataFrame.write_parquet

    def full_disk(self, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", full_disk)
    with pytest.raises(OSError):
        log.flush()
    assert not list(tmp_path.glob("*"))  # no file, not even a temporary one
    add(log, 3)
    monkeypatch.setattr(pl.DataFrame, "write_parquet", real)
    assert log.flush() == 8
    assert pl.read_parquet(tmp_path / "requests-*.parquet").height == 8


def test_rows_past_the_hold_limit_are_dropped_and_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(requestlog, "MAX_HELD_ROWS", 10)
    log = RequestLog(tmp_path)
    add(log, 8)
    monkeypatch.setattr(pl.DataFrame, "write_parquet", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        log.flush()
    add(log, 6)
    with pytest.raises(ZeroDivisionError):
        log.flush()
    assert log.dropped == 4


def test_a_full_buffer_wakes_the_flush_thread_instead_of_writing(tmp_path, monkeypatch):
    monkeypatch.setattr(requestlog, "MAX_BUFFERED_ROWS", 10)
    log = RequestLog(tmp_path)
    add(log, 12)
    assert log.full.is_set() and not list(tmp_path.glob("*.parquet"))
