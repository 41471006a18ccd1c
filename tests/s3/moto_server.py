"""moto's S3 server, single-threaded, on loopback: `python moto_server.py PORT`.

`python -m moto.server` runs werkzeug threaded; one thread makes each request (and so
each conditional write's check-and-set) whole before the next, as a real S3 does per
key, and keeps the server's timing simple. HTTP/1.0 replies (werkzeug's default when
single-threaded) close each connection, so no client holds the one thread.
"""

from __future__ import annotations

import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


def main() -> None:
    port = int(sys.argv[1])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple("127.0.0.1", port, app, threaded=False, use_reloader=False)


if __name__ == "__main__":
    main()
