"""Shadow traffic: a copy of every unlabelled request, predicted by the shadow version off
the request path and logged with `shadow` true, never returned to the client.

The copies go to a process of its own, started when a shadow first runs. A request only
appends its raw rows to a bounded deque; a thread sends what is held to the process
ten times a second. So the stable path pays neither for the shadow's predictions
(CPU, the GIL) nor for a wake-up per request (`bench/serve_shadow.py` measures it).
The shadow process loads the version from the registry, checked as every load is. It
predicts the queued requests in batches and writes them to the request log. When the
queue is full (the shadow cannot keep up), a copy is dropped and counted, never waited
for. Without `--log-dir` a shadow has nowhere to go: the server says so once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

QUEUE_ROWS = 200_000  # rows of copies held for the shadow; past this copies are dropped
SEND_SECONDS = 0.1  # copies are sent to the shadow process in one batch this often
BATCH_REQUESTS = 2_000  # copies predicted together


class Shadow:
    """The serving side: holds copies and sends them to the shadow process (started on
    first use) in batches, from a thread of its own. A request only appends to a deque:
    waking a thread or pickling per request would cost the stable path its latency."""

    def __init__(self, registry: Path, log_dir: Path, exclude: list[str], log):
        self.registry, self.log_dir, self.exclude, self._log = registry, log_dir, exclude, log
        self._pending: deque = deque()
        self._held_rows = 0  # rows in _pending (a memory bound, whatever the request sizes)
        self._held_lock = threading.Lock()
        self._conn: Any = None
        self._proc: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sender: threading.Thread | None = None
        self.sent = 0
        self.dropped = 0
        self.broken = False

    def offer(self, name: str, version: int, model_id: str, rid: str, rows: list) -> None:
        if self.broken or (self._proc is None and not self._start()):
            self.dropped += 1
            return
        with self._held_lock:  # uncontended but for the sender's tenth-of-a-second take
            if self._held_rows + len(rows) > QUEUE_ROWS:
                self.dropped += 1  # the shadow cannot keep up: never waited for
                return
            self._held_rows += len(rows)
            self._pending.append((name, version, model_id, rid, rows))

    def _start(self) -> bool:
        import multiprocessing as mp

        with self._lock:
            if self._proc is not None or self.broken:
                return self._proc is not None
            try:
                ctx = mp.get_context("spawn")  # never fork a threaded server
                receiver, self._conn = ctx.Pipe(duplex=False)
                self._proc = ctx.Process(
                    target=_main,
                    args=(str(self.registry), str(self.log_dir), self.exclude, receiver),
                    name="mlstage-shadow",
                    daemon=True,
                )
                self._proc.start()
                receiver.close()
            except Exception as e:  # e.g. a daemonic worker may not start processes
                self.broken = True
                self._log(f"shadow: cannot start the shadow process ({e}); copies are dropped")
                return False
            self._sender = threading.Thread(target=self._send, name="mlstage-shadow-send",
                                            daemon=True)  # fmt: skip
            self._sender.start()
            self._log(f"shadow: predicting copies of requests in process {self._proc.pid}")
            return True

    def _send(self) -> None:
        """Every SEND_SECONDS, the held copies in one message. A shadow process that is
        gone (killed, crashed) stops the copies, said once."""
        while True:
            stopping = self._stop.wait(SEND_SECONDS)
            batch = []
            with self._held_lock:
                while self._pending and len(batch) < BATCH_REQUESTS:
                    batch.append(self._pending.popleft())
                    self._held_rows -= len(batch[-1][4])
            try:
                if batch:
                    self._conn.send(batch)
                    self.sent += len(batch)
                if stopping and not self._pending:
                    self._conn.send(None)
                    return
            except OSError as e:  # the shadow process died (killed, out of memory)
                self.broken = True
                self.dropped += len(batch) + len(self._pending)
                with self._held_lock:
                    self._pending.clear()
                    self._held_rows = 0
                self._log(
                    f"shadow: the shadow process is gone ({e}); copies are dropped from now on"
                )
                return

    def close(self, seconds: float = 10.0) -> None:
        """Let the shadow process predict and write what is held, then stop it."""
        if self._proc is None:
            return
        self._stop.set()
        if self._sender is not None:
            self._sender.join(seconds)
        self._proc.join(seconds)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
            self._log(
                f"shadow: stopped before it had predicted every copy sent to it; {len(self._pending)}"
                " more were never sent"
            )
        self._log(f"shadow: {self.sent} copies sent, {self.dropped} dropped")


def _main(registry: str, log_dir: str, exclude: list[str], conn) -> None:
    """The shadow process: predict the copies it is sent, log them, until told to stop
    (or its server is gone)."""
    import signal

    from .requestlog import FLUSH_SECONDS, RequestLog

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server stops it through the pipe
    reqlog = RequestLog(Path(log_dir), exclude=exclude)
    models: dict[tuple[str, int], Any] = {}
    flushed = time.monotonic()
    stop = False
    while not stop:
        batch: list = []
        try:
            if conn.poll(FLUSH_SECONDS):
                got = conn.recv()
                stop = got is None
                batch = got or []
        except (EOFError, OSError):
            stop = True  # the server died without saying so
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
            for old in [k for k in models if k[0] == name]:
                del models[old]  # one shadow per model: the version it replaced is done
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
