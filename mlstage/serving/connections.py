"""Connection limits uvicorn does not have: how long a request's headers and body may
take, how large the headers may be, and how many connections may be open at once.

uvicorn times out idle keep-alive connections (`timeout_keep_alive`) but not a client
that connects and sends its headers (or body) a byte at a time: 1,100 such half-sent
requests stayed open for good. `GuardedProtocol` is uvicorn's own httptools protocol
(passed as `uvicorn.run(http=...)`, its documented extension point) with three
additions, each answered as a plain HTTP error and a closed connection:

- headers not complete within HEADER_SECONDS of the connection (or of a kept-alive
  request's first byte): 408;
- a request line and headers over MAX_HEADER_BYTES: 431;
- more than MAX_CONNECTIONS open connections: the new one gets 503 (and Retry-After);
- a body still arriving BODY_SECONDS (plus a grace) after its headers: the connection
  is closed (the app answers 408 first when it was reading that body).
"""

from __future__ import annotations

import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .limits import BODY_SECONDS, HEADER_SECONDS, MAX_CONNECTIONS, MAX_HEADER_BYTES

BODY_GRACE_SECONDS = 5.0  # lets the app's own 408 reach the client before the close


class GuardedProtocol(HttpToolsProtocol):
    def connection_made(self, transport) -> None:  # type: ignore[override]
        self._timer = None
        self._header_bytes = 0
        super().connection_made(transport)
        if len(self.connections) > MAX_CONNECTIONS:
            self._refuse(503, f"more than {MAX_CONNECTIONS} open connections; retry shortly")
            return
        self._arm(HEADER_SECONDS, self._headers_late)

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float, handler) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, handler)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _refuse(self, status: int, message: str) -> None:
        """Answer with `status` and close: outside any request the app could answer."""
        if self.transport.is_closing():
            return
        body = message.encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n"
            + ("retry-after: 1\r\n" if status == 503 else "")
            + "\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()

    def _headers_late(self) -> None:
        self._timer = None
        self._refuse(408, f"the request's headers did not arrive within {HEADER_SECONDS:g} s")

    def _body_late(self) -> None:
        self._timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        if not self.transport.is_closing():  # nothing to answer on a connection already refused
            super().send_400_response(msg)

    # httptools' parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        if self._timer is None:  # a kept-alive connection's next request
            self._arm(HEADER_SECONDS, self._headers_late)

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > MAX_HEADER_BYTES:
            self._refuse(431, f"the request line and headers are over {MAX_HEADER_BYTES} bytes")
            # uvicorn logs the parser's stop as an invalid request: it was answered already
            self.logger = _ANSWERED
            raise _Refused

    def on_headers_complete(self) -> None:
        self._arm(BODY_SECONDS + BODY_GRACE_SECONDS, self._body_late)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()


_ANSWERED = logging.getLogger("mlstage.serve.answered")
_ANSWERED.addFilter(lambda record: False)


class _Refused(Exception):
    """Stops the parser once the connection has been answered and closed."""


_REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large",
            503: "Service Unavailable"}  # fmt: skip
