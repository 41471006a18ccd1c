"""The Open Inference Protocol over REST (KServe's V2, spoken by NVIDIA Triton, Seldon
MLServer and KServe, and by clients such as `tritonclient`):

    GET  /v2/health/live, /v2/health/ready, /v2
    GET  /v2/models/NAME[/versions/V]            model metadata
    GET  /v2/models/NAME[/versions/V]/ready
    POST /v2/models/NAME[/versions/V]/infer

A tabular model takes one input tensor per column (as MLServer's pandas codec does),
named as the signature's inputs, of shape [rows] (or [rows, 1]), with JSON data;
datatypes follow the signature (int INT64, float FP64, bool BOOL, string, date and
datetime BYTES; any numeric datatype is read as a number). The outputs are named as
`predict`'s columns: `prediction` (BYTES for string classes, INT64 or BOOL for those
label types, FP64 for regression) and `proba_<class>` (FP64). Triton's binary-tensor
extension is not spoken: a binary request is a 400 that says to send JSON. Errors are
`{"error": "..."}`. Validation, limits, request logging, metrics and hot swap are the
other protocols'."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..version import __version__
from .api_tf import version_number
from .limits import RequestError, read_body
from .protocols import parse_json, too_many
from .service import Service, json_response, rid_of

DATATYPES = {"int": "INT64", "float": "FP64", "bool": "BOOL", "string": "BYTES",
             "date": "BYTES", "datetime": "BYTES"}  # fmt: skip
KNOWN = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
         "FP16", "FP32", "FP64", "BYTES"}  # fmt: skip


def error(status: int, message: str) -> dict:
    return {"error": message}


def output_names(model) -> list[tuple[str, str]]:
    """(name, datatype) of each output, as `predict` names its columns; no `proba_`
    outputs for a model that gives no probabilities (a tensor holds no nulls)."""
    sig = model.signature
    if sig["task"] == "regression":
        return [("prediction", "FP64")]
    label = DATATYPES.get(sig["label"].get("type", "string"), "BYTES")
    out = [("prediction", label)]
    if has_probabilities(model):
        out += [(f"proba_{c}", "FP64") for c in model.class_names]
    return out


def has_probabilities(model) -> bool:
    try:
        return hasattr(model.estimator, "predict_proba")  # SVC(probability=False) raises
    except (AttributeError, NotImplementedError):
        return False


def metadata(model, name: str, versions: list[int]) -> dict[str, Any]:
    inputs = [{"name": c, "datatype": DATATYPES.get(i["type"], "BYTES"), "shape": [-1]}
              for c, i in model.signature["inputs"].items()]  # fmt: skip
    outputs = [{"name": n, "datatype": d, "shape": [-1]} for n, d in output_names(model)]
    return {"name": name, "versions": [str(v) for v in versions], "platform": "mlstage",
            "inputs": inputs, "outputs": outputs}  # fmt: skip


def infer_rows(text: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(rows, the request document) from an inference request's per-column tensors."""
    doc = parse_json(text)
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise RequestError(400, 'send {"inputs": [{"name", "shape", "datatype", "data"}, ...]}')
    columns: dict[str, list] = {}
    for i, t in enumerate(doc["inputs"]):
        where = f"inputs[{i}]"
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise RequestError(400, f"{where}: a tensor needs a name")
        where = f'input "{t["name"]}"'
        if t["name"] in columns:
            raise RequestError(400, f"{where} is given twice")
        if t.get("datatype") not in KNOWN:
            raise RequestError(
                400,
                f"{where}: datatype {t.get('datatype')!r} is not one of {', '.join(sorted(KNOWN))}",
            )
        shape, data = t.get("shape"), t.get("data")
        if (
            not isinstance(shape, list)
            or not shape
            or not all(isinstance(d, int) and d >= 0 for d in shape)
        ):
            raise RequestError(
                400, f"{where}: shape must be a list of sizes, e.g. [rows] or [rows, 1]"
            )
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise RequestError(400, f"{where}: a column is shape [rows] or [rows, 1], not {shape}")
        too_many(shape[0])
        if isinstance(data, list) and data and all(isinstance(x, list) for x in data):
            data = [x[0] if len(x) == 1 else x for x in data]  # [[v], [v]] as [v, v]
        if not isinstance(data, list) or len(data) != shape[0]:
            raise RequestError(
                400, f"{where}: data must be a list of {shape[0]} values (its shape)"
            )
        columns[t["name"]] = data
    sizes = {len(v) for v in columns.values()}
    if len(sizes) != 1:
        raise RequestError(400, "every input tensor must have the same number of rows")
    n = sizes.pop()
    return [{c: v[i] for c, v in columns.items()} for i in range(n)], doc


