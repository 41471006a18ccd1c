"""Request logs for `monitor`: requests and predictions appended to Parquet files.

Rows are buffered per model and written every few seconds (and on shutdown) as a new
file `requests-<host>-<pid>-<time>-<seq>.parquet`, written beside its name and renamed
in, so `monitor` never reads half a file: one file per worker per rotation. Columns:
request_id, ts, model, version, row (the instance's position in its request, so that
feedback for a many-instance request joins on request_id and row), the input columns
(less --log-exclude; one named like a column of the log's own as `input:NAME`),
prediction, proba_<class>; and `shadow` (true) in the files of a
shadow's predictions, which no client saw. --log-sample keeps that fraction of
requests (decided per request).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import socket
import threading
from pathlib import Path
from typing import Any

# Columns the server adds to each logged request; everything else is a model input.
META_COLUMNS = ("request_id", "ts", "model", "version", "row", "prediction", "shadow")
# An input named like one of those, like a class's proba_<class>, or with this prefix is
# logged as INPUT_PREFIX + its name: neither the input nor the log's own column is lost
# (an input "ts" was overwritten by the request's time, and monitor saw it missing).
INPUT_PREFIX = "input:"


def logged_name(column: str) -> str:
    """The log column that holds the model input `column`."""
    clash = column in META_COLUMNS or column.startswith(("proba_", INPUT_PREFIX))
    return INPUT_PREFIX + column if clash else column


def input_name(logged: str) -> str | None:
    """The model input a log column holds; None for a column of the log's own."""
    if logged.startswith(INPUT_PREFIX):
        return logged[len(INPUT_PREFIX) :]
    return None if logged in META_COLUMNS or logged.startswith("proba_") else logged


FLUSH_SECONDS = 2.0  # the server's flush thread writes this often
MAX_BUFFERED_ROWS = 50_000  # past this, the flush thread is woken at once
MAX_HELD_ROWS = 500_000  # rows kept while writes fail (a full disk); the oldest go past it


class RequestLog:
    def __init__(self, folder: Path, *, exclude: list[str] = (), sample: float = 1.0):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.exclude = set(exclude)
        self.sample = sample
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()  # the buffer
        self._writing = threading.Lock()  # one flush at a time (file names, order)
        self.full = threading.Event()  # set when the buffer wants a flush before its time
        self.dropped = 0  # rows given up while writes failed
        self._seq = 0
        self._tag = f"{socket.gethostname()}-{os.getpid()}"

    def wanted(self) -> bool:
        return self.sample >= 1.0 or random.random() < self.sample

    def add(
        self,
        request_id: str,
        model_name: str,
        version: int,
        rows,
        predictions,
        proba,
        classes,
        *,
        shadow: bool = False,
    ) -> None:
        ts = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        out = []
        for i, row in enumerate(rows):
            rec = {
                "request_id": request_id,
                "ts": ts,
                "model": model_name,
                "version": version,
                "row": i,
            }
            if shadow:
                rec["shadow"] = True
            rec.update({logged_name(k): v for k, v in row.items() if k not in self.exclude})
            rec["prediction"] = predictions[i]
            if proba is not None:
                for j, c in enumerate(classes):
                    rec[f"proba_{c}"] = float(proba[i][j])
            out.append(rec)
        with self._lock:
            self._rows.setdefault(model_name, []).extend(out)
            if sum(len(v) for v in self._rows.values()) >= MAX_BUFFERED_ROWS:
                self.full.set()  # the flush thread writes; a request never does

    def flush(self) -> int:
        """Write the buffered rows, one file per model; the number written. Rows whose
        write fails go back to the buffer (a full disk must not lose them) and the error
        is raised for the caller to report; past MAX_HELD_ROWS the oldest are dropped
        and counted in `dropped`."""
        import polars as pl

        with self._writing:
            with self._lock:
                pending, self._rows = self._rows, {}
                self.full.clear()
            written = 0
            failed: Exception | None = None
            for name, rows in pending.items():
                if not rows:
                    continue
                self._seq += 1
                stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
                target = self.folder / f"requests-{self._tag}-{stamp}-{self._seq:06d}.parquet"
                tmp = self.folder / f".{target.name}.tmp"
                try:
                    pl.DataFrame(rows, infer_schema_length=None).write_parquet(tmp)
                    os.replace(tmp, target)
                    written += len(rows)
                except Exception as e:
                    tmp.unlink(missing_ok=True)
                    failed = e
                    self._hold(name, rows)
            if failed is not None:
                raise failed
            return written

    def _hold(self, name: str, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            kept = rows + self._rows.get(name, [])
            over = sum(len(v) for v in self._rows.values()) + len(rows) - MAX_HELD_ROWS
            if over > 0:
                kept = kept[over:]
                self.dropped += over
            self._rows[name] = kept
