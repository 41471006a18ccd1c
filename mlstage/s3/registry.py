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

from ..core.artifact import MANIFEST, check_files, checked_manifest, manifest_bytes
from ..core.fsutil import fsync_tree, remove_tree
from ..core.jsonio import dumps_pretty
from ..errors import BadInput, opt
from ..store.registry import STABLE, labels_of, parse_serving, pointed, write_serving
from . import client
from .url import S3Url, cache_root

SERVING = "serving.json"
CLAIM = ".claim"
MAX_TRIES = 200


def model_names(registry: S3Url) -> list[str]:
    return [n for n in client.children(registry) if client.head(registry.join(n, SERVING))]


def choose_name(registry: S3Url, name: str | None) -> str:
    if name is not None:
        if not name or name.startswith(".") or "/" in name:
            raise BadInput(f"{opt('name')} {name!r}: a model name is a plain directory name")
        return name
    names = model_names(registry)
    if len(names) == 1:
        return names[0]
    if not names:
        raise BadInput(f"the registry has no model yet: give {opt('name')}", file=str(registry))
    raise BadInput(
        f"the registry has several models ({', '.join(names)}): give {opt('name')}",
        file=str(registry),
    )


def read_serving(folder: S3Url) -> tuple[dict[str, Any] | None, str | None]:
    blob = client.get(folder.join(SERVING))
    if blob is None:
        return None, None
    return parse_serving(blob.data, str(folder.join(SERVING))), blob.etag


def versions(folder: S3Url, known: dict[int, str] | None = None) -> tuple[dict[int, str], int]:
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


def _claim(folder: S3Url, version: int, model_id: str) -> bool:
    """Whether this deploy now owns version number `version`."""
    try:
        client.put(folder.join(str(version), CLAIM), model_id.encode(), create=True)
        return True
    except client.Conflict:
        return False


def deploy_s3(
    store,
    model_path: Path,
    model_manifest: dict[str, Any],
    action: str,
    evaluation_id: str | None,
    eval_manifest: dict[str, Any] | None,
    registry: S3Url,
    *,
    name: str | None,
    message: str,
    label: str,
    canary: float | None,
    shadow: bool,
    check,
):
    from ..stages.deploy import DeployResult, _pre_push

    if label != STABLE or canary is not None or shadow:
        raise BadInput(
            f"{opt('registry')} {registry}: only the {STABLE} label is deployed to object"
            " storage so far (no --label, --canary or --shadow there)"
        )
    client.probe(registry)
    name = choose_name(registry, name)
    folder = registry.join(name)
    model_id = model_manifest["id"]
    outcome = None
    known: dict[int, str] = {}
    claimed: int | None = None
    for _ in range(MAX_TRIES):
        doc, etag = read_serving(folder)
        known, highest = versions(folder, known)
        if claimed is None:
            same = [v for v, m in known.items() if m == model_id]
            if doc is not None and doc["version"] in same:
                return DeployResult(registry, name, doc["version"], model_id, "none", True)  # type: ignore[arg-type]
        if outcome is None:
            outcome = _pre_push(store, model_path, eval_manifest, check)
        same = [v for v, m in known.items() if m == model_id]
        if claimed is not None:
            version, how = claimed, action
        elif same:  # already in the registry: point back at it
            version, how = same[-1], ("redeploy" if action == "deploy" else action)
        else:
            version = highest + 1
            while not _claim(folder, version, model_id):
                version += 1  # another deploy holds it: the next number
            _upload(folder.join(str(version)), model_path, model_manifest)
            claimed, how = version, action
            known[version] = model_id
        new = pointed(doc, version, model_id, how, message, evaluation_id,
                      label=STABLE, extra={"check": outcome})  # fmt: skip
        data = dumps_pretty(new).encode()
        try:
            client.put(folder.join(SERVING), data, create=etag is None, if_match=etag)
        except client.Conflict:
            continue  # another deploy replaced serving.json: read it again, add to it
        if claimed is not None:
            store.record_write(folder.join(str(version)), model_manifest)
        return DeployResult(registry, name, version, model_id, how, False, STABLE, outcome)  # type: ignore[arg-type]
    raise BadInput(f"{folder}: serving.json kept changing; {MAX_TRIES} tries failed")


def _upload(version: S3Url, model_path: Path, model_manifest: dict[str, Any]) -> None:
    """A version's files, verified locally first, then its manifest (created once)."""
    bad = check_files(model_path, model_manifest)
    if bad:
        raise BadInput(f"{bad[0]}: the model differs from its manifest; nothing deployed")
    for f in model_manifest["files"]:
        client.put(version.join(f["path"]), model_path / f["path"])
    client.put(version.join(MANIFEST), manifest_bytes(model_manifest), create=True)


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
            folder = self.url.join(name)
            try:
                blob = client.get(folder.join(SERVING), if_none_match=self.etags.get(name))
            except client.NotModified:
                self.not_modified += 1
                continue
            if blob is None:
                continue
            doc = parse_serving(blob.data, str(folder.join(SERVING)))
            target = self.local / name
            target.mkdir(exist_ok=True)
            for version in sorted(set(labels_of(doc).values()) | {doc["version"]}):
                self._fetch_version(folder.join(str(version)), target / str(version))
            write_serving(target, doc)
            self.etags[name] = blob.etag
            changed = True
        return changed

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
