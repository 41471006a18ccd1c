"""The soak test (issue 15): minutes of a hostile day compressed into about a minute on
loopback. A real `mlstage serve` takes good clients throughout, bad clients of every
kind, slow and half-sent requests, oversized chunked bodies, and an operator who
deploys, rolls back, removes versions and points at broken ones. Asserted: no good
request fails, no answer is a 5xx, a 200 MB chunked body costs under 100 MB of memory,
every slow client is dropped, no load is stuck, and SIGTERM ends it in seconds."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import threading
import time
from collections import Counter

from mlstage.stages.deploy import deploy, rollback
from mlstage.store.registry import pointed, read_serving, write_serving
from mlstage.store.store import Store

from .conftest import NO_CHECK, row, start_server, wait_ready

PATH = "/v1/models/income:predict"
GOOD = json.dumps({"instances": [row()]}).encode()
JSON = {"content-type": "application/json"}
BAD = [  # (method, path, body, headers)
    ("POST", PATH, b"{not json", JSON),
    ("POST", PATH, b"[" * 50_000 + b"]" * 50_000, JSON),
    ("POST", PATH, b'{"instances": [{"age": "\\ud800"}]}', JSON),
    ("POST", PATH, json.dumps({"instances": [{"age": 40}]}).encode(), JSON),
    ("POST", PATH, json.dumps({"instances": [row(age="old")]}).encode(), JSON),
    ("POST", PATH, json.dumps({"instances": [row()] * 10_001}).encode(), JSON),
    ("PUT", PATH, GOOD, JSON),
    ("POST", "/v1/models/nope:predict", GOOD, JSON),
    ("GET", "/v1/models/income/versions/x", b"", {}),
    ("GET", "/no/such/path", b"", {}),
    ("POST", "/invocations", b"age\n1,2\n", {"content-type": "text/csv"}),
    ("POST", "/invocations", GOOD, {"content-type": "text/plain"}),
    ("POST", PATH, b"", {**JSON, "content-length": str(1 << 30)}),
    ("GET", "/healthz", b"", {"x-request-id": "r" * 60_000}),
]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def send_chunked(port: int, mib: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                  b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n")  # fmt: skip
        chunk = b"%x\r\n" % (1 << 20) + b"[" * (1 << 20) + b"\r\n"
        try:
            for _ in range(mib):
                s.sendall(chunk)
        except OSError:
            pass
        try:
            return s.recv(4096)
        except OSError:
            return b""


def test_soak(here, tmp_path):
    reg, store = tmp_path / "reg", Store.open()
    deploy(store, "m1", "e1", reg, name="income", check=NO_CHECK)
    proc, port = start_server(reg, tmp_path / "serve.log", "--log-dir", str(tmp_path / "logs"))
    stop, quiet = threading.Event(), threading.Event()
    good, good_failed, bad_codes, bad_errors = Counter(), [], Counter(), []

    def good_client():
        c = None
        while not stop.is_set():
            try:
                c = c or http.client.HTTPConnection("127.0.0.1", port, timeout=20)
                c.request("POST", PATH, GOOD, JSON)
                r = c.getresponse()
                body = r.read()
                if r.status == 200:
                    good[json.loads(body)["model_version"]] += 1
                else:
                    good_failed.append((r.status, body[:200]))
            except (OSError, http.client.HTTPException) as e:
                good_failed.append(repr(e))
                c = None

    def bad_client(offset):
        i = offset
        while not stop.is_set():
            if quiet.is_set():  # while the bodies' memory is measured
                time.sleep(0.05)
                continue
            method, path, body, headers = BAD[i % len(BAD)]
            i += 1
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            try:
                c.request(method, path, body, headers)
                bad_codes[c.getresponse().status] += 1
            except (OSError, http.client.HTTPException) as e:
                bad_errors.append((path, repr(e)))
            finally:
                c.close()

    try:
        wait_ready(port, proc)
        pid = proc.pid
        threads = [threading.Thread(target=good_client) for _ in range(4)]
        threads += [threading.Thread(target=bad_client, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        # slow clients: half-sent headers and half-sent bodies, held open
        slow = []
        for i in range(400):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n")
            if i % 8 == 0:  # these finish their headers but not their body
                s.sendall(b"Content-Length: 1000\r\n\r\n{")
            slow.append(s)
        started = time.monotonic()
        # a 200 MB chunked body, and three more at once; measured from a warm server
        # (the request log's first flush imports polars: not the bodies' doing), with
        # the bad clients paused (their 10,001-row bodies, parsed in threads, are not the
        # chunked bodies' doing either; the good clients go on)
        time.sleep(3)
        quiet.set()
        time.sleep(1.5)
        before = rss_mb(pid)
        assert send_chunked(port, 200).startswith(b"HTTP/1.1 413")
        one = rss_mb(pid) - before
        big = [threading.Thread(target=send_chunked, args=(port, 100)) for _ in range(3)]
        for t in big:
            t.start()
        for t in big:
            t.join()
        time.sleep(1.5)  # the watcher hands freed memory back every second
        grown = rss_mb(pid) - before
        quiet.clear()
        # the operator's day
        folder = reg / "income"
        deploy(store, "m2", "e2", reg, check=NO_CHECK)  # version 2
        time.sleep(3)
        rollback(reg, to=1)
        time.sleep(2)
        # Damaged versions are made beside the registry and moved in whole, as `deploy`
        # makes a version: a folder seen half-copied would be a problem of its own.
        shutil.copytree(folder / "2", tmp_path / "v3")  # a version whose model was damaged
        os.chmod(tmp_path / "v3" / "model.skops", 0o644)
        (tmp_path / "v3" / "model.skops").write_bytes(b"damaged")
        os.rename(tmp_path / "v3", folder / "3")
        write_serving(folder, pointed(read_serving(folder), 3, "x", "deploy", "soak: broken"))
        time.sleep(3)
        shutil.copytree(folder / "2", tmp_path / "v4")  # a model file that is a device
        os.chmod(tmp_path / "v4" / "model.skops", 0o644)
        os.remove(tmp_path / "v4" / "model.skops")
        os.symlink("/dev/zero", tmp_path / "v4" / "model.skops")
        os.rename(tmp_path / "v4", folder / "4")
        write_serving(folder, pointed(read_serving(folder), 4, "x", "deploy", "soak: device"))
        time.sleep(3)
        shutil.rmtree(folder / "2")  # not served: gone
        rollback(reg, to=1)
        time.sleep(2)
        shutil.rmtree(folder / "1")  # the served version's directory: kept in memory
        time.sleep(3)
        deploy(store, "m2", "e2", reg, check=NO_CHECK)  # a fresh version 5 replaces it
        time.sleep(3)
        # the slow clients: all answered 408 and dropped by now
        wait = max(0.0, 42 - (time.monotonic() - started))
        time.sleep(wait)
        dropped = 0
        for s in slow:
            s.settimeout(0.5)
            try:
                got = s.recv(4096)
                dropped += got == b"" or got.startswith(b"HTTP/1.1 408")
            except TimeoutError:
                pass  # still open: not dropped
            except OSError:
                dropped += 1  # reset by the server
            s.close()
        stop.set()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads)
        log = (tmp_path / "serve.log").read_text()
        assert good_failed == [], (good_failed[:5], log[-3000:])
        assert set(good) >= {1, 2, 5}, (good, log[-3000:])
        assert sum(good.values()) > 1000
        assert not [c for c in bad_codes if c >= 500], (bad_codes, log[-3000:])
        assert all(400 <= c < 500 for c in bad_codes) and sum(bad_codes.values()) > 100
        assert not [e for e in bad_errors if "/healthz" not in e[0]], bad_errors[:5]
        assert one < 100, f"{one:.0f} MB after the 200 MB chunked body"
        assert grown < 100, (
            f"{grown:.0f} MB after the chunked bodies ({one:.0f} MB after the first)"
        )
        assert dropped == len(slow)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/metrics")
        metrics = c.getresponse().read().decode()
        assert "mlstage_stuck_loads 0.0" in metrics
        assert 'mlstage_serving_problem{model="income"} 0.0' in metrics
        threads_now = len(os.listdir(f"/proc/{pid}/task"))
        assert threads_now < 40, threads_now
        assert (
            log.count("version 3 does not load") == 1 and log.count("version 4 does not load") == 1
        )
        assert "Traceback" not in log
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        assert time.monotonic() - t0 < 10
        assert "logged rows written" in (tmp_path / "serve.log").read_text()
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()


def test_sigterm_stops_in_seconds_with_clients_mid_request(here, tmp_path):
    """A client mid-body and an idle kept-alive one do not hold a shutdown; a request
    sent just before SIGTERM is still answered."""
    reg = tmp_path / "reg"
    deploy(Store.open(), "m1", "e1", reg, name="income", check=NO_CHECK)
    proc, port = start_server(reg, tmp_path / "serve.log")
    try:
        wait_ready(port, proc)
        mid = socket.create_connection(("127.0.0.1", port))
        mid.sendall(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Length: 1000\r\n\r\n{")  # fmt: skip
        idle = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        idle.request("GET", "/healthz")
        assert idle.getresponse().read()
        last = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        last.request("POST", PATH, json.dumps({"instances": [row()] * 2000}).encode(), JSON)
        # "just before": the server must have read the request (on a loaded machine it
        # may not have within microseconds; uvicorn then closes the connection as idle)
        time.sleep(0.3)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert last.getresponse().status == 200
        proc.wait(timeout=20)
        assert time.monotonic() - t0 < 8, (tmp_path / "serve.log").read_text()
        mid.close()
    finally:
        if proc.poll() is None:
            proc.kill()
