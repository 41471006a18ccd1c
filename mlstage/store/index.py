"""The store's SQLite index: artifacts, lineage edges, writes and a cache of file hashes.

Derived data: `reindex` rebuilds it from the objects and the journal. WAL mode, so
readers never wait for a writer.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS artifacts(
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, stage TEXT NOT NULL, fingerprint TEXT NOT NULL,
    created TEXT NOT NULL, summary TEXT NOT NULL, params TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS edges(
    child TEXT NOT NULL, parent TEXT NOT NULL, role TEXT NOT NULL, path TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS edges_child ON edges(child);
CREATE INDEX IF NOT EXISTS edges_parent ON edges(parent);
CREATE TABLE IF NOT EXISTS writes(
    seq INTEGER PRIMARY KEY, at TEXT NOT NULL, path TEXT NOT NULL, id TEXT NOT NULL,
    stage TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS writes_path ON writes(path);
CREATE TABLE IF NOT EXISTS file_hashes(
    path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER, ino INTEGER,
    sha256 TEXT);
"""


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA busy_timeout=60000")
        # WAL with synchronous=NORMAL cannot corrupt the index; a power cut may drop the
        # last transactions, which `reindex` restores from the fsynced journal and objects.
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError("quick_check found damage")
    except BaseException:
        db.close()
        raise
    return db


def index_artifact(db: sqlite3.Connection, m: dict[str, Any]) -> None:
    """An artifact and its lineage edges, in one transaction."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            "INSERT OR REPLACE INTO artifacts VALUES (?,?,?,?,?,?,?)",
            (
                m["id"],
                m["kind"],
                m["stage"],
                m["fingerprint"],
                m["created"],
                json.dumps(m["summary"]),
                json.dumps(m["params"], sort_keys=True),
            ),
        )
        db.execute("DELETE FROM edges WHERE child=?", (m["id"],))
        db.executemany(
            "INSERT INTO edges VALUES (?,?,?,?)",
            [(m["id"], i["id"], i["role"], i["path"]) for i in m["inputs"]],
        )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def unindex_artifact(db: sqlite3.Connection, artifact_id: str) -> None:
    """Forget an artifact `gc` removed: its row and the edges to its inputs (edges from
    artifacts that name it as an input stay: their manifests say so)."""
    db.execute("DELETE FROM artifacts WHERE id=?", (artifact_id,))
    db.execute("DELETE FROM edges WHERE child=?", (artifact_id,))
