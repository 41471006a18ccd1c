"""Request logs for `monitor`: requests and predictions appended to Parquet files.

Rows are buffered per model and written every few seconds (and on shutdown) as a new
file `requests-<host>-<pid>-<time>-<seq>.parquet`, written beside its name and renamed
in, so `monitor` never reads half a file: one file per worker per rotation. Columns:
request_id, ts, model, version, row (the instance's position in its request, so that
feedback for a many-instance request joins on request_id and row), the input columns
(less --log-exclude), prediction, proba_<class>. --log-sample keeps that fraction of
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

FLUSH_SECONDS = 2.0  # the server flushes every other watcher tick
MAX_BUFFERED_ROWS = 50_000


class RequestLog:
    def __init__(self, folder: Path, *, exclude: list[str] = (), sample: float = 1.0):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.exclude = set(exclude)
        self.sample = sample
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._seq = 0
        self._tag = f"{socket.gethostname()}-{os.getpid()}"

    def wanted(self) -> bool:
        return self.sample >= 1.0 or random.random() < self.sample

    def add(
        self, request_id: str, model_name: str, version: int, rows, predictions, proba, classes
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
            rec.update({k: v for k, v in row.items() if k not in self.exclude})
            rec["prediction"] = predictions[i]
            if proba is not None:
                for j, c in enumerate(classes):
                    rec[f"proba_{c}"] = float(proba[i][j])
            out.append(rec)
        with self._lock:
            self._rows.setdefault(model_name, []).extend(out)
            full = sum(len(v) for v in self._rows.values()) >= MAX_BUFFERED_ROWS
        if full:
            self.flush()

    def flush(self) -> int:
        import polars as pl

        with self._lock:
            pending, self._rows = self._rows, {}
        written = 0
        for rows in pending.values():
            if not rows:
                continue
            self._seq += 1
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
            target = self.folder / f"requests-{self._tag}-{stamp}-{self._seq:06d}.parquet"
            tmp = self.folder / f".{target.name}.tmp"
            pl.DataFrame(rows, infer_schema_length=None).write_parquet(tmp)
            os.replace(tmp, target)
            written += len(rows)
        return written