def routes(service: Service) -> list[Route]:
    served, metrics = service.served, service.metrics

    def model_and_version(request: Request):
        name = request.path_params["name"]
        v = request.path_params.get("version")
        return name, (None if v is None else version_number(v))

    async def live(request: Request) -> Response:
        return json_response({"live": True}, 200, rid_of(request))

    async def ready(request: Request) -> Response:
        ok = bool(served.snapshot.served)
        return json_response({"ready": ok}, 200 if ok else 503, rid_of(request))

    async def server(request: Request) -> Response:
        doc = {"name": "mlstage", "version": __version__, "extensions": []}
        return json_response(doc, 200, rid_of(request))

    async def model_metadata(request: Request) -> Response:
        async def work(rid: str) -> Response:
            name, version = model_and_version(request)
            model, v = served.get(name, version)
            versions = sorted(served.snapshot.models.get(name, {}))
            return json_response(
                metadata(model, name, versions if version is None else [v]), 200, rid
            )

        return await service.answer(request, "v2", error, work)

    async def model_ready(request: Request) -> Response:
        async def work(rid: str) -> Response:
            name, version = model_and_version(request)
            served.get(name, version)  # 404 unknown, 503 not servable yet
            return json_response({"name": name, "ready": True}, 200, rid)

        return await service.answer(request, "v2", error, work)

    async def infer(request: Request) -> Response:
        async def work(rid: str) -> Response:
            if "inference-header-content-length" in request.headers:
                raise RequestError(400, "binary tensors are not supported: send JSON tensors"
                                        " (tritonclient: binary_data=False)")  # fmt: skip
            name, version = model_and_version(request)
            model, v = served.get(name, version, request_id=rid)
            rows, doc = await service.rows_of(await read_body(request), infer_rows)
            asked = _asked_outputs(doc, model)
            preds, proba = await service.predict(
                model, v, name, rows, rid, unrouted=version is None
            )
            metrics.requests.labels(name, str(v), "v2", "200").inc()
            outputs = []
            for out_name, datatype in output_names(model):
                if asked is not None and out_name not in asked:
                    continue
                if out_name == "prediction":
                    data = preds
                elif proba is None:  # the estimator declined at predict time after all
                    continue
                else:
                    j = model.class_names.index(out_name.removeprefix("proba_"))
                    data = [row[j] for row in proba]
                outputs.append(
                    {"name": out_name, "datatype": datatype, "shape": [len(rows)], "data": data}
                )
            answer: dict[str, Any] = {
                "model_name": name,
                "model_version": str(v),
                "outputs": outputs,
            }
            if "id" in doc:
                answer["id"] = doc["id"]
            return json_response(answer, 200, rid)

        return await service.answer(request, "v2", error, work)

    base = "/v2/models/{name}"
    return [
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2", server, methods=["GET"]),
        Route(base, model_metadata, methods=["GET"]),
        Route(base + "/versions/{version}", model_metadata, methods=["GET"]),
        Route(base + "/ready", model_ready, methods=["GET"]),
        Route(base + "/versions/{version}/ready", model_ready, methods=["GET"]),
        Route(base + "/infer", infer, methods=["POST"]),
        Route(base + "/versions/{version}/infer", infer, methods=["POST"]),
    ]


def _asked_outputs(doc: dict[str, Any], model) -> set[str] | None:
    """The outputs the request names (all when it names none); an unknown one is a 400."""
    asked = doc.get("outputs")
    if asked is None:
        return None
    if not isinstance(asked, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in asked
    ):
        raise RequestError(400, 'outputs must be a list of {"name": ...}')
    names = {n for n, _ in output_names(model)}
    for o in asked:
        if o["name"] not in names:
            raise RequestError(
                400, f'no output named "{o["name"]}"; outputs: {", ".join(sorted(names))}'
            )
    return {o["name"] for o in asked}
