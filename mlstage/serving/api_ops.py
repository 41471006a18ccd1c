"""Operations: GET /healthz (200 when a model is servable, with any registry problem),
GET /metrics (Prometheus text format), and 404/405 in the error shape of the API a path
belongs to."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import api_mlflow, api_tf, api_v2
from .service import Service, json_response, rid_of

# methods per first path segment, for 405's Allow header
ALLOWED = {"v1": ("GET", "POST"), "v2": ("GET", "POST"), "invocations": ("POST",),
           "healthz": ("GET",), "metrics": ("GET",), "ping": ("GET",), "health": ("GET",),
           "version": ("GET",)}  # fmt: skip
SHAPES = {"v1": api_tf.error, "v2": api_v2.error, "invocations": api_mlflow.error}


def routes(service: Service) -> list[Route]:
    served, metrics = service.served, service.metrics

    async def healthz(request: Request) -> Response:
        snap = served.snapshot
        ok = bool(snap.served)
        doc = {"status": "ok" if ok else "no servable model", "models": snap.served}
        if snap.problems:
            doc["problems"] = snap.problems
        return json_response(doc, 200 if ok else 503, rid_of(request))

    async def prometheus(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        metrics.show(served, service.shadow)  # what is served now, not at the last refresh
        return Response(
            generate_latest(metrics.registry),
            media_type=CONTENT_TYPE_LATEST,
            headers={"X-Request-ID": rid_of(request)},
        )

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ]


def no_route(service: Service):
    """The handler of 404 and 405."""

    async def handle(request: Request, exc) -> Response:
        status = getattr(exc, "status_code", 404)
        path = request.url.path
        api = path.split("/")[1] if path.count("/") else path
        if status == 405:
            allowed = ", ".join(ALLOWED.get(api, ()))
            message = (
                f"{request.method} is not allowed on {path}; use {allowed or 'another method'}"
            )
            headers = {"Allow": allowed} if allowed else {}
        else:
            message, headers = f"no such endpoint: {path}", {}
        shape = SHAPES.get(api, api_tf.error)
        body = shape(status, message)
        if api == "invocations" and status == 404:
            body["error_code"] = "ENDPOINT_NOT_FOUND"
        service.metrics.errors.labels(api if api in SHAPES else "v1", str(status)).inc()
        return json_response(body, status, rid_of(request), headers)

    return handle
