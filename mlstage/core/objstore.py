"""Reading and writing objects with obstore (the Rust `object_store` crate's Python
binding): conditional PUT (`If-None-Match: *`, `If-Match`) and conditional GET
(`If-None-Match`) are first-class in its API, it streams large files in multipart
uploads, and it reads credentials and the endpoint from the standard AWS_* variables.

Every failure of the server or the network becomes `BadInput` (exit 2) naming the
object; a lost condition is `Conflict`, which callers turn into their own outcome.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import BadInput
from .s3url import S3Url

_CHUNK = 8 << 20
SINGLE_PUT = 512 << 20
# `delete_now`'s one attempt: a request that has not landed by then never will (gc's
# protocol counts on it; store.s3store.SETTLE is larger than gc's window plus this)
ONE_ATTEMPT_SECONDS = 10


class Conflict(Exception):
    """A conditional write found the object not as expected (created or replaced by
    another writer since it was read)."""


class NotModified(Exception):
    """A conditional GET: the object still has the etag given."""


@dataclass(frozen=True)
class Blob:
    data: bytes
    etag: str


@dataclass(frozen=True)
class Entry:
    """An object met in a listing: its key relative to the prefix listed, its size, and
    its LastModified (seconds since the epoch, by the server's clock)."""

    key: str
    size: int
    modified: float
    etag: str = ""


def modified(meta: dict[str, Any]) -> float:
    """An object's LastModified (from `head`) in seconds since the epoch, by the server's
    clock. S3 gives whole seconds: the true time is in [this, this + 1)."""
    return meta["last_modified"].timestamp()


def _obstore():
    try:
        import obstore
    except ImportError:
        raise BadInput("object storage (s3://) needs obstore: pip install 'mlstage[s3]'") from None
    return obstore


@cache
def _bucket(bucket: str, one_attempt: bool = False):
    _obstore()
    from obstore.store import S3Store

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    options: dict[str, Any] = {}  # AWS_* credentials and region are read from the env
    retry: Any = None
    if one_attempt:  # a bounded time: no retries, a short timeout
        options["timeout"] = f"{ONE_ATTEMPT_SECONDS}s"
        retry = {"max_retries": 0}
    if endpoint and endpoint.startswith("http://"):
        options["allow_http"] = True  # an explicit plain-HTTP endpoint (a local server)
    # Every object's content is checked against its sha256 in a manifest when read, and
    # TLS guards it in transit: signing the payload too would hash each upload again.
    config: dict[str, Any] = {"unsigned_payload": True}
    if endpoint:
        config["endpoint"] = endpoint
        # a local or non-AWS server: bucket in the path, not the host name
        config["virtual_hosted_style_request"] = False
    if not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")):
        config["region"] = "us-east-1"
    try:
        return S3Store(bucket, config=config, client_options=options, retry_config=retry)  # type: ignore[arg-type]
    except Exception as e:
        raise BadInput(f"s3://{bucket}: cannot configure the S3 client: {e}") from None


_lock = threading.Lock()


def store_of(url: S3Url, one_attempt: bool = False):
    with _lock:  # obstore stores are thread-safe; the cache is built once per bucket
        return _bucket(url.bucket, one_attempt)


def _fail(url: S3Url, e: BaseException, doing: str) -> BadInput:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return BadInput(f"cannot {doing}: {text}", file=str(url))


def _errors():
    import obstore.exceptions as E

    return E


def get(url: S3Url, *, if_none_match: str | None = None) -> Blob | None:
    """The object's bytes and etag; None when it does not exist. With `if_none_match`,
    NotModified when it still has that etag (the server answers 304, sending nothing)."""
    obstore = _obstore()

    E = _errors()
    options: Any = {"if_none_match": if_none_match} if if_none_match else None
    try:
        result = obstore.get(store_of(url), url.key, options=options)
        data = bytes(result.bytes())
        return Blob(data, result.meta["e_tag"] or "")
    except (FileNotFoundError, E.NotFoundError):
        return None
    except E.NotModifiedError:
        raise NotModified() from None
    except Exception as e:
        raise _fail(url, e, "read this object") from None


def head(url: S3Url) -> dict[str, Any] | None:
    obstore = _obstore()

    E = _errors()
    try:
        return dict(obstore.head(store_of(url), url.key))
    except (FileNotFoundError, E.NotFoundError):
        return None
    except Exception as e:
        raise _fail(url, e, "read this object's metadata") from None


def put(
    url: S3Url,
    data: bytes | Path,
    *,
    create: bool = False,
    if_match: str | None = None,
) -> str:
    """Write an object; returns its etag. `create`: only if absent (If-None-Match: *);
    `if_match`: only if it still has this etag. A lost condition is Conflict."""
    obstore = _obstore()

    E = _errors()
    mode: Any = "overwrite"
    if create:
        mode = "create"
    elif if_match is not None:
        mode = {"e_tag": if_match}
    try:
        if isinstance(data, Path):
            # one PUT up to SINGLE_PUT (S3 takes 5 GB so; fewer round trips than parts,
            # and the condition rides on it), multipart above
            multipart = data.stat().st_size > SINGLE_PUT
            with open(data, "rb") as f:
                result = obstore.put(store_of(url), url.key, f, mode=mode, chunk_size=_CHUNK,
                                     use_multipart=multipart)  # fmt: skip
        else:
            result = obstore.put(store_of(url), url.key, data, mode=mode)
        return result["e_tag"] or ""
    except (E.AlreadyExistsError, E.PreconditionError):
        raise Conflict(str(url)) from None
    except FileExistsError:
        raise Conflict(str(url)) from None
    except (FileNotFoundError, E.NotFoundError) as e:
        if if_match is None or getattr(e, "filename", None):  # not the server's 404
            raise _fail(url, e, "write this object") from None
        raise Conflict(str(url)) from None  # If-Match on an object deleted meanwhile (AWS: 404)
    except Exception as e:
        raise _fail(url, e, "write this object") from None


def delete(url: S3Url) -> None:
    obstore = _obstore()

    try:
        obstore.delete(store_of(url), url.key)
    except Exception:  # absent already, or not ours to delete: nothing to undo
        pass


def delete_now(url: S3Url) -> None:
    """Delete an object in one attempt of at most ONE_ATTEMPT_SECONDS (no retries), so
    that it has landed by then or not at all; a failure is BadInput (an absent object
    is no failure)."""
    obstore = _obstore()

    try:
        obstore.delete(store_of(url, one_attempt=True), url.key)
    except Exception as e:
        raise _fail(url, e, "delete this object") from None


class Downloaded(NamedTuple):
    size: int
    etag: str  # of the bytes downloaded (read from the same GET)


def download(url: S3Url, target: Path) -> Downloaded:
    """Stream an object into a local file: its size and etag. NotFound when absent."""
    obstore = _obstore()

    from ..errors import NotFound

    E = _errors()
    try:
        result = obstore.get(store_of(url), url.key)
        size = 0
        with open(target, "wb") as f:
            for chunk in result.stream(min_chunk_size=_CHUNK):
                f.write(chunk)
                size += len(chunk)
        return Downloaded(size, result.meta["e_tag"] or "")
    except (FileNotFoundError, E.NotFoundError):
        raise NotFound("no such object", file=str(url)) from None
    except OSError as e:
        if getattr(e, "filename", None):
            raise
        raise _fail(url, e, "download this object") from None
    except Exception as e:
        raise _fail(url, e, "download this object") from None


def listing(url: S3Url) -> Iterator[tuple[str, int]]:
    """(key relative to `url`, size) of every object below `url` (as a prefix)."""
    for entry in entries(url):
        yield entry.key, entry.size


def entries(url: S3Url) -> Iterator[Entry]:
    """Every object below `url` (as a prefix), with its size and LastModified."""
    obstore = _obstore()

    prefix = url.key + "/" if url.key else ""
    try:
        for batch in obstore.list(store_of(url), prefix or None, chunk_size=1000):
            for meta in batch:
                yield Entry(meta["path"][len(prefix) :], meta["size"], modified(meta),  # type: ignore[arg-type]
                            meta.get("e_tag") or "")  # fmt: skip
    except Exception as e:
        raise _fail(url, e, "list this prefix") from None


def children(url: S3Url) -> list[str]:
    """The names of the 'folders' directly below `url`."""
    obstore = _obstore()

    prefix = url.key + "/" if url.key else ""
    try:
        found = obstore.list_with_delimiter(store_of(url), prefix or None)
    except Exception as e:
        raise _fail(url, e, "list this prefix") from None
    return sorted(p[len(prefix) :].strip("/") for p in found["common_prefixes"])


def server_time(url: S3Url) -> tuple[float, float]:
    """The server's clock, read without trusting this machine's: (a time by the server's
    clock, `time.monotonic()` here at a moment no earlier than it). An object is created
    and its LastModified read back (then it is deleted), so `t + monotonic() - m` is never
    ahead of the server's clock: ages measured with it are never overstated."""
    import secrets
    import time

    marker = url.join(".mlstage-probe", f"clock-{os.getpid()}-{secrets.token_hex(8)}")
    put(marker, b"clock", create=True)
    try:
        meta = head(marker)
        now = time.monotonic()
    finally:
        delete(marker)
    if meta is None:
        raise BadInput("an object just created cannot be read back", file=str(marker))
    return modified(meta), now


def probe(url: S3Url) -> None:
    """Refuse (exit 2) a server that does not honour conditional writes: the store's
    guarantees rest on them. Creates one object twice; the second must be refused."""
    import secrets

    marker = url.join(".mlstage-probe", f"{os.getpid()}-{secrets.token_hex(8)}")
    put(marker, b"probe", create=True)
    try:
        for header, attempt in (
            ("If-None-Match: *", lambda: put(marker, b"probe again", create=True)),
            # serving.json and gc's refresh rest on If-Match being refused too
            ("If-Match with a stale etag", lambda: put(marker, b"probe", if_match='"0"')),
        ):
            try:
                attempt()
            except Conflict:
                continue
            raise BadInput(
                f"this server does not honour conditional writes (a PUT with {header} was"
                " accepted); an mlstage store, output or registry needs them",
                file=str(url),
            )
    finally:
        delete(marker)
