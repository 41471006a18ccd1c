"""The store's cache of file hashes: a payload file's sha256 is read once and trusted
while the file's size, times and inode stay those recorded with it.

`Store` inherits these methods; the cache is the index's `file_hashes` table.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

from ..core.artifact import check_files
from ..core.fsutil import hash_files, sha256_file

# Files up to this size are re-hashed on every read (JSON documents, small models): cheaper
# than trusting anything. Larger ones are trusted while size, mtime, ctime and inode are
# those recorded with their hash (ctime cannot be set back by hand, unlike mtime).
SMALL_FILE = 1 << 20


_PUT = "INSERT OR REPLACE INTO file_hashes VALUES (?,?,?,?,?,?)"


def _key(path: Path, st: os.stat_result) -> tuple[str, int, int, int, int]:
    return (str(path.absolute()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _stat_key(path: Path) -> tuple[str, int, int, int, int]:
    return _key(path, path.stat())


class FileHashes:
    """Payload files checked against manifests, their hashes cached in `db`."""

    @property
    def db(self) -> sqlite3.Connection:  # the store's index: Store's own property
        raise NotImplementedError

    def cached_sha256(self, path: Path) -> str | None:
        """The sha256 recorded for this file, if its size, mtime, ctime and inode are unchanged."""
        return self._cached(_stat_key(path))

    def _cached(self, key: tuple) -> str | None:
        row = self.db.execute(
            "SELECT sha256 FROM file_hashes WHERE path=? AND size=? AND mtime_ns=? AND ctime_ns=?"
            " AND ino=?",
            key,
        ).fetchone()
        return row[0] if row else None

    def cache_sha256(self, path: Path, digest: str) -> None:
        self.db.execute(_PUT, (*_stat_key(path), digest))

    def checked_sha256(self, path: Path) -> str:
        """sha256 for checking a payload: always read for small files, else cached."""
        return sha256_file(path) if path.stat().st_size <= SMALL_FILE else self.file_sha256(path)

    def file_sha256(self, path: Path) -> str:
        """sha256 of a file, skipping the read when size, mtime, ctime and inode are unchanged."""
        digest = self.cached_sha256(path)
        if digest is None:
            digest = sha256_file(path)
            self.cache_sha256(path, digest)
        return digest

    def remember_hashes(self, artifact_dir: Path, manifest: dict[str, Any]) -> None:
        """Cache the hashes of a just-written artifact's files, so checking it later reads nothing."""
        rows = [(*_stat_key(artifact_dir / f["path"]), f["sha256"]) for f in manifest["files"]]
        self.db.executemany(_PUT, rows)

    def remember_output(self, out: Path, stored: Path, manifest: dict[str, Any]) -> None:
        """Cache the hashes of a just-written output's files and of the stored copy they
        share, so later checks of either read nothing.

        A file that is the stored copy (one inode) is vouched for by the stored copy's
        entry, which `add` cached when it checked or wrote it: the entry is carried to the
        file's new ctime (the links made and dropped since moved it) only while size,
        mtime and inode are those cached, so a file changed meanwhile (by another process,
        while this writer waited for the store's lock) stays uncached in both places and
        is read again. An output file of its own (a store on another file system) was
        hashed for the manifest by this writer, under the output's lock: cached as is."""
        rows = []
        for f in manifest["files"]:
            mine = out / f["path"]
            st = mine.stat()
            try:
                kept = (stored / f["path"]).stat()
            except OSError:  # a gc took the stored copy meanwhile
                kept = None
            if kept is not None and (kept.st_ino, kept.st_dev) == (st.st_ino, st.st_dev):
                path, size, mtime, ctime, ino = _key(stored / f["path"], kept)
                carried = self.db.execute(
                    "UPDATE file_hashes SET ctime_ns=? WHERE path=? AND size=? AND mtime_ns=?"
                    " AND ino=? AND sha256=?",
                    (ctime, path, size, mtime, ino, f["sha256"]),
                ).rowcount
                if not carried:
                    continue
            rows.append((*_key(mine, st), f["sha256"]))
        self.db.executemany(_PUT, rows)

    def problems(self, artifact_dir: Path, manifest: dict[str, Any]) -> list[str]:
        """The payload files that do not match the manifest, each with what is wrong."""
        self._hash_uncached(artifact_dir, manifest)
        return check_files(artifact_dir, manifest, digest=self.checked_sha256)

    def _hash_uncached(self, artifact_dir: Path, manifest: dict[str, Any]) -> None:
        """Hash in threads the large payload files of the right size whose hash is not
        cached yet, into the cache `checked_sha256` then reads: a dataset's splits and
        partitions are read at once instead of one after another. Each hash is cached
        under the size, times and inode taken before its file was read: a file swapped or
        written meanwhile no longer matches its entry, and the check reads it again."""
        todo: list[tuple[Path, tuple]] = []
        for f in manifest["files"]:
            p = artifact_dir / f["path"]
            try:
                st = os.lstat(p)
            except OSError:  # gone or unreadable: the check below names it
                continue
            if stat.S_ISREG(st.st_mode) and st.st_size == f["bytes"] > SMALL_FILE:
                key = _key(p, st)  # lstat of a regular file: what stat gives
                if self._cached(key) is None:
                    todo.append((p, key))
        if len(todo) < 2:
            return
        try:
            digests = hash_files([p for p, _ in todo])
        except OSError:
            return
        self.db.executemany(_PUT, [(*key, d) for (_, key), d in zip(todo, digests, strict=True)])

    def intact(self, artifact_dir: Path, manifest: dict[str, Any]) -> bool:
        """Cheap check that an artifact's payload files match its manifest."""
        return not self.problems(artifact_dir, manifest)
