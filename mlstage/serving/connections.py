"""Connection limits uvicorn does not have: how long a request's headers and body may
take, how large the headers may be, how long a client may leave answers unread, and how
many connections may be open at once.

uvicorn times out idle keep-alive connections (`timeout_keep_alive`) but not a client
that connects and sends its headers (or body) a byte at a time: 1,100 such half-sent
requests stayed open for good. `GuardedProtocol` is uvicorn's own httptools protocol
(passed as `uvicorn.run(http=...)`, its documented extension point) with these
additions, each answered as a plain HTTP error (when no answer is under way) and a
closed connection:

- headers not complete within HEADER_SECONDS of the connection, of the previous
  answer, or of a kept-alive request's first byte: 408;
- a request line and headers over MAX_HEADER_BYTES, counted as the bytes arrive (a
  header that never ends is refused too): 431;
- more open connections than the limit (MAX_CONNECTIONS, lowered to fit the process's
  file descriptors): the new one gets 503 and Retry-After;
- a body still arriving BODY_SECONDS (plus a grace) after its headers: closed (the app
  answers 408 first when it was reading that body);
- answers the client does not read for WRITE_SECONDS (the send buffer stays full):
  the connection is dropped.
"""

from __future__ import annotations

import logging
import resource

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .limits import BODY_SECONDS, HEADER_SECONDS, MAX_CONNECTIONS, MAX_HEADER_BYTES

BODY_GRACE_SECONDS = 5.0  # lets the app's own 408 reach the client before the close
WRITE_SECONDS = 30.0
FD_RESERVE = 256  # descriptors kept for model files, logs and the registry's watcher


def connection_limit() -> int:
    """MAX_CONNECTIONS, or fewer when the process may not open that many files: past the
    descriptor limit a new connection would be reset unanswered, and loads would fail."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(16, min(MAX_CONNECTIONS, soft - FD_RESERVE))


class GuardedProtocol(HttpToolsProtocol):
    limit: int | None = None  # connection_limit(), computed once per process

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self._timer = None
        self._write_timer = None
        self._header_bytes = 0
        self._in_headers = True  # bytes now arriving belong to a request's line or headers
        self._completed = 0  # requests whose headers ended on this connection
        self._timer_after_answer = False
        super().connection_made(transport)
        if GuardedProtocol.limit is None:
            GuardedProtocol.limit = connection_limit()
        if len(self.connections) > GuardedProtocol.limit:
            self._refuse(503, f"more than {GuardedProtocol.limit} open connections; retry shortly")
            return
        self._arm(HEADER_SECONDS, self._headers_late)

    def connection_lost(self, exc) -> None:
        self._disarm()
        self._write_disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float, handler) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, handler)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _answering(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _refuse(self, status: int, message: str) -> None:
        """Answer with `status` and close; only close when an answer is under way (a
        pipelined next request must not cut into it)."""
        if self.transport.is_closing():
            return
        if not self._answering():
            body = message.encode()
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
                f"content-type: text/plain; charset=utf-8\r\ncontent-length: {len(body)}\r\n"
                "connection: close\r\n" + ("retry-after: 1\r\n" if status == 503 else "") + "\r\n"
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

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        before, completed = self._in_headers, self._completed
        super().data_received(data)
        # httptools holds an unfinished header line whole: count what arrives until the
        # headers end, so one that never ends is refused too (a chunk in which headers
        # ended is not counted: the rest of it is a body or the next request)
        if (
            before
            and self._in_headers
            and self._completed == completed
            and not self.transport.is_closing()
        ):
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                self._too_large()

    def _too_large(self) -> None:
        self._refuse(431, f"the request line and headers are over {MAX_HEADER_BYTES} bytes")
        # uvicorn logs the parser's stop as an invalid request: it was answered already
        self.logger = _ANSWERED

    # writes the client does not read
    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(WRITE_SECONDS, self.transport.abort)

    def resume_writing(self) -> None:
        self._write_disarm()
        super().resume_writing()

    def _write_disarm(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    # httptools' parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._in_headers = True
        if self._answering():  # pipelined: its headers' time starts with the answer
            self._timer_after_answer = True
        elif self._timer is None:  # a kept-alive connection's next request
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
            self._too_large()
            raise _Refused

    def on_headers_complete(self) -> None:
        self._completed += 1
        self._in_headers = False
        self._header_bytes = 0
        self._timer_after_answer = False
        self._arm(BODY_SECONDS + BODY_GRACE_SECONDS, self._body_late)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_headers = True
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._timer_after_answer and not self.transport.is_closing():
            self._timer_after_answer = False
            self._arm(HEADER_SECONDS, self._headers_late)


_ANSWERED = logging.getLogger("mlstage.serve.answered")
_ANSWERED.addFilter(lambda record: False)


class _Refused(Exception):
    """Stops the parser once the connection has been answered and closed."""


_REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large",
            503: "Service Unavailable"}  # fmt: skip
