"""A store in object storage (`--store s3://bucket/prefix`), with a local cache.

Remote layout (the truth; nothing in it is ever renamed or locked, and nothing is
rewritten but a manifest, re-PUT with its own bytes to refresh it; `gc` deletes objects):

    PREFIX/mlstage-store              the marker, created once (If-None-Match)
    PREFIX/objects/<id>/<file>        payload files, uploaded first
    PREFIX/objects/<id>/manifest.json the commit point of an artifact: created with
                                      If-None-Match: * after its files; an object
                                      without it does not exist (a crashed upload,
                                      or one gc is deleting)
    PREFIX/journal/<at>-<id12>-<rand>.json
                                      one immutable object per write of a version to
                                      a path, created with If-None-Match: *
    PREFIX/.mlstage-probe/...         the conditional-write probe (deleted at once)

Local cache (a local store's layout; `MLSTAGE_S3_CACHE`, else
`$XDG_CACHE_HOME/mlstage/s3/<bucket>/<prefix>`): `objects/<id>/` holds artifacts
downloaded whole (verified against their manifests), `manifests/<id>.json` every
manifest known, `journal/<name>` a copy of each remote journal object, and
`index.sqlite` the index built from those. Opening the store lists the remote journal
and fetches what is new; `reindex` lists every remote manifest and journal object and
rebuilds the index from them: deleting the cache loses nothing. `gc` prunes it as a
local store's gc prunes a store (copies, cached statistics, replay records).

Concurrent writers on any number of machines are safe without locks: an artifact's
files are content-addressed (two writers of one id upload the same bytes), its
manifest is created once, and journal objects have unique names. Processes on one
machine share the cache under its local lock.

`gc` (`store.s3gc`) deletes objects from the bucket while writers elsewhere may be
reusing them, also without locks: `add` and `record_write` do the writers' half of its
protocol (`s3gc.upload`, `s3gc.keep_fresh`; s3gc's docstring has the whole protocol and
the assumption it rests on).

A reader that finds an object gone (its cached manifest outlived it) says so: exit 2
naming the id.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from ..core.artifact import MANIFEST, checked_manifest, manifest_bytes
from ..core.fsutil import remove_tree, write_bytes_durably
from ..core.outputs import create_store, is_store
from ..core.s3url import S3Url, as_s3, cache_root, is_s3
from ..errors import BadInput, NotFound
from .index import connect, index_artifact, unindex_artifact
from .maintenance import GC_GRACE_SECONDS, install_index
from .store import Store

MARKER = "mlstage-store"
_probed: set[str] = set()  # stores probed by this process


class S3Store(Store):
    def __init__(self, url: S3Url, cache: Path) -> None:
        super().__init__(cache)
        self.url = url
        self.manifests = cache / "manifests"
        self.journal_dir = cache / "journal"
        # id -> time.monotonic() before this process created or refreshed its manifest
        # in the bucket (`s3gc.keep_fresh` skips a refresh for FRESH seconds after)
        self.fresh: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"S3Store({self.url})"

    # -- opening -------------------------------------------------------------
    @classmethod
    def open_url(cls, value: str | S3Url) -> S3Store:
        from ..core import objstore as client

        url = S3Url.parse(value) if not isinstance(value, S3Url) else value
        cache = Path(cache_root(url))
        try:
            if not is_store(cache):
                create_store(cache)
            for sub in ("objects", "manifests", "journal", "tmp"):
                (cache / sub).mkdir(exist_ok=True)
        except OSError as e:
            raise BadInput(
                f"cannot use this folder as the cache of {url}: {e.strerror or e}"
                " (set MLSTAGE_S3_CACHE)",
                file=str(cache),
            ) from None
        if str(url) not in _probed:
            client.probe(url)
            if client.head(url.join(MARKER)) is None:
                # a prefix holding anything but probes is someone's data, unless another
                # process made it a store meanwhile (its marker is there now)
                foreign = next((k for k, _ in client.listing(url)
                                if k != MARKER and not k.startswith(".mlstage-probe/")), None)  # fmt: skip
                if foreign is not None and client.head(url.join(MARKER)) is None:
                    raise BadInput(
                        f"is not an mlstage store (no {MARKER} object) and not empty; check"
                        " --store and MLSTAGE_STORE",
                        file=str(url),
                    )
                try:
                    client.put(url.join(MARKER), b"mlstage-store/1 (object storage)\n", create=True)
                except client.Conflict:
                    pass  # another process made it first
            _probed.add(str(url))
        store = cls(url, cache)
        store.sync()
        return store

    # -- paths ----------------------------------------------------------------
    def path_key(self, path: Any) -> str:
        found = as_s3(path)
        if found is not None:
            return str(found)
        from .store import normalise_path

        return normalise_path(Path(path))  # a local output of a shared store: absolute

    def path_of(self, key: str) -> Path:
        return Path(key)  # local keys only; writes() shows s3 keys as they are

    def _keys(self, path: Any) -> tuple[str, str]:
        key = self.path_key(path)
        return key, key

    # -- the remote journal ------------------------------------------------------
    def _remote_journal(self) -> list[str]:
        from ..core import objstore as client

        return sorted(name for name, _ in client.listing(self.url.join("journal")))

    def _fetch_journal_entry(self, name: str) -> dict[str, Any] | None:
        from ..core import objstore as client

        local = self.journal_dir / name
        if local.exists():
            return json.loads(local.read_bytes())
        blob = client.get(self.url.join("journal", name))
        if blob is None:
            return None
        entry = json.loads(blob.data)
        write_bytes_durably(local, blob.data)
        return entry

    def _known_manifest(self, artifact_id: str) -> dict[str, Any] | None:
        """The manifest of a committed remote object (cached), or None."""
        from ..core import objstore as client

        local = self.manifests / f"{artifact_id}.json"
        if local.exists():
            return json.loads(local.read_bytes())
        blob = client.get(self.url.join("objects", artifact_id, MANIFEST))
        if blob is None:
            return None
        manifest = _checked_manifest(blob.data, str(self.url.join("objects", artifact_id)))
        write_bytes_durably(local, blob.data)
        return manifest

    def sync(self) -> int:
        """Merge the remote journal objects not yet in the cache into the index; returns
        how many were new."""
        names = self._remote_journal()
        new = [n for n in names if not (self.journal_dir / n).exists()]
        if not new:
            return 0
        with self.locked():
            for name in new:
                if (self.journal_dir / name).exists():
                    continue  # another process of this machine merged it meanwhile
                entry = self._fetch_journal_entry(name)
                if entry is None:
                    continue
                manifest = self._known_manifest(entry["id"])
                if manifest is not None:
                    index_artifact(self.db, manifest)
                self.db.execute(
                    "INSERT INTO writes(at, path, id, stage) VALUES (?,?,?,?)",
                    (entry["at"], entry["path"], entry["id"], entry["stage"]),
                )
        return len(new)

    # -- adding ---------------------------------------------------------------------
    def has_object(self, artifact_id: str) -> bool:
        """Whether the remote store holds this artifact, committed."""
        return self._known_manifest(artifact_id) is not None

    def add(self, payload_dir: Path, manifest: dict[str, Any]) -> Path:
        """Keep the artifact in the cache, then commit it remotely: payload files, then
        the manifest created with If-None-Match: * (the commit point). An id the bucket
        holds already is the same content: nothing is uploaded (`record_write` refreshes
        it before logging)."""
        from ..core import objstore as client
        from . import s3gc

        target = super().add(payload_dir, manifest)
        try:
            os.utime(target)  # the cache's gc keeps it while this writer uses it
        except OSError:
            pass
        artifact_id = manifest["id"]
        if client.head(self.manifest_url(artifact_id)) is None:  # the bucket, not the cache
            s3gc.upload(self, target, manifest)
        local = self.manifests / f"{artifact_id}.json"
        if not local.exists():
            write_bytes_durably(local, manifest_bytes(manifest))
        return target

    def manifest_url(self, artifact_id: str) -> S3Url:
        return self.url.join("objects", artifact_id, MANIFEST)

    def hold(self, manifest: dict[str, Any]) -> None:
        """`Store.hold` in the bucket: the object's manifest refreshed (or the object
        uploaded again from the cache, if gc took it), as before logging a write."""
        from . import s3gc

        s3gc.keep_fresh(self, manifest)

    def record_write(self, path: Any, manifest: dict[str, Any]) -> None:
        """One immutable journal object per write (created, never replaced), right after
        the artifact's manifest is refreshed; then the cache's copy and index."""
        from ..core import objstore as client
        from . import s3gc

        s3gc.keep_fresh(self, manifest)
        # One reading of the clock for the entry's second and its name's stamp: two
        # readings could straddle a second and name a write before the ones it follows
        # (a reindex orders the writes by name).
        now = time.time_ns()
        second = time.gmtime(now // 10**9)
        entry = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", second), "path": self.path_key(path),
                 "id": manifest["id"], "stage": manifest["stage"]}  # fmt: skip
        stamp = time.strftime("%Y%m%dT%H%M%S", second) + f".{now % 10**9:09d}Z"
        name = f"{stamp}-{manifest['id'][:12]}-{secrets.token_hex(4)}.json"
        data = json.dumps(entry, sort_keys=True).encode()
        client.put(self.url.join("journal", name), data, create=True)
        with self.locked():
            write_bytes_durably(self.journal_dir / name, data)
            self.db.execute(
                "INSERT INTO writes(at, path, id, stage) VALUES (?,?,?,?)",
                (entry["at"], entry["path"], entry["id"], entry["stage"]),
            )

    # -- reading --------------------------------------------------------------------
    def fetch(self, artifact_id: str) -> Path:
        """The artifact's folder in the cache, downloaded whole and verified first if
        needed."""
        from ..core import objstore as client
        from ..core.artifact import check_files

        target = self.object_dir(artifact_id)
        manifest = self._known_manifest(artifact_id)
        if manifest is None:
            raise NotFound(f"@{artifact_id[:12]}: no artifact in the store {self.url} has this id")
        if (target / MANIFEST).exists() and self.intact(target, manifest):
            return target
        tmp = self.root / "tmp" / f"fetch-{os.getpid()}-{secrets.token_hex(4)}"
        tmp.mkdir(parents=True)
        try:
            base = self.url.join("objects", artifact_id)
            for f in manifest["files"]:
                try:
                    client.download(base.join(f["path"]), tmp / f["path"])
                except NotFound:
                    if client.head(self.manifest_url(artifact_id)) is not None:
                        raise  # a file missing under a manifest: named as it is
                    self.forget(artifact_id)
                    raise NotFound(
                        f"@{artifact_id[:12]}: this artifact was removed from the store"
                        f" {self.url} (by gc: no path held it any more); run the stage"
                        " that made it again"
                    ) from None
            write_bytes_durably(tmp / MANIFEST, manifest_bytes(manifest))
            bad = check_files(tmp, manifest)
            if bad:
                raise BadInput(f"the stored object differs from its manifest: {bad[0]}")
            return Store.add(self, tmp, manifest)  # into the cache only: it is remote already
        finally:
            remove_tree(tmp)

    def resolve(self, ref: str) -> Path:
        if isinstance(ref, str) and ref.startswith("@"):
            prefix = ref[1:].lower()
            if len(prefix) < 6 or any(c not in "0123456789abcdef" for c in prefix):
                raise BadInput(f"{ref}: an id reference is @ and 6 or more hex digits")
            matches = self._ids_like(prefix)
            if not matches:
                self.sync()
                matches = self._ids_like(prefix) or self._remote_ids_like(prefix)
            if not matches:
                raise NotFound(f"{ref}: no artifact in the store {self.url} has this id")
            if len(matches) > 1:
                raise BadInput(
                    f"{ref}: ambiguous, matches {len(matches)} artifacts; give more digits"
                )
            return self.fetch(matches[0])
        return super().resolve(ref)

    def _ids_like(self, prefix: str) -> list[str]:
        rows = self.db.execute(
            "SELECT id FROM artifacts WHERE id LIKE ?", (prefix + "%",)
        ).fetchall()
        return sorted(r[0] for r in rows)

    def _remote_ids_like(self, prefix: str) -> list[str]:
        from ..core import objstore as client

        found = {
            key.split("/")[0]
            for key, _ in client.listing(self.url.join("objects"))
            if key.startswith(prefix) and key.endswith("/" + MANIFEST)
        }
        return sorted(found)

    def manifest(self, artifact_id: str) -> dict[str, Any] | None:
        return self._known_manifest(artifact_id)

    def manifest_file(self, artifact_id: str) -> Path:
        return self.manifests / f"{artifact_id}.json"

    def forget(self, artifact_id: str) -> None:
        """The cache's record of an artifact the bucket no longer holds, dropped."""
        with self.locked():
            self.manifest_file(artifact_id).unlink(missing_ok=True)
            unindex_artifact(self.db, artifact_id)

    # -- maintenance ----------------------------------------------------------------
    def gc(self, *, dry_run: bool = False, grace: float = GC_GRACE_SECONDS) -> list[str]:
        """Delete from the bucket the objects nothing holds (`store.s3gc`), then prune
        the cache as a local store's gc prunes; returns the ids deleted from the bucket."""
        return self.gc_report(dry_run=dry_run, grace=grace)["dropped"]

    def gc_report(
        self, *, dry_run: bool = False, grace: float = GC_GRACE_SECONDS
    ) -> dict[str, Any]:
        """`gc`, with what it dropped: {"dropped": ids deleted from the bucket, "cache":
        ids whose copies in the cache were dropped}."""
        from . import s3gc

        return s3gc.gc(self, dry_run=dry_run, grace=grace)

    def reindex(self) -> tuple[int, list[str]]:
        """Rebuild the cache's index from the remote store: every committed manifest and
        every journal object (fetched when the cache lacks them)."""
        from ..core import objstore as client

        problems: list[str] = []
        with self.locked():
            ids = sorted(
                key.split("/")[0]
                for key, _ in client.listing(self.url.join("objects"))
                if key.endswith("/" + MANIFEST) and key.count("/") == 1
            )
            names = self._remote_journal()
            new = self.root / f"index.sqlite.new-{os.getpid()}"
            for p in (new, Path(f"{new}-wal"), Path(f"{new}-shm")):
                p.unlink(missing_ok=True)
            db = connect(new)
            count = 0
            try:
                for artifact_id in ids:
                    try:
                        manifest = self._known_manifest(artifact_id)
                    except BadInput as e:
                        problems.append(str(e))
                        continue
                    if manifest is not None:
                        index_artifact(db, manifest)
                        count += 1
                rows = []
                for name in names:
                    try:
                        entry = self._fetch_journal_entry(name)
                        if entry is not None:
                            rows.append((entry["at"], entry["path"], entry["id"], entry["stage"]))
                    except (ValueError, KeyError, TypeError):
                        problems.append(f"{self.url.join('journal', name)}: not a journal entry")
                db.executemany("INSERT INTO writes(at, path, id, stage) VALUES (?,?,?,?)", rows)
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                db.close()
            install_index(self, new)
        return count, problems


def _checked_manifest(data: bytes, where: str) -> dict[str, Any]:
    """A manifest read from object storage, validated as one read from disk is."""
    return checked_manifest(data, where)


def open_s3_store(value: Any) -> S3Store | None:
    """The S3 store a --store value or MLSTAGE_STORE names, else None."""
    if not is_s3(value):
        return None
    url = as_s3(value)
    assert url is not None
    return S3Store.open_url(url)
