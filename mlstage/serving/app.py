"""The HTTP endpoints of `mlstage serve` (Starlette on uvicorn).

TF Serving's REST API:  POST /v1/models/NAME:predict, /v1/models/NAME/versions/N:predict,
                        GET /v1/models/NAME, GET /v1/models/NAME/metadata
MLflow's protocol:      POST /invocations[?model=NAME]
Operations:             GET /healthz, GET /metrics (Prometheus text format)

Every response carries X-Request-ID (the client's, if it sent one). Errors are
{"error": ...} on /v1 and {"error_code", "message"} on /invocations; a request
never crashes the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ..errors import BadInput
from .models import ModelLookupError, ServedModels
from .protocols import RequestError, mlflow, tf_serving

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_ROWS = 10_000
REQUEST_SECONDS = 30.0
IN_LOOP_ROWS = 64  # predict small requests on the event loop; larger ones in a thread
WATCH_SECONDS = 1.0
CONFIG_ENV = "MLSTAGE_SERVE_CONFIG"


class Metrics:
    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mlstage_requests",
            "Prediction requests",
            ["model", "version", "endpoint", "code"],
            registry=self.registry,
        )
        self.rows = Counter(
            "mlstage_predicted_rows", "Rows predicted", ["model", "version"], registry=self.registry
        )
        self.latency = Histogram(
            "mlstage_request_seconds",
            "Prediction request latency",
            ["model", "version"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
            registry=self.registry,
        )
        self.errors = Counter(
            "mlstage_errors",
            "Requests answered with an error",
            ["endpoint", "code"],
            registry=self.registry,
        )
        self.served = Gauge(
            "mlstage_served_version",
            "Version answering unversioned requests",
            ["model"],
            registry=self.registry,
        )


def _request_id(request: Request) -> str:
    return request.headers.get("x-request-id") or uuid.uuid4().hex


def _json(data: Any, status: int, rid: str) -> Response:
    return Response(
        json.dumps(data, separators=(",", ":"), default=str),
        status_code=status,
        media_type="application/json",
        headers={"X-Request-ID": rid},
    )


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
    reqlog = None
    if log_dir:
        from .requestlog import RequestLog

        reqlog = RequestLog(Path(log_dir), exclude=list(log_exclude), sample=log_sample)

    def watcher(stop) -> None:
        """A plain thread: refresh the models every second, flush the logs every other second.

        Kept off the event loop, so neither a slow model load nor a slow Parquet write
        ever waits on (or holds up) request handling.
        """
        ticks = 0
        while not stop.wait(WATCH_SECONDS):
            ticks += 1
            try:
                if watch:
                    served.refresh()
                    for name, v in served.snapshot.served.items():
                        metrics.served.labels(name).set(v)
                if reqlog is not None and ticks % 2 == 0:
                    reqlog.flush()
            except Exception as e:  # the watcher must outlive any one bad refresh
                served._log(f"watcher: {type(e).__name__}: {e}")

    @asynccontextmanager
    async def lifespan(app):
        import threading

        served.refresh()
        for name, v in served.snapshot.served.items():
            metrics.served.labels(name).set(v)
        if not served.snapshot.served:
            served._log(f"no servable model in {registry} yet: answering 503 until one is deployed")
        stop = threading.Event()
        thread = threading.Thread(target=watcher, args=(stop,), name="mlstage-watcher", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=30)
            if reqlog is not None:
                # said, so a cron log shows whether the last requests reached the logs
                written = reqlog.flush()
                served._log(f"shutdown: {written} logged rows written to {reqlog.folder}")

    async def predict(model, version: int, name: str, rows: list[dict[str, Any]], rid: str):
        from starlette.concurrency import run_in_threadpool

        if len(rows) > MAX_ROWS:
            raise RequestError(413, f"{len(rows)} rows in one request; at most {MAX_ROWS}")
        if not rows:
            raise RequestError(400, "no rows to predict")
        try:
            typed = [model.coerce(r) for r in rows]
        except BadInput as e:
            raise RequestError(400, e.reason) from None
        start = time.perf_counter()
        try:
            if len(typed) <= IN_LOOP_ROWS:
                preds, proba = model.predict_rows(typed)
            else:
                preds, proba = await asyncio.wait_for(
                    run_in_threadpool(model.predict_rows, typed), REQUEST_SECONDS
                )
        except TimeoutError:
            raise RequestError(504, f"prediction took longer than {REQUEST_SECONDS:g} s") from None
        except BadInput as e:
            raise RequestError(400, e.reason) from None
        metrics.latency.labels(name, str(version)).observe(time.perf_counter() - start)
        metrics.rows.labels(name, str(version)).inc(len(typed))
        if reqlog is not None and reqlog.wanted():
            reqlog.add(rid, name, version, typed, preds, proba, model.class_names)
        return preds, (None if proba is None else proba.tolist())

    async def read_body(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
            raise RequestError(413, f"the body is over {MAX_BODY_BYTES // 2**20} MiB")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise RequestError(413, f"the body is over {MAX_BODY_BYTES // 2**20} MiB")
        return body

    def parse_model_path(rest: str) -> tuple[str, int | None, str]:
        """'NAME:predict', 'NAME/versions/N:predict', 'NAME', 'NAME/metadata'."""
        verb = ""
        if ":" in rest:
            rest, verb = rest.rsplit(":", 1)
        parts = rest.split("/")
        name, version = parts[0], None
        tail = parts[1:]
        if len(tail) >= 2 and tail[0] == "versions":
            if not tail[1].isdigit():
                raise RequestError(400, f"version {tail[1]!r} is not a number")
            version, tail = int(tail[1]), tail[2:]
        if tail == ["metadata"]:
            verb = verb or "metadata"
        elif tail:
            raise RequestError(404, f"no such endpoint: /v1/models/{rest}")
        return name, version, verb

    async def v1_models(request: Request) -> Response:
        rid = _request_id(request)
        name = "?"
        version: int | None = None
        try:
            name, version, verb = parse_model_path(request.path_params["rest"])
            if request.method == "GET":
                if verb == "metadata":
                    model, v = served.get(name, version)
                    return _json(served.metadata(model, v), 200, rid)
                if verb:
                    raise RequestError(404, f"no such endpoint: GET :{verb}")
                return _json(served.status(name), 200, rid)
            if verb != "predict":
                raise RequestError(404, f"no such endpoint: POST :{verb or '(none)'}; use :predict")
            model, v = served.get(name, version)
            rows, style = tf_serving(await read_body(request))
            preds, proba = await predict(model, v, name, rows, rid)
            metrics.requests.labels(name, str(v), "v1", "200").inc()
            if style == "column":
                return _json(
                    {"outputs": {"predictions": preds, "probabilities": proba}, "model_version": v},
                    200,
                    rid,
                )
            return _json(
                {"predictions": preds, "probabilities": proba, "model_version": v}, 200, rid
            )
        except RequestError as e:
            metrics.errors.labels("v1", str(e.status)).inc()
            return _json({"error": e.message}, e.status, rid)
        except ModelLookupError as e:
            metrics.errors.labels("v1", str(e.status)).inc()
            return _json({"error": e.message}, e.status, rid)
        except Exception as e:  # a request never crashes the server
            metrics.errors.labels("v1", "500").inc()
            return _json({"error": f"internal error: {type(e).__name__}: {e}"}, 500, rid)

    async def invocations(request: Request) -> Response:
        rid = _request_id(request)
        try:
            snap = served.snapshot
            name = request.query_params.get("model")
            if name is None:
                if len(snap.models) != 1:
                    names = ", ".join(sorted(snap.models)) or "none"
                    raise RequestError(
                        400 if snap.models else 503,
                        f"say which model: /invocations?model=NAME (models: {names})",
                    )
                name = next(iter(snap.models))
            model, v = served.get(name)
            rows = mlflow(await read_body(request), request.headers.get("content-type", ""))
            preds, proba = await predict(model, v, name, rows, rid)
            metrics.requests.labels(name, str(v), "invocations", "200").inc()
            return _json(
                {"predictions": preds, "probabilities": proba, "model_version": v}, 200, rid
            )
        except (RequestError, ModelLookupError) as e:
            status, message = e.status, e.message
            code = {
                400: "BAD_REQUEST",
                404: "RESOURCE_DOES_NOT_EXIST",
                413: "BAD_REQUEST",
                415: "BAD_REQUEST",
            }.get(status, "INTERNAL_ERROR")
            metrics.errors.labels("invocations", str(status)).inc()
            return _json({"error_code": code, "message": message}, status, rid)
        except Exception as e:
            metrics.errors.labels("invocations", "500").inc()
            return _json(
                {"error_code": "INTERNAL_ERROR", "message": f"{type(e).__name__}: {e}"}, 500, rid
            )

    async def healthz(request: Request) -> Response:
        snap = served.snapshot
        ok = bool(snap.served)
        return _json(
            {"status": "ok" if ok else "no servable model", "models": snap.served},
            200 if ok else 503,
            _request_id(request),
        )

    async def prometheus(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(
            generate_latest(metrics.registry),
            media_type=CONTENT_TYPE_LATEST,
            headers={"X-Request-ID": _request_id(request)},
        )

    async def not_found(request: Request, exc) -> Response:
        return PlainTextResponse(
            "not found",
            status_code=getattr(exc, "status_code", 404),
            headers={"X-Request-ID": _request_id(request)},
        )

    routes = [
        Route("/v1/models/{rest:path}", v1_models, methods=["GET", "POST"]),
        Route("/invocations", invocations, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={404: not_found, 405: not_found}
    )
    app.state.served = served
    app.state.reqlog = reqlog
    return app
