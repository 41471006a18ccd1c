"""The model registry in object storage (`--registry s3://bucket/registry`), and the
local mirror `serve` keeps of it.

Layout, as on disk: `NAME/<N>/` holds a version's files and `manifest.json`,
`NAME/serving.json` says which version is served. Without locks or renames:

- a version number is claimed by creating `NAME/<N>/.claim` with If-None-Match: *; a
  deploy that loses the claim tries N+1, so concurrent deploys get distinct numbers
  and none is lost;
- the winner uploads the model's files, then creates `NAME/<N>/manifest.json` (a
  version exists once its manifest does: a claim whose deploy died is a gap);
- `serving.json` is replaced with If-Match on the etag read (created with
  If-None-Match: * for a new model); a deploy that finds it changed re-reads it and
  adds its entry to the new history.

`serve --registry s3://...` polls each model's `serving.json` with a conditional GET
(If-None-Match: its etag; the server answers 304 while it is unchanged), downloads the
versions it names into a local mirror (verified against their manifests) and then
replaces the mirror's serving.json, which the server's watcher swaps in as for a
local registry. Only the stable label is deployed to object storage so far (no
canary, shadow, promote or rollback there yet).
"""

from __future__ import annotations

import secrets
import sys
import threading
from pathlib import Path
from typing import Any

from ..core import objstore as client
from ..core.artifact import MANIFEST, check_files, checked_manifest, manifest_bytes
from ..core.fsutil import fsync_tree, remove_tree
from ..core.jsonio import dumps_pretty
from ..core.s3url import S3Url, cache_root
from ..errors import BadInput
from .registry import (
    STABLE,
    entry_label,
    labels_of,
    parse_serving,
    pick_name,
    pointed,
    write_serving,
)

SERVING = "serving.json"
CLAIM = ".claim"


def model_names(registry: S3Url) -> list[str]:
    return [n for n in client.children(registry) if client.head(registry.join(n, SERVING))]


def choose_name(registry: S3Url, name: str | None) -> str:
    return pick_name(name, lambda: model_names(registry), registry)


def read_serving_s3(folder: S3Url) -> tuple[dict[str, Any] | None, str | None]:
    blob = client.get(folder.join(SERVING))
    if blob is None:
        return None, None
    return parse_serving(blob.data, str(folder.join(SERVING))), blob.etag


def versions_s3(folder: S3Url, known: dict[int, str] | None = None) -> tuple[dict[int, str], int]:
    """Version number -> model id of every complete version (`known` spares re-reading
    manifests already read), and the highest number claimed or used."""
    out: dict[int, str] = {}
    numbers = [int(n) for n in client.children(folder) if n.isdigit()]
    for n in numbers:
        if known and n in known:
            out[n] = known[n]
            continue
        blob = client.get(folder.join(str(n), MANIFEST))
        if blob is not None:
            out[n] = checked_manifest(blob.data, str(folder.join(str(n), MANIFEST)))["id"]
    return dict(sorted(out.items())), max(numbers, default=0)


def claim_version(folder: S3Url, version: int, model_id: str) -> bool:
    """Whether this deploy now owns version number `version`."""
    try:
        client.put(folder.join(str(version), CLAIM), model_id.encode(), create=True)
        return True
    except client.Conflict:
        return False


def upload_version(version: S3Url, model_path: Path, model_manifest: dict[str, Any]) -> None:
    """A version's files, verified locally first, then its manifest (created once)."""
    bad = check_files(model_path, model_manifest)
    if bad:
        raise BadInput(f"{bad[0]}: the model differs from its manifest; nothing deployed")
    for f in model_manifest["files"]:
        client.put(version.join(f["path"]), model_path / f["path"])
    client.put(version.join(MANIFEST), manifest_bytes(model_manifest), create=True)


def put_serving(folder: S3Url, doc: dict[str, Any], etag: str | None) -> bool:
    """Replace serving.json if it still has `etag` (create it when None); whether it was."""
    try:
        client.put(folder.join(SERVING), dumps_pretty(doc).encode(), create=etag is None,
                   if_match=etag)  # fmt: skip
        return True
    except client.Conflict:
        return False


