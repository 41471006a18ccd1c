"""`s3://bucket/key` values: recognised before anything treats them as a local path.

`Path("s3://b/x")` would silently become the relative path `s3:/b/x` (a folder named
`s3:`); every option that may name object storage is checked with `is_s3` first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

SCHEME = "s3://"


def is_s3(value: object) -> bool:
    """Whether a value names object storage: `s3://...`, or a `Path` made from one by a
    caller (`Path` folds `s3://b/x` into `s3:/b/x`; no local folder named `s3:` is ever
    taken from such a value)."""
    if isinstance(value, S3Url):
        return True
    text = os.fspath(value) if isinstance(value, os.PathLike) else value
    return isinstance(text, str) and (text.startswith(SCHEME) or text.startswith("s3:/"))


def as_s3(value: object) -> S3Url | None:
    """The address a value names, or None when it is not object storage."""
    if isinstance(value, S3Url):
        return value
    if not is_s3(value):
        return None
    text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    if not text.startswith(SCHEME):
        text = SCHEME + text[len("s3:/") :]
    return S3Url.parse(text)


@dataclass(frozen=True)
class S3Url:
    bucket: str
    key: str  # without leading or trailing "/"; "" for the bucket's root

    @classmethod
    def parse(cls, value: str | S3Url) -> S3Url:
        from ..errors import BadInput

        if isinstance(value, S3Url):
            return value
        if not value.startswith(SCHEME):
            raise BadInput(f"{value}: not an s3://bucket/prefix address")
        bucket, _, key = value[len(SCHEME) :].partition("/")
        key = key.strip("/")
        parts = key.split("/") if key else []
        if not bucket or any(p in ("", ".", "..") for p in parts):
            raise BadInput(
                f"{value}: an object storage address is s3://BUCKET/PREFIX, with no empty,"
                " '.' or '..' part"
            )
        return cls(bucket, "/".join(parts))

    def join(self, *parts: str) -> S3Url:
        key = "/".join(p.strip("/") for p in (self.key, *parts) if p.strip("/"))
        return S3Url(self.bucket, key)

    def within(self, other: S3Url) -> bool:
        """Whether this address is `other` or below it."""
        return self.bucket == other.bucket and (
            not other.key or self.key == other.key or self.key.startswith(other.key + "/")
        )

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def parent(self) -> S3Url:
        """The prefix one level up (the bucket's root stays itself), as `Path.parent`."""
        return S3Url(self.bucket, self.key.rsplit("/", 1)[0] if "/" in self.key else "")

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}" if self.key else f"{SCHEME}{self.bucket}"

    def __fspath__(self) -> str:  # never a local path: fail loudly if one is asked for
        raise TypeError(f"{self} is object storage, not a local path")


def cache_root(url: S3Url) -> str:
    """The local cache of an S3 store: MLSTAGE_S3_CACHE, else $XDG_CACHE_HOME/mlstage/s3
    (~/.cache/mlstage/s3), then the bucket and prefix."""
    base = os.environ.get("MLSTAGE_S3_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mlstage", "s3"
    )
    return os.path.join(
        os.path.abspath(base), url.bucket, *(url.key.split("/") if url.key else ["_root"])
    )
