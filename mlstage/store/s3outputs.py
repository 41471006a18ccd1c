"""Artifacts at `s3://` output prefixes: writing a stage's output there, reading one as
an input.

An output prefix holds `manifest.json` and the payload files, as a directory does.
`manifest.json` is the output's pointer and its commit point: it is replaced with
If-Match on the etag read before the stage ran (created with If-None-Match: * when the
prefix was empty), after the artifact was committed to the store. So of writers racing
for one output exactly one wins; a loser changes nothing at the prefix, logs nothing,
and fails with `WriteConflict` (exit 2) — unless the winner wrote the very artifact it
made (same id), which is then simply up to date.

The payload files are copied to the prefix after the commit, for other tools: each
PUT carries If-Match on the etag that file had before the commit, so a slower writer
that lost its place to a newer version can never overwrite the newer files (it stops
at its first refused PUT). mlstage itself reads an output through its manifest and the
store's immutable object, never through those copies; a tool reading the prefix
directly should compare the files with the manifest's sha256s.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import objstore as client
from ..core.artifact import MANIFEST, check_files, checked_manifest, manifest_bytes
from ..core.fsutil import remove_tree, write_bytes_durably
from ..core.s3url import S3Url
from ..errors import BadInput, ExitCode, MlstageError, NotFound, opt

if TYPE_CHECKING:
    from .store import Store


class WriteConflict(MlstageError):
    """Another writer replaced the output while this stage ran (exit 2: nothing of this
    run is at the output; its artifact is kept in the store)."""

    exit_code = ExitCode.BAD_INPUT


def read_pointer(out: S3Url) -> tuple[dict[str, Any] | None, str | None]:
    """The manifest at an output prefix and its etag (None, None when absent)."""
    blob = client.get(out.join(MANIFEST))
    if blob is None:
        return None, None
    return checked_manifest(blob.data, str(out.join(MANIFEST))), blob.etag


def check_s3_output(out: S3Url, store: Store, current: dict[str, Any] | None) -> None:
    """The rules of `core.outputs.check_output`, for a prefix: never the store or inside
    it, and never a prefix holding objects mlstage did not write."""
    from .s3store import S3Store

    name = f"{opt('out', '-o')} {out}"
    if not isinstance(store, S3Store):
        raise BadInput(
            f"{name}: an output in object storage needs a store there too (--store or"
            " MLSTAGE_STORE = s3://BUCKET/PREFIX): the output's files are read back from"
            " the store's objects"
        )
    if out.within(store.url) or store.url.within(out):
        raise BadInput(f"{name}: is the store {store.url} or overlaps it; write outside it")
    held = enclosing(out)
    if held is not None:
        raise BadInput(f"{name}: is inside {held}; write outside it (rewriting that would"
                       " delete this output's files)")  # fmt: skip
    if current is None:
        found = next(iter(client.listing(out)), None)
        if found is not None:
            raise BadInput(
                f"{name}: holds objects that are not an mlstage artifact ({found[0]}, ...);"
                " mlstage replaces only an empty prefix or an artifact it wrote"
            )


def enclosing(url: S3Url) -> str | None:
    """What mlstage keeps above `url`, as a local `core.outputs.owner` finds it for a
    folder: an artifact (a prefix holding manifest.json) or a registry's model folder
    (serving.json), named; None when no prefix above holds either (a few HEADs)."""
    above = url
    while above.key:
        above = above.parent
        if client.head(above.join(MANIFEST)) is not None:
            return f"the artifact {above}"
        if client.head(above.join("serving.json")) is not None:
            return f"the registry model folder {above}"
    return None


def commit_output(
    out: S3Url, etag: str | None, payload: Path, manifest: dict[str, Any], store: Store
) -> dict[str, Any] | None:
    """Point the output at an artifact already committed to the store: `manifest.json`
    replaced with If-Match `etag` (created when None), then the payload copied, then the
    write logged. Returns None when this writer won; the manifest found at the prefix
    when another writer had already put the very same artifact there; WriteConflict
    when another version replaced it meanwhile."""
    before = {f["path"]: _etag(out.join(f["path"])) for f in manifest["files"]}
    try:
        client.put(out.join(MANIFEST), manifest_bytes(manifest), create=etag is None,
                   if_match=etag)  # fmt: skip
    except client.Conflict:
        now, _ = read_pointer(out)
        if now is None or now["id"] != manifest["id"]:
            held = f"now holds {now['stage']} {now['id'][:12]}" if now else "was removed"
            raise WriteConflict(
                f"{opt('out', '-o')} {out}: another writer replaced it while this stage"
                f" ran ({held}); nothing was written there (this run's artifact"
                f" {manifest['id'][:12]} is kept in the store); run again to replace it"
            ) from None
        # the same artifact (a writer of identical work, or this PUT retried): the output
        # holds it; whoever committed it logs it
        return now
    _copy_payload(out, payload, manifest, before)
    store.record_write(out, manifest)
    return None


def _etag(url: S3Url) -> str | None:
    meta = client.head(url)
    return meta.get("e_tag") if meta else None


def _copy_payload(
    out: S3Url, payload: Path, manifest: dict[str, Any], before: dict[str, str | None]
) -> None:
    """The payload files at the prefix, fenced by the etags read before the commit; then
    the files of the replaced version that this one lacks are removed."""
    for f in manifest["files"]:
        try:
            client.put(out.join(f["path"]), payload / f["path"], create=before[f["path"]] is None,
                       if_match=before[f["path"]])  # fmt: skip
        except client.Conflict:
            now, _ = read_pointer(out)
            if now is None or now["id"] != manifest["id"]:
                return  # a newer version owns the prefix: its writer copies its own files
            client.put(out.join(f["path"]), payload / f["path"])  # an older writer's leftover
    keep = {f["path"] for f in manifest["files"]} | {MANIFEST}
    keys = [key for key, _ in client.listing(out)]
    # what mlstage keeps below (an artifact or a registry written there before the rules
    # refused it) is never the replaced version's: left alone
    nested = {k.rsplit("/", 1)[0] + "/" for k in keys
              if "/" in k and k.rsplit("/", 1)[1] in (MANIFEST, "serving.json", ".claim")}  # fmt: skip
    stale = [k for k in keys if k not in keep and not any(k.startswith(n) for n in nested)]
    if stale:
        now, _ = read_pointer(out)
        if now is not None and now["id"] == manifest["id"]:
            for key in stale:
                client.delete(out.join(key))


def fetch_artifact(store: Store, ref: str) -> Path:
    """An artifact at an `s3://` prefix, as a local folder: the store's copy of the id its
    manifest names (downloaded into the cache when needed), else the prefix's files,
    verified against the manifest and kept in the store."""
    from .s3store import S3Store

    url = S3Url.parse(ref)
    manifest, _ = read_pointer(url)
    if manifest is None:
        raise NotFound("no mlstage artifact here (no manifest.json)", file=ref)
    local = store.object_dir(manifest["id"])
    if (local / MANIFEST).exists() and store.intact(local, manifest):
        return local
    if isinstance(store, S3Store) and store.has_object(manifest["id"]):
        return store.fetch(manifest["id"])
    tmp = store.root / "tmp" / f"fetch-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir(parents=True)
    try:
        for f in manifest["files"]:
            client.download(url.join(f["path"]), tmp / f["path"])
        bad = check_files(tmp, manifest)
        if bad:
            raise BadInput(
                f"its files do not match its manifest ({bad[0].removeprefix(str(tmp) + '/')})",
                file=ref,
            )
        write_bytes_durably(tmp / MANIFEST, manifest_bytes(manifest))
        return store.add(tmp, manifest)
    finally:
        remove_tree(tmp)