def rollback(registry: S3Url, name: str | None, to: int | None, message: str):
    """Point stable back at its previous version (or `to`), replacing serving.json with
    If-Match (a changed file is read again): (name, version, model id, action)."""
    client.probe(registry)
    name = choose_name(registry, name)
    folder = registry.join(name)
    for _ in range(200):
        doc, etag = read_serving_s3(folder)
        if doc is None:
            raise BadInput("nothing is served yet: no serving.json", file=str(folder))
        have, _ = versions_s3(folder)
        target = to
        if target is None:
            earlier = [h["version"] for h in doc["history"]
                       if entry_label(h) == STABLE and h["version"] != doc["version"]]  # fmt: skip
            if not earlier:
                raise BadInput("no earlier version of stable in the history to roll back to",
                               file=str(folder))  # fmt: skip
            target = earlier[-1]
        if target not in have:
            raise BadInput(f"no version {target}; the registry has: "
                           f"{', '.join(map(str, have)) or 'none'}", file=str(folder))  # fmt: skip
        if target == doc["version"]:
            return name, target, have[target], "none"
        new = pointed(doc, target, have[target], "rollback", message, label=STABLE)
        if put_serving(folder, new, etag):
            return name, target, have[target], "rollback"
    raise BadInput(f"{folder}: serving.json kept changing; 200 tries failed")


def mirror_model(url: S3Url) -> Path | None:
    """REGISTRY/NAME in object storage as a local folder: its serving.json and the
    versions it names, copied into the registry's mirror (the one `serve` keeps); None
    when there is no serving.json at `url`."""
    registry = url.parent
    mirror = RegistryMirror(registry)
    if not mirror.sync_model(url.name):
        return None
    return mirror.local / url.name


# -- serve: a local mirror ------------------------------------------------------------
class RegistryMirror:
    """A local copy of an S3 registry for the server's watcher, refreshed by polling."""

    def __init__(self, url: S3Url, local: Path | None = None) -> None:
        self.url = url
        self.local = local or Path(cache_root(url)) / "mirror"
        self.etags: dict[str, str] = {}
        self.not_modified = 0  # 304s seen (the test checks the polls are conditional)

    def sync(self) -> bool:
        """One poll; whether any model's serving.json changed."""
        changed = False
        self.local.mkdir(parents=True, exist_ok=True)
        for name in client.children(self.url):
            changed = self.sync_model(name) or changed
        return changed

    def sync_model(self, name: str) -> bool:
        """One model's poll: whether its serving.json changed (and the versions it names
        are now here)."""
        folder = self.url.join(name)
        try:
            blob = client.get(folder.join(SERVING), if_none_match=self.etags.get(name))
        except client.NotModified:
            self.not_modified += 1
            return False
        if blob is None:
            return False
        doc = parse_serving(blob.data, str(folder.join(SERVING)))
        target = self.local / name
        target.mkdir(parents=True, exist_ok=True)
        for version in sorted(set(labels_of(doc).values()) | {doc["version"]}):
            self._fetch_version(folder.join(str(version)), target / str(version))
        write_serving(target, doc)
        self.etags[name] = blob.etag
        return True

    def _fetch_version(self, url: S3Url, target: Path) -> None:
        if (target / MANIFEST).exists():
            return  # versions are immutable: fetched once
        blob = client.get(url.join(MANIFEST))
        if blob is None:
            return  # not complete: the server reports the version it cannot load
        manifest = checked_manifest(blob.data, str(url.join(MANIFEST)))
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        tmp.mkdir()
        try:
            for f in manifest["files"]:
                client.download(url.join(f["path"]), tmp / f["path"])
            (tmp / MANIFEST).write_bytes(blob.data)
            bad = check_files(tmp, manifest)
            if bad:
                raise BadInput(f"{url}: its files differ from its manifest ({bad[0]})")
            fsync_tree(tmp)
            tmp.rename(target)
        finally:
            remove_tree(tmp)

    def start(self, interval: float, stop: threading.Event) -> threading.Thread:
        def poll() -> None:
            said = None
            while not stop.wait(interval):
                try:
                    self.sync()
                    said = None
                except Exception as e:  # a network failure: the mirror keeps what it has
                    text = f"serve: cannot poll {self.url}: {e}"
                    if text != said:
                        sys.stderr.write(text + "\n")
                        said = text

        thread = threading.Thread(target=poll, name="mlstage-s3-mirror", daemon=True)
        thread.start()
        return thread
