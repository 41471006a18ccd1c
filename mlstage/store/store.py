"""The store: every artifact version ever written, immutable, with a SQLite index.

Layout of a store directory (`.mlstage/` by default):

    objects/<id>/        manifest.json and payload files, read-only
    journal.jsonl        one line per version written to a path (the history `log` shows)
    index.sqlite         artifacts, lineage edges and writes; `reindex` rebuilds it
                         from objects/*/manifest.json and journal.jsonl
    lock                 serialises writers of the store
    tmp/                 objects being added

The journal and the objects are the truth; the index is derived from them, plus
a cache of file hashes (keyed by path, size, mtime and inode) that lets an
up-to-date check and the hashing of large sources skip re-reading files.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..core import replay
from ..core.artifact import (
    MANIFEST,
    manifest_bytes,
    read_manifest,
    utc_now,
)
from ..core.fsutil import (
    file_lock,
    fsync_path,
    is_empty_dir,
    remove_tree,
    write_bytes_durably,
)
from ..core.outputs import STORE_MARKER, create_store, is_store, owner
from ..core.s3url import S3Url, as_s3, is_s3
from ..core.storeloc import find_store_root
from ..errors import BadInput, CorruptArtifact, NotFound, opt
from .file_hashes import FileHashes
from .index import connect, index_artifact
from .maintenance import Maintained


def find_store(explicit: str | os.PathLike | None = None, near: Path | None = None) -> Path:
    """--store, else MLSTAGE_STORE, else the first .mlstage/ up from `near`, then from
    the current directory, else a new .mlstage/ in the current directory."""
    return Path(find_store_root(explicit, str(near) if near is not None else None))


def normalise_path(path: Path) -> str:
    """The absolute form of a path under which its writes are logged."""
    path = Path(os.path.abspath(path))
    parent = path.parent.resolve() if path.parent.exists() else path.parent
    return str(parent / path.name)


def store_for(store: str | os.PathLike | Store | None, out: str | os.PathLike | None) -> Store:
    """The store a stage writing `out` uses: the one given, or found near the output."""
    if isinstance(store, Store):
        return store
    near = Path(out).absolute().parent if out is not None and not is_s3(out) else None
    return Store.open(store, near=near)


class Store(Maintained, FileHashes):
    """A store on this machine; `verify`, `gc`, `reindex` and their kin come from
    `maintenance.Maintained`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.journal = self.root / "journal.jsonl"
        self._db: sqlite3.Connection | None = None

    # -- opening -------------------------------------------------------------
    @classmethod
    def open(cls, explicit: str | os.PathLike | None = None, near: Path | None = None) -> Store:
        named = explicit or os.environ.get("MLSTAGE_STORE")
        if is_s3(named):  # object storage: never a local folder named "s3:"
            from .s3store import S3Store

            return S3Store.open_url(str(as_s3(named)))
        store = cls(find_store(explicit, near))
        if store.root.exists() and not store.root.is_dir():
            raise BadInput(
                f"the store must be a directory; this is a file (check {opt('store')} and MLSTAGE_STORE)",
                file=str(store.root),
            )
        if store.root.is_dir() and not is_empty_dir(store.root) and not is_store(store.root):
            # gc and reindex delete what they do not know in a store: never in a user's folder
            raise BadInput(
                f"is not an mlstage store (no {STORE_MARKER} file) and not empty; check"
                f" {opt('store')} and MLSTAGE_STORE",
                file=str(store.root),
            )
        held = owner(store.root)
        if held is not None and held[0] != "the store":
            raise BadInput(f"the store cannot be inside {held[0]} {held[1]}", file=str(store.root))
        try:
            if not is_store(store.root):
                create_store(store.root)
            store.objects.mkdir(exist_ok=True)
            if not os.access(store.root, os.W_OK | os.X_OK):
                raise PermissionError(13, "permission denied")
        except OSError as e:
            raise BadInput(
                f"cannot use this folder as the store: {e.strerror or e}", file=str(store.root)
            ) from None
        return store

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self._db = connect(self.index_path)
            except sqlite3.DatabaseError as e:
                # A damaged index (it is derived data): set it aside and rebuild it from
                # the objects and the journal, which are the truth.
                aside = self.index_path.with_name(f"index.sqlite.damaged-{os.getpid()}")
                os.replace(self.index_path, aside)
                for suffix in ("-wal", "-shm"):
                    Path(f"{self.index_path}{suffix}").unlink(missing_ok=True)
                replay.veto()  # a repair said once: not a record to repeat
                sys.stderr.write(
                    f"warning: {self.index_path}: the index is damaged ({e}); moved to"
                    f" {aside.name} and rebuilt from the manifests and the journal\n"
                )
                self.reindex()
        assert self._db is not None  # connected, or rebuilt by reindex
        return self._db

    def has_object(self, artifact_id: str) -> bool:
        return (self.object_dir(artifact_id) / MANIFEST).exists()

    @property
    def index_path(self) -> Path:
        return self.root / "index.sqlite"

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @contextmanager
    def locked(self) -> Iterator[None]:
        with file_lock(self.root / "lock"):
            yield

    # -- paths ----------------------------------------------------------------
    @property
    def base(self) -> Path:
        """The stable root that logged paths are relative to: the directory holding the
        store. Moving the project folder (store and outputs together) keeps every logged
        path right; a path outside it is logged absolute."""
        return self.root.parent.resolve()

    def path_key(self, path: Path | S3Url) -> str:
        """How a written path is logged in the journal and the index (an `s3://`
        address as it is)."""
        if isinstance(path, S3Url) or is_s3(path):
            return str(as_s3(path))
        full = Path(normalise_path(path))
        try:
            return full.relative_to(self.base).as_posix() or "."
        except ValueError:
            return str(full)

    def path_of(self, key: str) -> Path:
        """The path a logged key names now (absolute keys come from older versions)."""
        p = Path(key)
        return p if p.is_absolute() else self.base / p

    def _keys(self, path: Path | S3Url) -> tuple[str, str]:
        """The key of a path, and its absolute form (how versions before 0.2 logged it)."""
        s3 = isinstance(path, S3Url) or is_s3(path)
        return self.path_key(path), self.path_key(path) if s3 else normalise_path(path)  # type: ignore[arg-type]

    def output_lock(self, out: Path) -> Path:
        """The lock file of an output path: kept in the store (`locks/`), not beside the
        output, so no hidden file is left in the user's folders."""
        import hashlib

        folder = self.root / "locks"
        folder.mkdir(exist_ok=True)
        return folder / f"{hashlib.sha256(normalise_path(out).encode()).hexdigest()[:32]}.lock"

    def check_input(self, artifact_dir: Path, manifest: dict[str, Any], ref: str) -> None:
        """Bad input (exit 2) naming the first payload file that does not match its
        manifest, and how to get the artifact back."""
        found = self.problems(artifact_dir, manifest)
        if not found:
            return
        short = manifest["id"][:12]
        stored = self.object_dir(manifest["id"])
        if stored.resolve() != Path(artifact_dir).resolve() and self.intact(stored, manifest):
            fix = f"restore it with `mlstage checkout @{short} -o {ref}`"
        else:
            fix = (
                "the store's copy is damaged too: rerun the stage that wrote it, which repairs both"
            )
        raise CorruptArtifact(f"{found[0]}; {fix}")

    # -- adding ---------------------------------------------------------------------
    def object_dir(self, artifact_id: str) -> Path:
        return self.objects / artifact_id

    def add(self, payload_dir: Path, manifest: dict[str, Any]) -> Path:
        """Keep an artifact written to `payload_dir` (manifest included) in the store.

        Files are hard-linked where possible (so the output and the store share
        one read-only copy), copied otherwise. Adding an id already present shares
        its files (and indexes it, if a killed writer left it unindexed). Returns the
        object directory.
        """
        target = self.object_dir(manifest["id"])
        if (target / MANIFEST).exists() and self.intact(target, manifest):
            _share(target, payload_dir, manifest)
            if self._indexed(target.name):
                return target
            with self.locked():
                if self._index_found(target):
                    return target
            # a gc took the unindexed object meanwhile: kept again, from the payload
        tmp = self.root / "tmp" / f"{manifest['id']}.{os.getpid()}"
        remove_tree(tmp)
        tmp.mkdir(parents=True)
        for name in [f["path"] for f in manifest["files"]] + [MANIFEST]:
            src, dst = payload_dir / name, tmp / name
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
            os.chmod(dst, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            fsync_path(dst)
        fsync_path(tmp)
        with self.locked():
            if (target / MANIFEST).exists():
                if self.intact(target, manifest):
                    remove_tree(tmp)
                    self._index_found(target)  # (it is there: the lock is held)
                    return target
                # The same id made again: the stored copy was damaged, this one repairs it.
                remove_tree(target)
            os.rename(tmp, target)
            fsync_path(self.objects)
            index_artifact(self.db, manifest)
            # its files: this writer's own, hashed for the manifest and seen by no one else
            self.remember_hashes(target, manifest)
        return target

    def _indexed(self, artifact_id: str) -> bool:
        row = self.db.execute("SELECT 1 FROM artifacts WHERE id=?", (artifact_id,)).fetchone()
        return row is not None

    def _index_found(self, target: Path) -> bool:
        """Index an object found in place but not in the index (the store's lock held);
        False if it is not there. A writer killed between renaming it into `objects/`
        and indexing it left it so, and the next writer of the same id finds it there.
        From its own manifest, as `reindex` would."""
        if not (target / MANIFEST).exists():
            return False
        if not self._indexed(target.name):
            index_artifact(self.db, read_manifest(target))
        return True

    def hold(self, manifest: dict[str, Any]) -> None:
        """Keep an artifact from a `gc` running now, before naming it where gc looks
        (a registry's history): waits for such a gc, then renews the object's age (an
        artifact this store does not hold is left alone)."""
        with self.locked():
            d = self.object_dir(manifest["id"])
            if (d / MANIFEST).exists():
                os.utime(d)

    def record_write(self, path: Path | S3Url, manifest: dict[str, Any]) -> None:
        """Append 'this version was written to this path' to the journal and index."""
        entry = {
            "at": utc_now(),
            "path": self.path_key(path),
            "id": manifest["id"],
            "stage": manifest["stage"],
        }
        line = (json.dumps(entry, sort_keys=True) + "\n").encode()
        with self.locked():
            with open(self.journal, "ab") as f:
                if f.tell() and _last_byte(self.journal) != b"\n":
                    # A writer killed mid-line: end its torn line so this one stays whole.
                    line = b"\n" + line
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            self.db.execute(
                "INSERT INTO writes(at, path, id, stage) VALUES (?,?,?,?)",
                (entry["at"], entry["path"], entry["id"], entry["stage"]),
            )

    def last_write(self, path: Path | S3Url) -> str | None:
        row = self.db.execute(
            "SELECT id FROM writes WHERE path IN (?,?) ORDER BY seq DESC LIMIT 1", self._keys(path)
        ).fetchone()
        return row[0] if row else None

    # -- reading --------------------------------------------------------------------
    def resolve(self, ref: str) -> Path:
        """An artifact directory from a path, `s3://...` (fetched) or `@<id prefix>`."""
        if is_s3(ref):
            from .s3outputs import fetch_artifact

            return fetch_artifact(self, str(as_s3(ref)))
        if ref.startswith("@"):
            prefix = ref[1:].lower()
            if len(prefix) < 6 or any(c not in "0123456789abcdef" for c in prefix):
                raise BadInput(f"{ref}: an id reference is @ and 6 or more hex digits")
            matches = [p.name for p in self.objects.glob(f"{prefix}*") if (p / MANIFEST).exists()]
            if not matches:
                raise NotFound(f"{ref}: no artifact in the store {self.root} has this id")
            if len(matches) > 1:
                raise BadInput(
                    f"{ref}: ambiguous, matches {len(matches)} artifacts; give more digits"
                )
            return self.objects / matches[0]
        path = Path(ref)
        if path.name == MANIFEST:
            path = path.parent
        if not path.exists():
            raise NotFound("no such artifact directory", file=ref)
        return path

    def load(self, ref: str) -> tuple[Path, dict[str, Any]]:
        path = self.resolve(ref)
        return path, read_manifest(path)

    def manifest(self, artifact_id: str) -> dict[str, Any] | None:
        d = self.object_dir(artifact_id)
        return read_manifest(d) if (d / MANIFEST).exists() else None

    def manifest_file(self, artifact_id: str) -> Path:
        """Where this machine keeps the artifact's manifest (it may not exist)."""
        return self.object_dir(artifact_id) / MANIFEST

    def writes(self, path: Path | S3Url | None = None) -> list[dict[str, Any]]:
        q = "SELECT w.seq, w.at, w.path, w.id, w.stage, a.kind, a.summary FROM writes w LEFT JOIN artifacts a ON a.id = w.id"
        args: tuple = ()
        if path is not None:
            q += " WHERE w.path IN (?,?)"
            args = self._keys(path)
        rows = self.db.execute(q + " ORDER BY w.seq DESC", args).fetchall()
        return [
            {
                "seq": r[0],
                "created": r[1],
                # where the logged path is now (an s3:// address as it is)
                "path": r[2] if is_s3(r[2]) else str(self.path_of(r[2])),
                "id": r[3],
                "stage": r[4],
                "kind": r[5],
                "summary": json.loads(r[6]) if r[6] else None,
            }
            for r in rows
        ]

    def artifacts(self, kind: str | None = None) -> list[dict[str, Any]]:
        q = "SELECT id, kind, stage, created, summary, params FROM artifacts"
        rows = self.db.execute(
            q + (" WHERE kind=?" if kind else "") + " ORDER BY created, id", (kind,) if kind else ()
        ).fetchall()
        return [
            {
                "id": r[0],
                "kind": r[1],
                "stage": r[2],
                "created": r[3],
                "summary": json.loads(r[4]),
                "params": json.loads(r[5]),
            }
            for r in rows
        ]

    def lineage(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """The tree of inputs back to raw sources, as nested dicts."""
        from . import lineage

        return lineage.lineage(self, manifest)


def write_payload_manifest(payload_dir: Path, manifest: dict[str, Any]) -> None:
    write_bytes_durably(payload_dir / MANIFEST, manifest_bytes(manifest))


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


def _share(stored: Path, payload_dir: Path, manifest: dict[str, Any]) -> None:
    """Make a new payload's files hardlinks of the identical stored copies: the output
    shares the store's read-only files, as when the object is added."""
    for name in [f["path"] for f in manifest["files"]] + [MANIFEST]:
        target = payload_dir / name
        if os.path.samefile(stored / name, target):
            continue  # already one file (rename would leave the new link behind)
        link = payload_dir / f".{name}.link"
        try:
            os.link(stored / name, link)
            os.replace(link, target)
        except OSError:  # another file system: the output keeps its own (read-only) copy
            os.chmod(target, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        finally:
            link.unlink(missing_ok=True)
