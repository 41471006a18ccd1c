"""The connection limits (`serving.connections`, `serving.limits`) on a real uvicorn
server in this process, with the limits shortened so each test takes about a second."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import pytest
import uvicorn

from mlstage.serving import connections, limits
from mlstage.serving.app import create_app
from mlstage.serving.connections import GuardedProtocol
from mlstage.stages.deploy import deploy
from mlstage.store.store import Store

from .conftest import NO_CHECK, free_port, row

PREDICT = (
    b"POST /v1/models/income:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
)


@pytest.fixture
def port(here, tmp_path, monkeypatch):
    monkeypatch.setattr(connections, "HEADER_SECONDS", 0.5)
    monkeypatch.setattr(connections, "BODY_SECONDS", 0.5)
    monkeypatch.setattr(connections, "BODY_GRACE_SECONDS", 0.5)
    monkeypatch.setattr(limits, "BODY_SECONDS", 0.5)
    monkeypatch.setattr(GuardedProtocol, "limit", 4)
    monkeypatch.setattr(connections, "WRITE_SECONDS", 1.0)
    reg = tmp_path / "reg"
    deploy(Store.open(), "m1", "e1", reg, name="income", check=NO_CHECK)
    port = free_port()
    config = uvicorn.Config(
        create_app(reg, watch=False), host="127.0.0.1", port=port, http=GuardedProtocol,
        timeout_keep_alive=1, log_level="warning",
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(10)


def connect(port) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(5)
    return s


def answer(s: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            part = s.recv(65536)
        except TimeoutError:
            return out
        if not part:
            return out
        out += part


def good_request(port) -> int:
    body = json.dumps({"instances": [row()]}).encode()
    with connect(port) as s:
        s.sendall(PREDICT + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        return int(answer(s).split(b" ", 2)[1])


def test_headers_that_do_not_arrive_in_time_are_408(port):
    silent, partial = connect(port), connect(port)
    partial.sendall(b"POST /v1/models/income:predict HTTP/1.1\r\nHost: x\r\n")
    start = time.monotonic()
    for s in (silent, partial):
        got = answer(s)
        assert got.startswith(b"HTTP/1.1 408") and b"within 0.5 s" in got
    assert time.monotonic() - start < 3
    assert good_request(port) == 200


def test_a_body_that_does_not_arrive_in_time_is_408(port):
    with connect(port) as s:
        s.sendall(PREDICT + b"Content-Length: 100\r\n\r\n" + b'{"instances": ')
        got = answer(s)
    assert got.startswith(b"HTTP/1.1 408") and b"did not arrive within 0.5 s" in got
    assert b"connection: close" in got.lower()


def test_idle_keep_alive_connections_are_closed(port):
    body = json.dumps({"instances": [row()]}).encode()
    with connect(port) as s:
        s.sendall(PREDICT + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        time.sleep(0.3)
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        start = time.monotonic()
        assert answer(s) == b"" and time.monotonic() - start < 3  # closed by the server


def test_oversized_headers_are_431_and_not_logged_as_invalid(port, caplog):
    with caplog.at_level(logging.WARNING), connect(port) as s:
        s.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: " + b"a" * 60_000 + b"\r\n\r\n"
        )
        got = answer(s)
    assert got.startswith(b"HTTP/1.1 431") and b"over 16384 bytes" in got
    assert "Invalid HTTP request" not in caplog.text
    assert good_request(port) == 200


def test_connections_past_the_limit_are_503_with_retry_after(port):
    held = [connect(port) for _ in range(4)]
    try:
        time.sleep(0.1)
        with connect(port) as extra:
            got = answer(extra)
        assert got.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in got
    finally:
        for s in held:
            s.close()
    time.sleep(0.2)
    assert good_request(port) == 200


def test_a_chunked_body_over_the_limit_is_refused_while_it_arrives(port):
    with connect(port) as s:
        s.sendall(PREDICT + b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n" % (1 << 20) + b"x" * (1 << 20) + b"\r\n"
        sent = 0
        try:
            for _ in range(64):
                s.sendall(chunk)
                sent += 1
        except OSError:
            pass  # the server answered and closed: what is sent after that is refused
        got = answer(s)
    assert got.startswith(b"HTTP/1.1 413") and b"connection: close" in got.lower()
    assert sent < 64


def test_a_header_that_never_ends_is_431_before_it_grows(port):
    with connect(port) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: ")
        sent = 0
        try:
            for _ in range(200):
                s.sendall(b"a" * 65536)
                sent += 1
        except OSError:
            pass
        got = answer(s)
    assert got.startswith(b"HTTP/1.1 431") and sent < 200


def test_a_pipelined_request_does_not_cut_into_the_answer_before_it(port, monkeypatch):
    from mlstage.model.artifact import Model

    real = Model.predict_rows

    def slow(self, rows):  # longer than the 0.5 s header limit
        time.sleep(1.0)
        return real(self, rows)

    monkeypatch.setattr(Model, "predict_rows", slow)
    big = json.dumps({"instances": [row()] * 100}).encode()
    with connect(port) as s:
        s.sendall(PREDICT + b"Content-Length: %d\r\n\r\n" % len(big) + big + b"GET /heal")
        got = answer(s)
    assert got.startswith(b"HTTP/1.1 200"), got[:100]
    assert b'"model_version":1' in got  # the whole answer came before any close


def test_answers_the_client_never_reads_do_not_hold_the_connection(port):
    big = json.dumps({"instances": [row()] * 5000}).encode()
    s = connect(port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    for _ in range(8):
        s.sendall(PREDICT + b"Content-Length: %d\r\n\r\n" % len(big) + big)
    time.sleep(4)  # WRITE_SECONDS is 1 s here
    s.settimeout(1)
    got = b""
    try:
        while part := s.recv(1 << 20):
            got += part
    except OSError:
        pass  # reset by the server: what it had not sent is dropped
    s.close()
    assert got.count(b"HTTP/1.1 200") < 8
    assert good_request(port) == 200


def test_a_large_body_sent_with_its_headers_is_not_counted_as_headers(port):
    big = json.dumps({"instances": [row()] * 2000}).encode()
    with connect(port) as s:
        s.sendall(PREDICT + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(big) + big)
        assert answer(s).startswith(b"HTTP/1.1 200")
