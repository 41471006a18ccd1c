"""Starting the server: checks first (registry, port), then uvicorn.

uvicorn handles SIGTERM gracefully: it stops accepting, closes idle connections,
finishes the requests in flight (for at most SHUTDOWN_SECONDS: a client still sending
its body is not waited for longer), then runs the app's shutdown, which flushes the
request logs. The connection limits are `connections.GuardedProtocol`'s.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
from pathlib import Path

from ..core.s3url import S3Url, as_s3
from ..errors import BadInput, opt
from .app import CONFIG_ENV, create_app
from .connections import GuardedProtocol, connection_limit
from .limits import KEEP_ALIVE_SECONDS, SHUTDOWN_SECONDS
from .memory import few_arenas


def check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise BadInput(
                    f"port {port} on {host} is in use (is another server running? pass {opt('port')})"
                ) from None
            raise BadInput(f"cannot listen on {host}:{port}: {e.strerror}") from None


def run(
    registry: Path,
    *,
    host: str,
    port: int,
    workers: int,
    log_dir: Path | None,
    log_exclude: list[str],
    log_sample: float,
) -> None:
    import signal

    import uvicorn

    # The CLI restores SIGPIPE's default (so `mlstage log | head` ends quietly); a server
    # must ignore it instead, or a client closing its connection mid-response kills it.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    shown = str(registry)
    remote = as_s3(registry)
    if remote is not None:  # object storage: served from a local mirror, polled
        registry, shown = mirror_registry(remote), str(remote)
    registry = Path(registry)
    if not registry.is_dir():
        raise BadInput(
            "no such registry directory (deploy a model into it first)", file=str(registry)
        )
    if workers < 1:
        raise BadInput(f"{opt('workers')} must be at least 1")
    if not 0 < log_sample <= 1:
        raise BadInput(f"{opt('log_sample')} is a fraction in (0, 1]")
    check_port(host, port)
    _more_files()
    few_arenas()
    sys.stderr.write(
        f"serve: {shown} on http://{host}:{port} with {workers} worker(s),"
        f" at most {connection_limit()} connections each\n"
    )
    settings = dict(
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        http=GuardedProtocol,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=SHUTDOWN_SECONDS,
    )
    cfg = {
        "registry": str(registry.absolute()),
        "log_dir": str(log_dir.absolute()) if log_dir else None,
        "log_exclude": list(log_exclude),
        "log_sample": log_sample,
    }
    if workers == 1:
        uvicorn.run(create_app(**cfg), **settings)
    else:
        os.environ[CONFIG_ENV] = json.dumps(cfg)  # each worker builds the app from these settings
        uvicorn.run("mlstage.serving.app:create_app", factory=True, workers=workers, **settings)


S3_POLL_SECONDS = 2.0  # MLSTAGE_S3_POLL_SECONDS overrides


def mirror_registry(url: S3Url) -> Path:
    """Mirror an S3 registry locally (first copy now, then a polling thread) and return
    the mirror, which the server watches as it watches a local registry."""
    import threading

    from ..store.s3registry import RegistryMirror

    mirror = RegistryMirror(url)
    try:
        mirror.sync()
    except BadInput as e:  # a version that does not verify: served without it, as locally
        sys.stderr.write(f"serve: {e}\n")
    if not any(mirror.local.iterdir()):
        raise BadInput("no model in this registry (deploy one into it first)", file=str(url))
    interval = float(os.environ.get("MLSTAGE_S3_POLL_SECONDS") or S3_POLL_SECONDS)
    mirror.start(interval, threading.Event())
    return mirror.local


def _more_files() -> None:
    """Raise the open-file limit to what the system allows (servers do: the default
    soft limit, often 1,024, is below the connection limit); the workers inherit it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass  # keep the soft limit; connection_limit() fits under it
