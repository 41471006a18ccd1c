"""What every endpoint shares: the served models, the metrics, the request log, and the
path of a request (its body parsed off the event loop when large, its rows predicted,
logged and counted; its errors answered in the shape of the API it came by)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..errors import BadInput
from .limits import (
    IN_LOOP_BYTES,
    IN_LOOP_ROWS,
    REQUEST_SECONDS,
    BodyBudget,
    RequestError,
    check_text,
    decode_text,
    request_id,
)
from .metrics import Metrics
from .models import ModelLookupError, ServedModels

# An API's error body for (status, message).
ErrorShape = Callable[[int, str], dict[str, Any]]


def json_response(
    data: Any, status: int, rid: str, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        json.dumps(data, separators=(",", ":"), default=str),
        status_code=status,
        media_type="application/json",
        headers={"X-Request-ID": rid, **(headers or {})},
    )


def rid_of(request: Request) -> str:
    return request_id(request.headers.get("x-request-id"))


def _closing(request: Request, status: int) -> dict[str, str]:
    """`Connection: close` on an error answered before the body was read (unknown model,
    over the size limit, too slow): otherwise the server would go on reading, and
    throwing away, whatever the client still sends. Retry-After on a 503."""
    headers = {"Retry-After": "1"} if status == 503 else {}
    if request.method == "POST" and not getattr(request.state, "body_read", False):
        headers["Connection"] = "close"
    return headers


class Service:
    def __init__(self, served: ServedModels, metrics: Metrics, reqlog=None, shadow=None):
        self.served, self.metrics, self.reqlog, self.shadow = served, metrics, reqlog, shadow
        self._no_shadow_said = False

    async def answer(
        self,
        request: Request,
        endpoint: str,
        shape: ErrorShape,
        work: Callable[[str], Awaitable[Response]],
    ) -> Response:
        """`work(request id)`'s response; a client mistake (or an unavailable model) in
        `shape`; anything unexpected a 500 that says only its request id."""
        rid = rid_of(request)
        try:
            return await work(rid)
        except (RequestError, ModelLookupError) as e:
            self.metrics.errors.labels(endpoint, str(e.status)).inc()
            return json_response(
                shape(e.status, e.message), e.status, rid, _closing(request, e.status)
            )
        except Exception as e:  # a request never crashes the server
            self.metrics.errors.labels(endpoint, "500").inc()
            self.internal(request.url.path, rid, e)
            message = f"internal error (request {rid}; see the server's log)"
            return json_response(shape(500, message), 500, rid)
        finally:
            BodyBudget.release(request)

    def internal(self, where: str, rid: str, e: Exception) -> None:
        """An unexpected error: the details go to the server's log, never to the client."""
        import traceback

        self.served._log(f"internal error on {where} (request {rid}): {type(e).__name__}: {e}")
        sys.stderr.write(traceback.format_exc())

    @staticmethod
    async def off_loop(work, size: int, small: int):
        """Run `work` on the event loop when `size` is small, else in a thread (within
        REQUEST_SECONDS), so a large request never holds up the small ones."""
        from starlette.concurrency import run_in_threadpool

        if size <= small:
            return work()
        try:
            async with asyncio.timeout(REQUEST_SECONDS):
                return await run_in_threadpool(work)
        except TimeoutError:
            raise RequestError(504, f"the request took longer than {REQUEST_SECONDS:g} s") from None

    async def rows_of(self, body: bytes, parse) -> Any:
        """A body parsed by `parse` (text -> rows, or a tuple whose first item is the
        rows), its strings checked."""

        def work():
            text = decode_text(body)
            out = parse(text)
            check_text(text, out[0] if isinstance(out, tuple) else out)
            return out

        return await self.off_loop(work, len(body), IN_LOOP_BYTES)

    async def predict(
        self,
        model,
        version: int,
        name: str,
        rows: list[dict[str, Any]],
        rid: str,
        *,
        unrouted: bool = False,
    ):
        """(predictions, probabilities as lists or None) for raw rows, logged and counted;
        an `unrouted` request (no version, no label) answered by the stable version is
        copied to a running shadow."""
        if not rows:
            raise RequestError(400, "no rows to predict")

        def work():
            typed = [model.coerce(r) for r in rows]
            return typed, *model.predict_rows(typed)

        start = time.perf_counter()
        try:
            typed, preds, proba = await self.off_loop(work, len(rows), IN_LOOP_ROWS)
        except BadInput as e:
            raise RequestError(400, e.reason) from None
        self.metrics.latency.labels(name, str(version)).observe(time.perf_counter() - start)
        self.metrics.rows.labels(name, str(version)).inc(len(typed))
        logged = self.reqlog is not None and self.reqlog.wanted()
        if logged:
            self.reqlog.add(rid, name, version, typed, preds, proba, model.class_names)
        if unrouted:
            self._copy_to_shadow(name, version, rows, rid, logged)
        return preds, (None if proba is None else proba.tolist())

    def _copy_to_shadow(self, name: str, version: int, rows, rid: str, logged: bool) -> None:
        snap = self.served.snapshot
        target = snap.shadow.get(name)
        if target is None or version != snap.served.get(name) or target == version:
            return
        if self.shadow is None:
            if not self._no_shadow_said:
                self._no_shadow_said = True
                self.served._log(
                    f"{name}: a shadow of version {target} runs, but this server has no"
                    " --log-dir to log its predictions in: no copies are made"
                )
            return
        if logged:  # sampled as the log is, so each shadow row has its answered twin
            self.shadow.offer(name, target, snap.models[name][target].id, rid, rows)
