"""The HTTP server of `mlstage serve` (Starlette on uvicorn): one registry, three APIs.

TF Serving's REST API (`api_tf`):        /v1/models/NAME[/versions/N]:predict, status, metadata
MLflow's scoring protocol (`api_mlflow`): POST /invocations[?model=NAME]; GET /ping, /health,
                                         /version (MLflow's and SageMaker's health contract)
Open Inference Protocol (`api_v2`):      /v2/health/*, /v2/models/NAME[/versions/V][/ready|/infer]
Operations (`api_ops`):                  GET /healthz, GET /metrics (Prometheus text format)

What the endpoints share (the served models, metrics, request log, and the path of a
request) is `service.Service`. Every response carries X-Request-ID; a request never
crashes the server. This module builds the app and runs its two background chores:
watching the registry and flushing the request logs.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette

from . import api_mlflow, api_ops, api_tf, api_v2
from .memory import give_back
from .metrics import Metrics
from .models import ServedModels
from .service import Service

WATCH_SECONDS = 0.5  # how often serving.json is looked at: a deploy is served within ~0.5 s
TRIM_SECONDS = 1.0  # how often freed heap memory is handed back (memory.give_back)
FIRST_LOAD_SECONDS = 10.0  # startup waits this long for the first loads (then they go on)
CONFIG_ENV = "MLSTAGE_SERVE_CONFIG"


def create_app(
    registry: str | Path | None = None,
    *,
    log_dir: str | None = None,
    log_exclude: list[str] = (),
    log_sample: float = 1.0,
    watch: bool = True,
) -> Starlette:
    if registry is None:  # a uvicorn worker process: the settings come from the environment
        cfg = json.loads(os.environ[CONFIG_ENV])
        registry, log_dir, log_exclude, log_sample = (
            cfg["registry"],
            cfg["log_dir"],
            cfg["log_exclude"],
            cfg["log_sample"],
        )
    served = ServedModels(Path(registry))
    metrics = Metrics()
    reqlog = shadow = None
    if log_dir:
        from .requestlog import RequestLog
        from .shadow import Shadow

        reqlog = RequestLog(Path(log_dir), exclude=list(log_exclude), sample=log_sample)
        shadow = Shadow(Path(registry), Path(log_dir), list(log_exclude), served._log)

    def every(seconds: float, work, stop, wake=None) -> None:
        """A plain thread per chore (watching the registry, trimming the heap, flushing
        the logs), off the event loop: a slow load or a slow Parquet write never holds up
        a request, and no chore waits on another. `wake` (an Event) runs the chore early. A
        failure is logged when it first happens, then at most once a minute with how
        often it recurred (a flush failing every 2 s is data being held back)."""
        said, since, times = None, 0.0, 0
        while not stop.is_set():
            (wake or stop).wait(seconds)
            if stop.is_set():
                return
            try:
                work()
                said = None
            except Exception as e:  # the chore must outlive any one failure
                text = f"{work.__name__}: {type(e).__name__}: {e}"
                times += 1
                if text != said or time.monotonic() - since >= 60:
                    again = (
                        f" (failed {times} times since it was last said)" if text == said else ""
                    )
                    served._log(text + again)
                    said, since, times = text, time.monotonic(), 0

    def watch_registry() -> None:
        served.refresh(wait=WATCH_SECONDS / 2)

    def flush_logs() -> None:
        assert reqlog is not None
        reqlog.flush()
        if reqlog.dropped:
            served._log(f"request log: {reqlog.dropped} rows dropped while writes failed")
            reqlog.dropped = 0

    @asynccontextmanager
    async def lifespan(app):
        import threading

        from .requestlog import FLUSH_SECONDS

        served.refresh(wait=FIRST_LOAD_SECONDS)
        if not served.snapshot.served:
            served._log(
                f"no servable model in {registry} yet (none deployed, or still loading):"
                " answering 503 until one is servable"
            )
        stop = threading.Event()
        chores = [(WATCH_SECONDS, watch_registry, None)] if watch else []
        chores.append((TRIM_SECONDS, give_back, None))
        if reqlog is not None:
            chores.append((FLUSH_SECONDS, flush_logs, reqlog.full))
        threads = [
            threading.Thread(
                target=every, args=(s, w, stop, e), name=f"mlstage-{w.__name__}", daemon=True
            )
            for s, w, e in chores
        ]
        for t in threads:
            t.start()
        try:
            yield
        finally:
            stop.set()
            if reqlog is not None:
                reqlog.full.set()  # wakes the flush thread to see `stop`
            for t in threads:
                t.join(timeout=5)
            if reqlog is not None:
                # said, so a cron log shows whether the last requests reached the logs
                written = reqlog.flush()
                served._log(f"shutdown: {written} logged rows written to {reqlog.folder}")
            if shadow is not None:
                shadow.close()

    service = Service(served, metrics, reqlog, shadow)
    routes = api_tf.routes(service) + api_mlflow.routes(service) + api_v2.routes(service)
    routes += api_ops.routes(service)
    missing = api_ops.no_route(service)
    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={404: missing, 405: missing}
    )
    app.state.served = served
    app.state.reqlog = reqlog
    return app
