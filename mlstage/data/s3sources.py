"""Ingest's sources in object storage: `s3://bucket/file.csv`, a glob
(`s3://bucket/raw/*.csv`) or a prefix ending in `/` (every object of a known format
below it, sorted).

Each object is downloaded once, streamed, into the store's `tmp/` and read from there
like a local file. Polars could scan the objects itself, but ingest also needs each
source's sha256 (its id in the lineage) and, on bad data, to re-read it for the line
and column to name: one download serves all three, where polars' cloud reader would
fetch the bytes again for the hash.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import secrets
from pathlib import Path
from typing import Any

from ..core import objstore as client
from ..core.s3url import S3Url
from ..errors import BadInput


def matching_objects(
    spec: str, extensions: set[str] | None, *, empty_ok: bool = False
) -> list[tuple[S3Url, int, str]]:
    """The objects a source spec names, sorted, with their sizes and etags (a prefix
    ending in '/' may hold none when `empty_ok`)."""
    if spec.endswith("/") or glob.has_magic(spec):
        pattern = S3Url.parse(spec)
        if spec.endswith("/"):
            base, rule = pattern, None
        else:
            parts = pattern.key.split("/")
            fixed = next(i for i, p in enumerate(parts) if glob.has_magic(p))
            base, rule = S3Url(pattern.bucket, "/".join(parts[:fixed])), pattern.key
        found, held = [], False
        for entry in client.entries(base):
            full = f"{base.key}/{entry.key}" if base.key else entry.key
            name = full.rsplit("/", 1)[-1]
            if name.startswith("."):
                continue
            held = True
            if rule is not None and not fnmatch.fnmatchcase(full, rule):
                continue
            if (
                rule is None
                and extensions is not None
                and Path(name).suffix.lower() not in extensions
            ):
                continue
            found.append((S3Url(base.bucket, full), entry.size, entry.etag))
        # an empty prefix may be "nothing yet"; objects of no known format are a mistake
        if not found and not (empty_ok and rule is None and not held):
            what = (
                "prefix holds no object of a known format"
                if rule is None
                else "no object matches this pattern"
            )
            raise BadInput(what, file=spec)
        return sorted(found, key=lambda f: f[0].key)
    url = S3Url.parse(spec)
    meta = client.head(url)
    if meta is None:
        raise BadInput("no such object", file=spec)
    return [(url, meta["size"], meta.get("e_tag") or "")]


def download_source(url: S3Url, spool_dir: Path) -> tuple[Path, str]:
    """The object in a local file of the spool (its extension kept, so the format is
    found as for a local file), and the etag of the bytes downloaded."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    target = spool_dir / f"s3src-{os.getpid()}-{secrets.token_hex(4)}-{url.name}"
    try:
        got = client.download(url, target)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target, got.etag


def unchanged(size: int, etag: str, known: dict[str, Any] | None) -> bool:
    """Whether an object listed with this size and etag is still the one `known` (a
    source entry {path, bytes, etag} of a dataset) describes, without downloading it:
    S3 gives a rewritten object a new etag."""
    if not known or not known.get("etag"):
        return False
    return (size, etag) == (known.get("bytes"), known["etag"])
