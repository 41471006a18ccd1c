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
import re
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import BadInput
from .limits import (
    IN_LOOP_BYTES,
    IN_LOOP_ROWS,
    REQUEST_SECONDS,
    BodyBudget,
    RequestError,
    check_text,
    decode_text,
    read_body,
    request_id,
)
from .metrics import Metrics
from .models import ModelLookupError, ServedModels
from .protocols import mlflow, tf_serving

VERSION = re.compile(r"[0-9]{1,18}")
WATCH_SECONDS = 1.0
FIRST_LOAD_SECONDS = 10.0  # startup waits this long for the first loads (then they go on)
CONFIG_ENV = "MLSTAGE_SERVE_CONFIG"


MLFLOW_CODES = {404: "RESOURCE_DOES_NOT_EXIST", 503: "TEMPORARILY_UNAVAILABLE"}
# methods per first path segment, for 405's Allow header
ALLOWED = {"v1": ("GET", "POST"), "invocations": ("POST",), "healthz": ("GET",),
           "metrics": ("GET",)}  # fmt: skip


def _closing(request: Request, status: int) -> dict[str, str]:
    """`Connection: close` on an error answered before the body was read (unknown model,
    over the size limit, too slow): otherwise the server would go on reading, and
    throwing away, whatever the client still sends. Retry-After on a 503."""
    headers = {"Retry-After": "1"} if status == 503 else {}
    if request.method == "POST" and not getattr(request.state, "body_read", False):
        headers["Connection"] = "close"
    return headers


