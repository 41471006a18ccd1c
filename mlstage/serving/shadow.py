"""Shadow traffic: a copy of every unlabelled request, predicted by the shadow version off
the request path and logged with `shadow` true, never returned to the client.

The copies go to a process of its own, started when a shadow first runs. The serving
process only puts the raw rows on a bounded queue, so the stable path does not pay for
the shadow's predictions in CPU time or the GIL (`bench/serve_shadow.py` measures it).
The shadow process loads the version from the registry, checked as every load is. It
predicts the queued requests in batches and writes them to the request log. When the
queue is full (the shadow cannot keep up), a copy is dropped and counted, never waited
for. Without `--log-dir` a shadow has nowhere to go: the server says so once.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

QUEUE_REQUESTS = 10_000  # copies waiting for the shadow process; past this they are dropped
BATCH_REQUESTS = 2_000  # copies predicted together


class Shadow:
    """The serving side: offers copies to the shadow process (started on first use)."""

    def __init__(self, registry: Path, log_dir: Path, exclude: list[str], log):
        self.registry, self.log_dir, self.exclude, self._log = registry, log_dir, exclude, log
        self._queue: Any = None
        self._proc: Any = None
        self._lock = threading.Lock()
        self.sent = 0
        self.dropped = 0
        self.broken = False

    def offer(self, name: str, version: int, model_id: str, rid: str, rows: list) -> None:
        if self._proc is None and not self._start():
            return
        try:
            self._queue.put_nowait((name, version, model_id, rid, rows))
            self.sent += 1
        except queue.Full:
            self.dropped += 1

    def _start(self) -> bool:
        import multiprocessing as mp

        with self._lock:
            if self._proc is not None or self.broken:
                return self._proc is not None
            try:
                ctx = mp.get_context("spawn")  # never fork a threaded server
                self._queue = ctx.Queue(QUEUE_REQUESTS)
                self._proc = ctx.Process(
                    target=_main,
                    args=(str(self.registry), str(self.log_dir), self.exclude, self._queue),
                    name="mlstage-shadow",
                    daemon=True,
                )
                self._proc.start()
                self._log(f"shadow: predicting copies of requests in process {self._proc.pid}")
                return True
            except Exception as e:  # e.g. a daemonic worker may not start processes
                self.broken = True
                self._log(f"shadow: cannot start the shadow process ({e}); copies are dropped")
                return False

    def close(self, seconds: float = 10.0) -> None:
        """Let the shadow process predict and write what is queued, then stop it."""
        if self._proc is None:
            return
        try:
            self._queue.put(None, timeout=seconds)
        except queue.Full:
            pass
        self._proc.join(seconds)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)


def _main(registry: str, log_dir: str, exclude: list[str], q) -> None:
    """The shadow process: predict queued copies in batches, log them, until told to stop
    (or its server is gone)."""
    import signal

    from .requestlog import FLUSH_SECONDS, RequestLog

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server stops it through the queue
    parent = os.getppid()
    reqlog = RequestLog(Path(log_dir), exclude=exclude)
    models: dict[tuple[str, int], Any] = {}
    flushed = time.monotonic()
    stop = False
    while not stop:
        try:
            batch = [q.get(timeout=FLUSH_SECONDS)]
        except queue.Empty:
            batch = []
            if os.getppid() != parent:
                stop = True  # the server died without saying so
        while batch and len(batch) < BATCH_REQUESTS:
            try:
                batch.append(q.get_nowait())
            except queue.Empty:
                break
        if None in batch:
            stop = True
            batch = [b for b in batch if b is not None]
        _predict(batch, Path(registry), models, reqlog)
        if stop or time.monotonic() - flushed >= FLUSH_SECONDS:
            try:
                reqlog.flush()
            except Exception as e:  # held and retried at the next flush
                print(f"serve: shadow: writing the request log failed: {e}", flush=True)
            flushed = time.monotonic()


def _predict(batch: list, registry: Path, models: dict, reqlog) -> None:
    """Predict each (name, version)'s copies together; a copy the shadow model cannot take
    (its inputs differ from the stable one's) is left out."""
    from ..errors import BadInput
    from ..model.artifact import Model

    groups: dict[tuple[str, int, str], list] = {}
    for name, version, model_id, rid, rows in batch:
        groups.setdefault((name, version, model_id), []).append((rid, rows))
    for (name, version, model_id), asks in groups.items():
        model = models.get((name, version))
        if model is None or model.id != model_id:
            try:
                model = Model.load(registry / name / str(version))
            except Exception as e:
                print(f"serve: shadow: {name} version {version} does not load: {e}", flush=True)
                continue
            if model.id != model_id:
                continue  # the folder changed under the server: the next copies say which
            models[(name, version)] = model
        typed, owners = [], []
        for rid, rows in asks:
            try:
                done = [model.coerce(r) for r in rows]
            except BadInput:
                continue
            typed += done
            owners.append((rid, len(done)))
        if not typed:
            continue
        try:
            preds, proba = model.predict_rows(typed)
        except BadInput:
            continue
        at = 0
        for rid, n in owners:
            part = None if proba is None else proba[at : at + n]
            reqlog.add(rid, name, version, typed[at : at + n], preds[at : at + n], part,
                       model.class_names, shadow=True)  # fmt: skip
            at += n
