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
  If-None-Match: * for a new model). Every change (a deploy under any label, a canary
  or shadow, promote, rollback) is decided by `store.release` from the file as read; a
  writer that finds it changed reads it again and decides anew, so concurrent writers
  end as they would one at a time and none loses its history entry. (A deploy that then
  finds its label already on the same model leaves the version it uploaded unpointed.)

`serve --registry s3://...` polls each model's `serving.json` with a conditional GET
(If-None-Match: its etag; the server answers 304 while it is unchanged), downloads
every version it labels (stable, a canary, a shadow, any other label) into a local
mirror, verified against their manifests, and then replaces the mirror's serving.json
(never with an older state: a `predict` of REGISTRY/NAME shares the mirror), which the
server's watcher swaps in as for a local registry.
"""

from __future__ import annotations

import json
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import objstore as client
from ..core.artifact import MANIFEST, check_files, checked_manifest, manifest_bytes
from ..core.fsutil import file_lock, fsync_tree, remove_tree
from ..core.jsonio import dumps_pretty
from ..core.s3url import S3Url, cache_root
from ..errors import BadInput, MlstageError, NotFound
from .registry import labels_of, parse_serving, pick_name, read_serving, write_serving

if TYPE_CHECKING:
    from .release import Decide, Decision

SERVING = "serving.json"
CLAIM = ".claim"
TRIES = 200  # reads of serving.json one change may take while other writers win
RETRY_SECONDS = 30.0  # a version the mirror could not fetch is tried again after this


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


def add_version(folder: S3Url, after: int, model_path: Path, model_manifest: dict[str, Any]) -> int:
    """A new version holding the model: the first number past `after` this deploy can
    claim, its files uploaded and its manifest created."""
    version = after + 1
    while not claim_version(folder, version, model_manifest["id"]):
        version += 1  # another deploy holds it: the next number
    upload_version(folder.join(str(version)), model_path, model_manifest)
    return version


def update(folder: S3Url, decide: Decide) -> Decision:
    """Change a model's serving.json without a lock: `decide(serving, versions)` gives the
    outcome (`store.release`), whose document replaces the file with If-Match on the etag
    read; when another writer changed it meanwhile, it is read again and decided anew."""
    known: dict[int, str] = {}
    sent: Decision | None = None
    for _ in range(TRIES):
        doc, etag = read_serving_s3(folder)
        if sent is not None and doc == sent.doc:
            # the write landed, its answer did not: the client retried the PUT and the
            # retry was refused (its etag had moved). Deciding anew would do it twice (a
            # rollback would go back two steps); the document holds this write's own entry
            return sent
        known, _ = versions_s3(folder, known)
        outcome = decide(doc, known)
        if outcome.doc is None or put_serving(folder, outcome.doc, etag):
            return outcome
        sent = outcome
    raise BadInput(f"serving.json kept changing; {TRIES} tries failed", file=str(folder))


def damage_of(folder: S3Url) -> Callable[[int], list[str]]:
    """version -> what is wrong with its files in the bucket (each downloaded and hashed
    against the version's manifest: the bucket keeps no sha256 of its own). Versions are
    never rewritten, so each is checked once per call of this."""
    seen: dict[int, list[str]] = {}

    def damaged(version: int) -> list[str]:
        if version not in seen:
            seen[version] = _damage(folder.join(str(version)))
        return seen[version]

    return damaged


def _damage(version: S3Url) -> list[str]:
    blob = client.get(version.join(MANIFEST))
    if blob is None:
        return [f"{version.join(MANIFEST)}: missing"]
    manifest = checked_manifest(blob.data, str(version.join(MANIFEST)))
    with tempfile.TemporaryDirectory(prefix="mlstage-registry-") as tmp:
        for f in manifest["files"]:
            target = Path(tmp, f["path"])
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                client.download(version.join(f["path"]), target)
            except NotFound:
                return [f"{version.join(f['path'])}: missing"]
        return [bad.replace(tmp, str(version), 1) for bad in check_files(Path(tmp), manifest)]


def mirror_model(url: S3Url) -> Path | None:
    """REGISTRY/NAME in object storage as a local folder: its serving.json and the
    versions it names, copied into the registry's mirror (the one `serve` keeps); None
    when there is no serving.json at `url`."""
    registry = url.parent
    mirror = RegistryMirror(registry)
    if not mirror.sync_model(url.name):
        return None
    return mirror.local / url.name


def _write_if_newer(target: Path, doc: dict[str, Any]) -> None:
    """Replace the mirror's serving.json unless it already holds a later state: several
    processes share a mirror (`serve` polling, a `predict` or `monitor` reading
    REGISTRY/NAME), and one that read the bucket before a change must not put the older
    state back after the other wrote the newer (the server would keep it: its next poll
    is a 304). Every change in the bucket appends one history entry (If-Match makes the
    history one line), so the longer history is the later state."""
    with file_lock(target.with_name(f".{target.name}.mirror-lock")):  # beside, not in it
        try:
            current = read_serving(target)
        except (OSError, ValueError, MlstageError):  # damaged: replaced
            current = None
        if current is None or len(current["history"]) <= len(doc["history"]):
            write_serving(target, doc)


# -- serve: a local mirror ------------------------------------------------------------
class RegistryMirror:
    """A local copy of an S3 registry for the server's watcher, refreshed by polling."""

    def __init__(self, url: S3Url, local: Path | None = None) -> None:
        self.url = url
        self.local = local or Path(cache_root(url)) / "mirror"
        self.etags: dict[str, str] = {}
        self.not_modified = 0  # 304s seen (the test checks the polls are conditional)
        self.failed: dict[str, tuple[float, BadInput]] = {}  # version -> (retry after, why)
        self.checked: set[str] = set()  # versions whose copy was found to be the bucket's

    def sync(self) -> bool:
        """One poll; whether any model's serving.json changed. A model that could not be
        mirrored whole stops no other: the first failure is raised once all are polled."""
        changed, failures = False, []
        self.local.mkdir(parents=True, exist_ok=True)
        for name in client.children(self.url):
            try:
                changed = self.sync_model(name) or changed
            except BadInput as e:
                failures.append(e)
        if failures:
            raise failures[0]
        return changed

    def sync_model(self, name: str) -> bool:
        """One model's poll: whether its serving.json changed (and the versions it labels
        are now here). A version that does not download or verify is left out, as a
        damaged local version is: the server reports it and serves the rest. Its failure
        is raised after serving.json is written, and the file is polled again."""
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
        failures = []
        for version in sorted(set(labels_of(doc).values()) | {doc["version"]}):
            try:
                self._fetch_version(folder.join(str(version)), target / str(version))
            except BadInput as e:
                failures.append(e)
        _write_if_newer(target, doc)
        if failures:
            raise failures[0]  # its etag is not kept: the next poll tries again
        self.etags[name] = blob.etag
        return True

    def _fetch_version(self, url: S3Url, target: Path) -> None:
        if (target / MANIFEST).exists():
            if str(url) in self.checked or self._same_version(url, target):
                return  # versions are immutable: fetched once, checked once a process
            # a registry deleted and made again, its numbers reused: the old copy goes
            stale = target.with_name(f".{target.name}.{secrets.token_hex(4)}.stale")
            target.rename(stale)
            remove_tree(stale)
        retry_after, why = self.failed.get(str(url), (0.0, None))
        if why is not None and time.monotonic() < retry_after:
            raise why  # not downloaded again at every poll
        try:
            self._download_version(url, target)
        except BadInput as e:
            self.failed[str(url)] = (time.monotonic() + RETRY_SECONDS, e)
            raise
        self.failed.pop(str(url), None)
        self.checked.add(str(url))

    def _same_version(self, url: S3Url, target: Path) -> bool:
        """Whether the mirror's copy is the model the bucket's version holds (one GET of
        its manifest); a version missing from the bucket keeps its copy."""
        blob = client.get(url.join(MANIFEST))
        mine = json.loads((target / MANIFEST).read_bytes()).get("id")
        same = blob is None or checked_manifest(blob.data, str(url.join(MANIFEST)))["id"] == mine
        if same:
            self.checked.add(str(url))
        return same

    def _download_version(self, url: S3Url, target: Path) -> None:
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
            try:
                tmp.rename(target)
            except OSError:
                if not (target / MANIFEST).exists():
                    raise
                # another process (a `predict` beside `serve`) placed it first: the same
                # immutable version, verified by it
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
