"""TF Serving's REST API: POST /v1/models/NAME[/versions/N | /labels/LABEL]:predict (row
format `{"instances": [...]}` or column format `{"inputs": {...}}`), GET /v1/models/NAME
(status, with the labels) and GET /v1/models/NAME[/versions/N | /labels/LABEL]/metadata.
Errors are `{"error": ...}`."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .limits import RequestError, read_body
from .protocols import tf_serving
from .service import Service, json_response

VERSION = re.compile(r"[0-9]{1,18}")


def version_number(text: str) -> int:
    """A version from a URL: digits only (int() takes '²' and 5,000-digit strings)."""
    if not VERSION.fullmatch(text):
        shown = text if len(text) <= 20 else text[:17] + "..."
        raise RequestError(400, f"version {shown!r} is not a version number")
    return int(text)


def error(status: int, message: str) -> dict:
    return {"error": message}


def parse_model_path(rest: str) -> tuple[str, int | None, str | None, str]:
    """'NAME:predict', 'NAME/versions/N:predict', 'NAME/labels/LABEL:predict', 'NAME',
    'NAME/metadata' -> (name, version, label, verb)."""
    verb = ""
    if ":" in rest:
        rest, verb = rest.rsplit(":", 1)
    parts = rest.split("/")
    name, version, label = parts[0], None, None
    tail = parts[1:]
    if len(tail) >= 2 and tail[0] == "versions":
        version, tail = version_number(tail[1]), tail[2:]
    elif len(tail) >= 2 and tail[0] == "labels" and tail[1]:
        label, tail = tail[1], tail[2:]
    if tail == ["metadata"]:
        verb = verb or "metadata"
    elif tail:
        raise RequestError(404, f"no such endpoint: /v1/models/{rest}")
    return name, version, label, verb


def routes(service: Service) -> list[Route]:
    served, metrics = service.served, service.metrics

    async def v1_models(request: Request) -> Response:
        async def work(rid: str) -> Response:
            name, version, label, verb = parse_model_path(request.path_params["rest"])
            if request.method in ("GET", "HEAD"):
                if verb == "metadata":
                    model, v = served.get(name, version, label=label)
                    return json_response(served.metadata(name, model, v), 200, rid)
                if verb:
                    raise RequestError(404, f"no such endpoint: GET :{verb}")
                return json_response(served.status(name), 200, rid)
            if verb != "predict":
                raise RequestError(404, f"no such endpoint: POST :{verb or '(none)'}; use :predict")
            model, v = served.get(name, version, label=label, request_id=rid)
            rows, style = await service.rows_of(await read_body(request), tf_serving)
            preds, proba = await service.predict(
                model, v, name, rows, rid, unrouted=version is None and label is None
            )
            metrics.requests.labels(name, str(v), "v1", "200").inc()
            if style == "column":
                outputs = {"predictions": preds, "probabilities": proba}
                return json_response({"outputs": outputs, "model_version": v}, 200, rid)
            doc = {"predictions": preds, "probabilities": proba, "model_version": v}
            return json_response(doc, 200, rid)

        return await service.answer(request, "v1", error, work)

    return [Route("/v1/models/{rest:path}", v1_models, methods=["GET", "POST"])]
