"""What the server accepts from a client, and how long it waits: one place for every limit.

Each limit answers with a 4xx naming it (README: Serving limits), so a client learns
what to change, and none lets one client take the memory or the connections of others:

- a body is read as a stream and refused (413) as soon as it passes MAX_BODY_BYTES,
  whether or not it said its length; it must arrive within BODY_SECONDS (408);
- JSON may nest at most MAX_JSON_DEPTH levels (a row is 3: body, list, object), and
  its strings must be valid UTF-8 (a lone surrogate escape such as "\\ud800" is not);
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
MAX_JSON_DEPTH = 32
BODY_SECONDS = 30.0  # the whole body, from the end of the headers
HEADER_SECONDS = 10.0  # a request's line and headers, from its first byte (or the connection)
MAX_HEADER_BYTES = 16 * 1024  # the request line and headers together
KEEP_ALIVE_SECONDS = 5  # an idle connection between requests
MAX_CONNECTIONS = 2048  # open at once; beyond, a new connection is answered 503 and closed
REQUEST_SECONDS = 30.0  # a prediction that takes longer is abandoned with 504
SHUTDOWN_SECONDS = 5  # SIGTERM: in-flight requests get this long to finish
IN_LOOP_ROWS = 64  # small requests are predicted on the event loop; larger ones in a thread

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


async def read_body(request) -> bytes:
    """The body, read chunk by chunk: 413 once it passes MAX_BODY_BYTES (never buffered
    beyond it), 408 when it has not all arrived within BODY_SECONDS."""
    limit, seconds = MAX_BODY_BYTES, BODY_SECONDS
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise RequestError(413, f"the body is over the limit of {limit // 2**20} MiB")
    parts: list[bytes] = []
    size = 0

    async def read() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"the body is over the limit of {limit // 2**20} MiB")
            parts.append(chunk)

    try:
        await asyncio.wait_for(read(), seconds)
    except TimeoutError:
        raise RequestError(408, f"the body did not arrive within {seconds:g} s") from None
    request.state.body_read = True
    return b"".join(parts)


# A JSON string (with its escapes) and the brackets outside strings.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def check_depth(body: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON nested deeper than `limit` before parsing it (the parser recurses, and
    a 100,000-deep body would exhaust its stack). Costs nothing for bodies with fewer
    brackets than the limit; otherwise one pass over the text outside strings."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return
    import numpy as np

    outside = _STRING.sub(b"", body)
    codes = np.frombuffer(outside, dtype=np.uint8)
    steps = np.zeros(len(codes), dtype=np.int32)
    steps[(codes == ord("[")) | (codes == ord("{"))] = 1
    steps[(codes == ord("]")) | (codes == ord("}"))] = -1
    if len(steps) and int(np.cumsum(steps).max()) > limit:
        raise RequestError(400, f"the JSON is nested more than {limit} levels deep")


def check_text(body: bytes, rows: list[dict[str, Any]]) -> None:
    """Refuse strings that are not valid UTF-8 text: JSON can escape a lone surrogate
    (\\ud800), which no UTF-8 encoder (the request log, a response) accepts."""
    if not _SURROGATE.search(body):
        return
    for i, row in enumerate(rows):
        for key, value in row.items():
            for text in (key, value):
                if isinstance(text, str):
                    try:
                        text.encode("utf-8")
                    except UnicodeEncodeError:
                        raise RequestError(
                            400,
                            f'row {i}, field "{key.encode("utf-8", "replace").decode()}": not'
                            " valid UTF-8 text (a lone surrogate escape such as \\ud800)",
                        ) from None
