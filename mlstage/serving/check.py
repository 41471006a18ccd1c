"""The pre-push check (TFX's InfraValidator, with the answers compared too).

Before `deploy` points any label at a version, the version is started in a real
`mlstage serve` process on a free loopback port, from a registry of its own that holds
only hard links to the version's files. The check sends it a sample of rows over TF
Serving's protocol and MLflow's, both as one batch and as single-row requests. The
sample is the evaluation's rows, or rows drawn from the signature's ranges and domains.
The answers must equal the batch path's (`predict`) on the same rows, and the single-row
requests' 95th-percentile latency must be within the bound. The process is then
stopped. Any failure is `CheckFailed` with its reason, and `deploy` points nothing.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..core.artifact import MANIFEST, read_manifest
from ..store.registry import FORMAT

SAMPLE_ROWS = 200  # rows sent as one batch per protocol
SINGLE_REQUESTS = 25  # single-row requests per protocol, timed
START_SECONDS = 120.0  # the server must answer within this (a model load is seconds)
LATENCY_MS = 500.0  # default bound on the single-row requests' p95
# Features are float32, and a model's arithmetic depends on the batch's shape (BLAS sums
# a one-row request in another order than a 200-row batch): linear models and MLPs give
# probabilities ~1e-5 apart and regression values ~1e-5 relative apart (the full dataset
# matrix found both). A class may differ only where the two best classes are that close.
PROBA_TOLERANCE = 1e-4
REGRESSION_RTOL = 1e-4


class CheckFailed(Exception):
    """The version failed its pre-push check: the reason is the message."""


# -- the rows -------------------------------------------------------------------------
def rows_from_evaluation(store, evaluation_manifest: dict[str, Any], signature, n: int):
    """Up to `n` rows of the evaluated split, evenly spaced, with the model's inputs
    (None when the dataset is no longer in the store)."""
    import polars as pl

    from ..data.splits import splits_of

    data = next((i for i in evaluation_manifest["inputs"] if i["role"] == "data"), None)
    manifest = store.manifest(data["id"]) if data is not None else None
    if manifest is None:
        return None
    split = splits_of(store.object_dir(data["id"]), manifest).get(
        evaluation_manifest["params"]["split"]
    )
    if split is None or not all(p.exists() for p in split.parts):
        return None
    frame = pl.scan_parquet(split.parts).select(list(signature["inputs"])).collect()
    frame = _finite(frame)
    if frame.height > n:
        step = frame.height / n
        frame = frame[[int(i * step) for i in range(n)]]
    return frame if frame.height else None


def rows_from_signature(signature: dict[str, Any], n: int, seed: int = 0):
    """`n` rows drawn from the signature's ranges and domains (seeded), a tenth of the
    values missing where training saw missing values."""
    import datetime as dt

    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    dtypes = {"int": pl.Int64, "float": pl.Float64, "bool": pl.Boolean, "string": pl.String,
              "date": pl.Date, "datetime": pl.Datetime("us")}  # fmt: skip
    for col, info in signature["inputs"].items():
        kind = info["type"]
        lo, hi = info.get("min"), info.get("max")
        if kind in ("date", "datetime") and lo is not None:
            lo, hi = (dt.datetime.fromisoformat(str(v)) for v in (lo, hi))
            span = (hi - lo).total_seconds()
            values: list[Any] = [
                lo + dt.timedelta(seconds=float(s)) for s in rng.uniform(0, span, n)
            ]
            values = [v.date() for v in values] if kind == "date" else values
        elif kind == "int":
            lo, hi = (0, 100) if lo is None else (int(lo), int(hi))
            values = rng.integers(lo, hi + 1, n).tolist()
        elif kind == "float":
            bounds = [v for v in (lo, hi) if isinstance(v, int | float) and math.isfinite(v)]
            lo, hi = (min(bounds), max(bounds)) if bounds else (0.0, 1.0)
            # within float32's reach, where a model's features live (1e308 would overflow)
            lo, hi = max(lo, -1e30), min(hi, 1e30)
            values = rng.uniform(min(lo, hi), max(lo, hi), n).tolist()
        elif kind in ("bool", "string"):
            domain = info.get("domain") or (["true", "false"] if kind == "bool" else ["a", "b"])
            picked = [domain[i] for i in rng.integers(0, len(domain), n)]
            values = [v == "true" for v in picked] if kind == "bool" else picked
        else:
            values = [None] * n
        if info.get("nullable"):
            values = [None if m else v for v, m in zip(values, rng.random(n) < 0.1, strict=True)]
        columns[col] = pl.Series(col, values, dtype=dtypes.get(kind, pl.String))
    return pl.DataFrame(columns)


def _finite(frame):
    """Rows JSON can carry: no infinite number (NaN is sent as null, which means the same)."""
    import polars as pl

    floats = [c for c, t in frame.schema.items() if t.is_float()]
    if not floats:
        return frame
    return frame.filter(
        pl.all_horizontal(~pl.col(c).is_infinite().fill_null(False) for c in floats)
    )


def _json_rows(frame) -> list[dict[str, Any]]:
    import datetime as dt

    def plain(v):
        if isinstance(v, float) and math.isnan(v):
            return None
        return v.isoformat() if isinstance(v, dt.date) else v

    return [{k: plain(v) for k, v in r.items()} for r in frame.iter_rows(named=True)]


# -- the server -----------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NAME = "model"  # the private registry's name for the version: safe in any URL

# The check server's entry point. It reads its stdin until EOF, which comes when the
# deploy that started it ends however it ends (a SIGKILL included), and then exits: a
# check server never outlives its deploy. `-P` keeps the current directory off
# sys.path, so a checkout of other code there is not what the server runs.
ENTRY = """
import os, sys, threading
def watch():
    sys.stdin.buffer.read()
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
sys.argv[0] = "mlstage"
from mlstage.cli import main
main()
"""
SCRATCH = ".mlstage-check-"


def remove_stale(registry: Path) -> None:
    """Scratch folders of checks whose deploy is gone (killed before its cleanup)."""
    for folder in registry.glob(SCRATCH + "*"):
        try:
            pid = int(folder.name[len(SCRATCH) :].split("-")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (ValueError, PermissionError):
            continue


class _Server:
    """`mlstage serve` on a registry holding only the version under check."""

    def __init__(self, version_dir: Path, scratch: Path):
        name = NAME
        reg = scratch / "registry"
        folder = reg / name / "1"
        folder.mkdir(parents=True)
        manifest = read_manifest(version_dir)
        for f in [x["path"] for x in manifest["files"]] + [MANIFEST]:
            (folder / f).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(version_dir / f, folder / f)
            except OSError:  # another file system: a copy (verified when the server loads it)
                shutil.copyfile(version_dir / f, folder / f)
        doc = {"format": FORMAT, "version": 1, "history": []}
        (reg / name / "serving.json").write_text(json.dumps(doc))
        self.registry, self.name, self.errors = reg, name, scratch / "stderr"
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def launch(self) -> None:
        """Start the process (it loads the model while the caller computes the reference)."""
        self.port = _free_port()
        with open(self.errors, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-P", "-c", ENTRY, "serve", "--registry", str(self.registry),
                 "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err,
                env={**os.environ, "MLSTAGE_NO_SHORTCUT": "1"}, start_new_session=True,
            )  # fmt: skip

    def wait_ready(self) -> None:
        """Until the version answers; a port taken before the server bound it is tried
        again on another."""
        deadline = time.monotonic() + START_SECONDS
        for _ in range(3):
            assert self.proc is not None
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    status, doc, _ = self.request("GET", f"/v1/models/{self.name}")
                    if status == 200 and doc.get("served_version") == 1:
                        return
                    ended = [v["status"]["error_message"] for v in
                             doc.get("model_version_status", []) if v.get("state") == "END"]  # fmt: skip
                    if ended:
                        raise CheckFailed(f"the version does not load in the server: {ended[0]}")
                except OSError:
                    pass
                time.sleep(0.05)
            else:
                raise CheckFailed(f"the server did not answer within {START_SECONDS:g} s")
            said = self.said()
            if "in use" not in said:
                raise CheckFailed(f"the server exited before answering: {said or 'no message'}")
            self.launch()
        raise CheckFailed("the server could not find a free port")

    def said(self) -> str:
        lines = self.errors.read_text(errors="replace").strip().splitlines()
        return lines[-1].strip() if lines else ""

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any, float]:
        """(status, JSON answer, seconds) on a fresh connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            data = None if body is None else json.dumps(body).encode()
            start = time.perf_counter()
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read()
            took = time.perf_counter() - start
        finally:
            conn.close()
        try:
            return resp.status, json.loads(raw), took
        except ValueError:
            return resp.status, {"error": raw[:200].decode(errors="replace")}, took

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # the watchdog's EOF, should the signal not do
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the check ------------------------------------------------------------------------
def _exit_on_sigterm():
    """SIGTERM (`timeout`, a stopped make) ends the check as Ctrl-C does, through the
    `finally`s that stop its server and remove the scratch folder and the new version's
    copy. The handler before, to restore (None off the main thread: left alone)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, stop)


def run_check(
    version_dir: Path,
    frame,
    *,
    source: str,
    latency_ms: float = LATENCY_MS,
    scratch_in: Path | None = None,
) -> dict[str, Any]:
    """Serve `version_dir`, send it `frame`'s rows, compare with the batch path; a summary
    for the history, or CheckFailed. The server's own registry is a scratch folder in
    `scratch_in` (default: the registry `version_dir` is a version of)."""
    import numpy as np

    from ..model.artifact import Model

    started = time.monotonic()
    rows = _json_rows(frame)
    registry = scratch_in or version_dir.parent.parent
    remove_stale(registry)
    scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH}{os.getpid()}-", dir=registry))
    server = _Server(version_dir, scratch)
    times: list[float] = []
    before = _exit_on_sigterm()
    try:
        server.launch()
        model = Model.load(version_dir)  # the reference, while the server starts
        want, want_proba = model.predict_frame(frame)
        server.wait_ready()
        v1 = f"/v1/models/{NAME}:predict"
        mlflow = f"/invocations?model={NAME}"
        asks = [("TF Serving", v1, {"instances": rows}, slice(None)),
                ("MLflow", mlflow, {"dataframe_records": rows}, slice(None))]  # fmt: skip
        singles = range(min(SINGLE_REQUESTS, len(rows)))
        asks += [("TF Serving", v1, {"instances": [rows[i]]}, slice(i, i + 1)) for i in singles]
        asks += [("MLflow", mlflow, {"dataframe_records": [rows[i]]}, slice(i, i + 1))
                 for i in singles]  # fmt: skip
        for protocol, path, body, part in asks:
            status, doc, took = server.request("POST", path, body)
            if status != 200:
                why = doc.get("error") or doc.get("message") or doc
                raise CheckFailed(f"{protocol}: the server answered {status}: {why}")
            if len(body[next(iter(body))]) == 1:
                times.append(took)
            _compare(protocol, doc, want[part], None if want_proba is None else want_proba[part],
                     model.task, part.start or 0)  # fmt: skip
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
        if before is not None:
            signal.signal(signal.SIGTERM, before)
    p50, p95 = (float(np.percentile(times, q)) * 1000 for q in (50, 95))
    if p95 > latency_ms:
        raise CheckFailed(
            f"single-row requests took {p95:.1f} ms at the 95th percentile, over the bound of {latency_ms:g} ms"
        )
    return {"rows": len(rows), "source": source, "requests": len(times) + 2,
            "p50_ms": round(p50, 2), "p95_ms": round(p95, 2), "bound_ms": latency_ms,
            "seconds": round(time.monotonic() - started, 2)}  # fmt: skip


def _compare(protocol: str, doc: dict[str, Any], want: list, want_proba, task: str, first: int):
    import numpy as np

    got = doc.get("predictions")
    if not isinstance(got, list) or len(got) != len(want):
        raise CheckFailed(f"{protocol}: {len(want)} predictions expected, got {doc!r:.200}")
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        same = (
            isinstance(g, int | float) and math.isclose(g, w, rel_tol=REGRESSION_RTOL, abs_tol=1e-6)
            if task == "regression"
            else json.dumps(g) == json.dumps(w) or _near_tie(want_proba, i)
        )
        if not same:
            raise CheckFailed(
                f"{protocol}: row {first + i} of the sample: the server predicts {g!r}, predict gives {w!r}"
            )
    if want_proba is not None:
        got_proba = doc.get("probabilities")
        if got_proba is None or not np.allclose(
            np.asarray(got_proba, dtype=float), want_proba, rtol=0, atol=PROBA_TOLERANCE
        ):
            raise CheckFailed(f"{protocol}: the server's probabilities differ from predict's")


def _near_tie(proba, i: int) -> bool:
    """Whether row i's two most likely classes are within the tolerance of each other."""
    if proba is None or proba.shape[1] < 2:
        return False
    top = sorted(proba[i])[-2:]
    return bool(top[1] - top[0] <= 2 * PROBA_TOLERANCE)