def _json(data: Any, status: int, rid: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(data, separators=(",", ":"), default=str),
        status_code=status,
        media_type="application/json",
        headers={"X-Request-ID": rid, **(headers or {})},
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

    def every(seconds: float, work, stop, wake=None) -> None:
        """A plain thread per chore (watching the registry, flushing the logs), off the
        event loop: a slow load or a slow Parquet write never holds up a request, and
        neither chore waits on the other. `wake` (an Event) runs the chore early. A
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

    def internal(where: str, rid: str, e: Exception) -> None:
        """An unexpected error: the details go to the server's log, never to the client."""
        import traceback

        served._log(f"internal error on {where} (request {rid}): {type(e).__name__}: {e}")
        sys.stderr.write(traceback.format_exc())

    async def off_loop(work, size: int, small: int):
        """Run `work` on the event loop when `size` is small, else in a thread (within
        REQUEST_SECONDS), so a large request never holds up the small ones."""
        from starlette.concurrency import run_in_threadpool

        if size <= small:
            return work()
        try:
            return await asyncio.wait_for(run_in_threadpool(work), REQUEST_SECONDS)
        except TimeoutError:
            raise RequestError(504, f"the request took longer than {REQUEST_SECONDS:g} s") from None

    async def rows_of(body: bytes, parse) -> Any:
        """A body parsed by `parse` (text -> rows or (rows, style)), its strings checked."""

        def work():
            text = decode_text(body)
            out = parse(text)
            check_text(text, out[0] if isinstance(out, tuple) else out)
            return out

        return await off_loop(work, len(body), IN_LOOP_BYTES)

    async def predict(model, version: int, name: str, rows: list[dict[str, Any]], rid: str):
        if not rows:
            raise RequestError(400, "no rows to predict")

        def work():
            typed = [model.coerce(r) for r in rows]
            return typed, *model.predict_rows(typed)

        start = time.perf_counter()
        try:
            typed, preds, proba = await off_loop(work, len(rows), IN_LOOP_ROWS)
        except BadInput as e:
            raise RequestError(400, e.reason) from None
        metrics.latency.labels(name, str(version)).observe(time.perf_counter() - start)
        metrics.rows.labels(name, str(version)).inc(len(typed))
        if reqlog is not None and reqlog.wanted():
            reqlog.add(rid, name, version, typed, preds, proba, model.class_names)
        return preds, (None if proba is None else proba.tolist())

    def parse_model_path(rest: str) -> tuple[str, int | None, str]:
        """'NAME:predict', 'NAME/versions/N:predict', 'NAME', 'NAME/metadata'."""
        verb = ""
        if ":" in rest:
            rest, verb = rest.rsplit(":", 1)
        parts = rest.split("/")
        name, version = parts[0], None
        tail = parts[1:]
        if len(tail) >= 2 and tail[0] == "versions":
            if not VERSION.fullmatch(tail[1]):
                shown = tail[1] if len(tail[1]) <= 20 else tail[1][:17] + "..."
                raise RequestError(400, f"version {shown!r} is not a version number")
            version, tail = int(tail[1]), tail[2:]
        if tail == ["metadata"]:
            verb = verb or "metadata"
        elif tail:
            raise RequestError(404, f"no such endpoint: /v1/models/{rest}")
        return name, version, verb

    async def v1_models(request: Request) -> Response:
        rid = request_id(request.headers.get("x-request-id"))
        name = "?"
        version: int | None = None
        try:
            name, version, verb = parse_model_path(request.path_params["rest"])
            if request.method in ("GET", "HEAD"):
                if verb == "metadata":
                    model, v = served.get(name, version)
                    return _json(served.metadata(model, v), 200, rid)
                if verb:
                    raise RequestError(404, f"no such endpoint: GET :{verb}")
                return _json(served.status(name), 200, rid)
            if verb != "predict":
                raise RequestError(404, f"no such endpoint: POST :{verb or '(none)'}; use :predict")
            model, v = served.get(name, version)
            body = await read_body(request)
            rows, style = await rows_of(body, tf_serving)
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
        except (RequestError, ModelLookupError) as e:
            metrics.errors.labels("v1", str(e.status)).inc()
            return _json({"error": e.message}, e.status, rid, _closing(request, e.status))
        except Exception as e:  # a request never crashes the server
            metrics.errors.labels("v1", "500").inc()
            internal(request.url.path, rid, e)
            return _json(
                {"error": f"internal error (request {rid}; see the server's log)"}, 500, rid
            )
        finally:
            BodyBudget.release(request)

    async def invocations(request: Request) -> Response:
        rid = request_id(request.headers.get("x-request-id"))
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
            body = await read_body(request)
            kind = request.headers.get("content-type", "")
            rows = await rows_of(body, lambda text: mlflow(text, kind))
            preds, proba = await predict(model, v, name, rows, rid)
            metrics.requests.labels(name, str(v), "invocations", "200").inc()
            return _json(
                {"predictions": preds, "probabilities": proba, "model_version": v}, 200, rid
            )
        except (RequestError, ModelLookupError) as e:
            status, message = e.status, e.message
            code = MLFLOW_CODES.get(status, "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR")
            metrics.errors.labels("invocations", str(status)).inc()
            return _json(
                {"error_code": code, "message": message}, status, rid, _closing(request, status)
            )
        except Exception as e:
            metrics.errors.labels("invocations", "500").inc()
            internal(request.url.path, rid, e)
            message = f"internal error (request {rid}; see the server's log)"
            return _json({"error_code": "INTERNAL_ERROR", "message": message}, 500, rid)
        finally:
            BodyBudget.release(request)

    async def healthz(request: Request) -> Response:
        snap = served.snapshot
        ok = bool(snap.served)
        doc = {"status": "ok" if ok else "no servable model", "models": snap.served}
        if snap.problems:
            doc["problems"] = snap.problems
        return _json(doc, 200 if ok else 503, request_id(request.headers.get("x-request-id")))

    async def prometheus(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        metrics.show(served)  # what is served now, not at the last refresh
        return Response(
            generate_latest(metrics.registry),
            media_type=CONTENT_TYPE_LATEST,
            headers={"X-Request-ID": request_id(request.headers.get("x-request-id"))},
        )

    async def no_route(request: Request, exc) -> Response:
        """404 and 405 in the error shape of the API the path belongs to."""
        rid = request_id(request.headers.get("x-request-id"))
        status = getattr(exc, "status_code", 404)
        path = request.url.path
        if status == 405:
            allowed = ", ".join(ALLOWED.get(path.split("/")[1] if "/" in path else path, ()))
            message = (
                f"{request.method} is not allowed on {path}; use {allowed or 'another method'}"
            )
            headers = {"Allow": allowed} if allowed else {}
        else:
            message, headers = f"no such endpoint: {path}", {}
        metrics.errors.labels("invocations" if path == "/invocations" else "v1", str(status)).inc()
        if path == "/invocations":
            code = "ENDPOINT_NOT_FOUND" if status == 404 else "BAD_REQUEST"
            return _json({"error_code": code, "message": message}, status, rid, headers)
        return _json({"error": message}, status, rid, headers)

    routes = [
        Route("/v1/models/{rest:path}", v1_models, methods=["GET", "POST"]),
        Route("/invocations", invocations, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={404: no_route, 405: no_route}
    )
    app.state.served = served
    app.state.reqlog = reqlog
    return app
