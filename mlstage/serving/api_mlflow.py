"""MLflow's scoring protocol and the health contract of MLflow's server and SageMaker's
containers: POST /invocations[?model=NAME[&label=LABEL]] (dataframe_split, dataframe_records,
instances, inputs, or text/csv), GET /ping and /health (200 when a model is servable,
503 otherwise), GET /version. Errors are `{"error_code", "message"}`.

SageMaker's convention is one model per container: with one model name in the
registry, /invocations needs no `?model=`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..version import __version__
from .limits import RequestError, read_body
from .protocols import mlflow
from .service import Service, json_response, rid_of

CODES = {404: "RESOURCE_DOES_NOT_EXIST", 503: "TEMPORARILY_UNAVAILABLE"}


def error(status: int, message: str) -> dict:
    code = CODES.get(status, "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR")
    return {"error_code": code, "message": message}


def routes(service: Service) -> list[Route]:
    served, metrics = service.served, service.metrics

    async def invocations(request: Request) -> Response:
        async def work(rid: str) -> Response:
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
            model, v = served.get(name, label=request.query_params.get("label"), request_id=rid)
            kind = request.headers.get("content-type", "")
            rows = await service.rows_of(await read_body(request), lambda t: mlflow(t, kind))
            preds, proba = await service.predict(
                model, v, name, rows, rid, unrouted=request.query_params.get("label") is None
            )
            metrics.requests.labels(name, str(v), "invocations", "200").inc()
            doc = {"predictions": preds, "probabilities": proba, "model_version": v}
            return json_response(doc, 200, rid)

        return await service.answer(request, "invocations", error, work)

    async def ping(request: Request) -> Response:
        """MLflow's and SageMaker's health probe: 200 when a model is servable."""
        ok = bool(served.snapshot.served)
        doc = {"status": "ok"} if ok else {"status": "no servable model"}
        return json_response(doc, 200 if ok else 503, rid_of(request))

    async def version(request: Request) -> Response:
        return Response(
            __version__, media_type="text/plain", headers={"X-Request-ID": rid_of(request)}
        )

    return [
        Route("/invocations", invocations, methods=["POST"]),
        Route("/ping", ping, methods=["GET"]),
        Route("/health", ping, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
    ]
