"""What the server accepts from a client, and how long it waits: one place for every limit.

Each limit answers with a 4xx naming it (README: Serving limits), so a client learns
what to change, and none lets one client take the memory or the connections of others:

- a body is read as a stream and refused (413) as soon as it passes MAX_BODY_BYTES,
  whether or not it said its length; it must arrive within BODY_SECONDS (408);
- a body must be valid UTF-8, and its JSON strings valid text (a lone surrogate escape
  such as "\\ud800" is not); a field's value is a scalar (a list or an object is a 400
  naming the field), so an accepted row is 3 levels deep; the parser's own guard
  refuses nesting past about 1,000 levels (Python's recursion limit) with a 400;
- at most MAX_ROWS rows, counted before any row is built;
- a request id is kept only when it is at most 128 characters of [A-Za-z0-9._:-];
  anything else is replaced by a generated id (it is echoed and logged).

The connection limits (header timeout and size, keep-alive, connection count) are
enforced below the app, in `connections`.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_ROWS = 10_000
MAX_BODIES_BYTES = 256 * 1024 * 1024  # every body being read at once, per worker: 503 past it
BODY_SECONDS = 30.0  # the whole body, from the end of the headers
HEADER_SECONDS = 10.0  # a request's line and headers, from its first byte (or the connection)
MAX_HEADER_BYTES = 16 * 1024  # the request line and headers together
KEEP_ALIVE_SECONDS = 5  # an idle connection between requests
MAX_CONNECTIONS = 2048  # open at once; beyond, a new connection is answered 503 and closed
REQUEST_SECONDS = 30.0  # a prediction that takes longer is abandoned with 504
SHUTDOWN_SECONDS = 5  # SIGTERM: in-flight requests get this long to finish
IN_LOOP_ROWS = 64  # small requests are predicted on the event loop; larger ones in a thread
IN_LOOP_BYTES = 64 * 1024  # likewise for parsing a body

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestError(Exception):
    """A client mistake (or an unavailable model): the status and what to say."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def request_id(sent: str | None) -> str:
    """The client's X-Request-ID when it is a short token, else a new one."""
    if sent and REQUEST_ID.fullmatch(sent):
        return sent
    return uuid.uuid4().hex


class BodyBudget:
    """The bytes of the bodies held at once, from their first byte until their answer
    (per worker; only the event loop changes it, so no lock). Each body is at most
    16 MiB, but 2,048 of them would be 32 GB: past MAX_BODIES_BYTES a request is 503
    (retry shortly)."""

    held = 0

    @classmethod
    def release(cls, request) -> None:
        cls.held -= getattr(request.state, "body_held", 0)
        request.state.body_held = 0


async def read_body(request) -> bytes:
    """The body, read chunk by chunk: 413 once it passes MAX_BODY_BYTES (never buffered
    beyond it), 408 when it has not all arrived within BODY_SECONDS, 503 when the
    bodies being read at once pass MAX_BODIES_BYTES; a client that hangs up is 499."""
    from starlette.requests import ClientDisconnect

    limit, seconds = MAX_BODY_BYTES, BODY_SECONDS
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise RequestError(413, f"the body is over the limit of {limit // 2**20} MiB")
    body = bytearray()  # one growing block (memory-mapped once large): freed whole
    size = 0

    try:
        async with asyncio.timeout(seconds):  # a deadline, not a task per request
            async for chunk in request.stream():
                size += len(chunk)
                BodyBudget.held += len(chunk)
                if size > limit:
                    raise RequestError(413, f"the body is over the limit of {limit // 2**20} MiB")
                if BodyBudget.held > MAX_BODIES_BYTES:
                    raise RequestError(503, "the server is reading too many bodies; retry shortly")
                body += chunk
    except TimeoutError:
        raise RequestError(408, f"the body did not arrive within {seconds:g} s") from None
    except ClientDisconnect:
        raise RequestError(
            499, "the client closed the connection before its body arrived"
        ) from None
    finally:
        request.state.body_held = size  # released with the answer (BodyBudget.release)
    request.state.body_read = True
    return bytes(body)


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def decode_text(body: bytes) -> str:
    """The body as UTF-8 text, strictly: invalid bytes (raw surrogates included, which
    json.loads on bytes would let through) are a 400 naming the byte offset."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RequestError(400, f"the body is not valid UTF-8 (at byte {e.start})") from None


def check_text(text: str, rows: list[dict[str, Any]]) -> None:
    """Refuse strings that are not valid UTF-8 text: JSON can escape a lone surrogate
    (\\ud800), which no UTF-8 encoder (the request log, a response) accepts."""
    if "\\u" not in text:  # only an escape can make one once the body decoded strictly
        return
    for i, row in enumerate(rows):
        for key, value in row.items():
            for part in (key, value):
                if isinstance(part, str) and _SURROGATE.search(part):
                    shown = key.encode("utf-8", "replace").decode()
                    raise RequestError(
                        400,
                        f'row {i}, field "{shown}": not valid UTF-8 text (a lone surrogate'
                        " escape such as \\ud800)",
                    )
