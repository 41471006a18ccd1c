"""Keeping a store whole: `verify`, `gc` (what is still held), `reindex` (the index rebuilt
from the objects and the journal, which are the truth)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from ..core.artifact import MANIFEST, check_files, read_manifest
from ..core.fsutil import fsync_path, remove_tree
from ..core.outputs import read_small_json
from ..core.replay import RECORDS as REPLAY_RECORDS
from ..core.storeloc import STATS_CACHE
from ..errors import BadInput, MlstageError
from .index import connect, index_artifact, unindex_artifact
from .registry import read_serving

if TYPE_CHECKING:
    from .store import Store

GC_GRACE_SECONDS = 3600.0
ARTIFACT_ID = re.compile(r"^[0-9a-f]{64}$")


class _HasParent(Protocol):
    @property
    def parent(self: Place) -> Place: ...


Place = TypeVar("Place", bound=_HasParent)  # where an artifact is held: a Path, or an S3Url


class Maintained:
    """The maintenance commands as methods of `Store`, which inherits them (a store in
    object storage overrides `gc`, `gc_report` and `reindex`)."""

    def verify(self, artifact_dir: Path | None = None) -> tuple[int, list[str]]:
        """Re-hash files against manifests. Returns (artifacts checked, problems)."""
        return verify(cast("Store", self), artifact_dir)

    def live_ids(self) -> set[str]:
        """Ids that some path still holds, with everything in their lineage."""
        return live_ids(cast("Store", self))

    def gc(self, *, dry_run: bool = False, grace: float = GC_GRACE_SECONDS) -> list[str]:
        """Drop objects that no path holds and no held artifact descends from."""
        return gc(cast("Store", self), dry_run=dry_run, grace=grace)

    def gc_report(
        self, *, dry_run: bool = False, grace: float = GC_GRACE_SECONDS
    ) -> dict[str, Any]:
        """`gc`, with what it dropped as the CLI prints it: {"dropped": [ids]}."""
        return {"dropped": self.gc(dry_run=dry_run, grace=grace)}

    def reindex(self) -> tuple[int, list[str]]:
        """Rebuild the index from the objects' manifests and the journal."""
        return reindex(cast("Store", self))

    def index_dump(self) -> dict[str, list]:
        """The index's content in a stable order (for comparing against a reindex)."""
        return index_dump(cast("Store", self))


# -- maintenance ----------------------------------------------------------------
def verify(store: Store, artifact_dir: Path | None = None) -> tuple[int, list[str]]:
    """Re-hash files against manifests. Returns (artifacts checked, problems)."""
    dirs = [artifact_dir] if artifact_dir else _all_checkable_dirs(store)
    problems: list[str] = []
    for d in dirs:
        try:
            m = read_manifest(d)
        except Exception as e:  # a broken manifest is itself a finding
            problems.append(str(e))
            continue
        if d.parent == store.objects and d.name != m["id"]:
            problems.append(f"{d}: holds artifact {m['id'][:12]}, not the one its name says")
        problems += check_files(d, m)
    return len(dirs), problems


def _all_checkable_dirs(store: Store) -> list[Path]:
    dirs = sorted(p for p in store.objects.iterdir() if (p / MANIFEST).exists())
    for key in sorted({w["path"] for w in store.writes()}):
        if (store.path_of(key) / MANIFEST).exists():
            dirs.append(store.path_of(key))
    return dirs


def _manifests_on_disk(store: Store) -> Iterator[Path]:
    """Artifact directories under the stable root, outside the store: whatever the
    journal says (moved, renamed, logged by another store), `gc` keeps what they hold."""
    skip = {".git", ".venv", "node_modules", "__pycache__"}
    inside = store.root.resolve()
    for dirpath, dirs, files in os.walk(store.base):
        here = Path(dirpath)
        dirs[:] = [d for d in dirs if d not in skip and (here / d).resolve() != inside]
        if MANIFEST in files:
            yield here


def live_ids(store: Store, on_disk: set[Path] | None = None) -> set[str]:
    """Ids that some path still holds, with everything in their lineage."""
    from ..core.s3url import as_s3

    if on_disk is None:
        on_disk = set(_manifests_on_disk(store))
    paths = [w["path"] for w in store.writes()]
    # outputs and registries in a bucket that a local store wrote to (`deploy --registry
    # s3://...` with a local store): read there, or their models would be collected
    remote = {u for u in map(as_s3, paths) if u is not None}
    held: set[Any] = {Path(p) for p in paths if as_s3(p) is None} | on_disk
    if remote:
        from .s3gc import _held, _history  # a failure to read the bucket stops gc

        return with_lineage(store.db, held_roots(held | remote, _held, _history))
    return with_lineage(store.db, held_roots(held, held_id, serving_history))


def held_roots(
    places: Iterable[Place],
    held: Callable[[Place], str | None],
    history: Callable[[Place], list[dict[str, Any]] | None],
) -> set[str]:
    """The ids `places` hold (`held(place)`: the id of the manifest there, or None), and
    every model and evaluation named in the serving history of a registry folder (a held
    version folder's parent): `monitor --evaluation REGISTRY/NAME` reads the evaluations
    by id, and a version's model is kept even when its folder went. `history(folder)`:
    that folder's history, None when it is not a registry (or a damaged one)."""
    roots: set[str] = set()
    parents = set()
    for place in places:
        found = held(place)
        if found is not None:
            roots.add(found)
            parents.add(place.parent)
    for folder in parents:
        for entry in history(folder) or []:
            roots.update(entry[k] for k in ("model", "evaluation") if isinstance(entry.get(k), str))
    return roots


def held_id(path: Path) -> str | None:
    """The id of the artifact at a local path, None when there is none (or a damaged one)."""
    doc = read_small_json(path / MANIFEST)  # never a fifo or a link to a device
    return doc["id"] if isinstance(doc, dict) and isinstance(doc.get("id"), str) else None


def serving_history(folder: Path) -> list[dict[str, Any]] | None:
    """The history of a registry model folder; None for any other folder. A damaged
    serving.json stops gc (exit 2): the models and evaluations it names are unknown."""
    if not (folder / "serving.json").is_file():
        return None
    try:
        return (read_serving(folder) or {}).get("history", [])
    except (OSError, ValueError, KeyError, MlstageError) as e:
        raise BadInput(f"gc stops: {folder / 'serving.json'} cannot be read ({e});"
                       " nothing was deleted") from None  # fmt: skip


def with_lineage(db: sqlite3.Connection, roots: Iterable[str]) -> set[str]:
    """`roots` and every artifact they descend from (the index's lineage edges)."""
    live: set[str] = set()
    stack = list(roots)
    while stack:
        i = stack.pop()
        if i in live:
            continue
        live.add(i)
        stack += [r[0] for r in db.execute("SELECT parent FROM edges WHERE child=?", (i,))]
    return live


def gc(store: Store, *, dry_run: bool = False, grace: float = GC_GRACE_SECONDS) -> list[str]:
    """Drop objects that no path holds and no held artifact descends from.

    Objects younger than `grace` seconds are kept: a stage that has just added its
    object is about to log it, and a reader may be using an object by id. The records
    of the up-to-date shortcut (`core.replay`) are all dropped.
    """

    on_disk = set(_manifests_on_disk(store))  # the slow walk, before the lock
    with store.locked():
        live = live_ids(store, on_disk)
        return drop_dead_copies(store, live, time.time() - grace, dry_run=dry_run, unindex=True)


def drop_dead_copies(
    store: Store, live: set[str], cutoff: float, *, dry_run: bool, unindex: bool
) -> list[str]:
    """The folders of `store.objects` that are not `live` and were last changed before
    `cutoff` (a time): listed, and unless `dry_run` removed (and the index forgets them
    when `unindex`: a local store; a cache of a store in object storage keeps indexing
    what the bucket holds). Then the cached statistics of partitions no live artifact
    holds and the up-to-date shortcut's records go too. Run under `store.locked()`."""
    # only what the store itself made: folders named by an artifact id
    dead = sorted(
        p.name for p in store.objects.iterdir()
        if ARTIFACT_ID.match(p.name) and p.name not in live and p.stat().st_mtime < cutoff
    )  # fmt: skip
    if dry_run:
        return dead
    for i in dead:
        remove_tree(store.objects / i)
        if unindex:
            unindex_artifact(store.db, i)
    _prune_stats_cache(store, live, cutoff)
    # The up-to-date shortcut's records are a cache: dropped here, not counted.
    records = store.root / REPLAY_RECORDS
    for p in records.iterdir() if records.is_dir() else []:
        if not p.is_dir() or p.is_symlink():  # records are files; nothing else is ours
            p.unlink(missing_ok=True)
    return dead


def _prune_stats_cache(store: Store, live: set[str], cutoff: float) -> None:
    """Drop the cached statistics of partitions no live artifact holds (by sha256)."""
    cache = store.root / STATS_CACHE
    if not cache.is_dir():
        return
    held: set[str] = set()
    for i in live:
        try:
            manifest = json.loads(store.manifest_file(i).read_text())
        except (OSError, ValueError):
            continue
        held.update(f["sha256"] for f in manifest.get("files", []))
    for p in cache.iterdir():
        if p.name not in held and not p.is_symlink() and p.stat().st_mtime < cutoff:
            remove_tree(p) if p.is_dir() else p.unlink(missing_ok=True)


def install_index(store: Store, new: Path) -> None:
    """Swap a rebuilt index (`new`, closed) in for the store's, and reconnect."""
    store.close()
    os.replace(new, store.index_path)
    for suffix in ("-wal", "-shm"):
        Path(f"{new}{suffix}").unlink(missing_ok=True)
        Path(f"{store.index_path}{suffix}").unlink(missing_ok=True)
    fsync_path(store.root)
    store._db = connect(store.index_path)


def reindex(store: Store) -> tuple[int, list[str]]:
    """Rebuild the index from the objects' manifests and the journal.

    The new index is built beside the old one and swapped in only when complete, so a
    failure leaves the old one in place. Returns (artifacts indexed, problems): the
    manifests that could not be read, and torn journal lines, each skipped.
    """
    with store.locked():
        new = store.root / f"index.sqlite.new-{os.getpid()}"
        for p in (new, Path(f"{new}-wal"), Path(f"{new}-shm")):
            p.unlink(missing_ok=True)
        db = connect(new)
        problems: list[str] = []
        count = 0
        try:
            for d in sorted(store.objects.iterdir()):
                if not (d / MANIFEST).exists():
                    continue
                try:
                    m = read_manifest(d)
                except MlstageError as e:
                    problems.append(str(e))
                    continue
                index_artifact(db, m)
                count += 1
            rows = []
            if store.journal.exists():
                for n, line in enumerate(store.journal.read_bytes().splitlines(), start=1):
                    try:
                        entry = json.loads(line)
                        rows.append((entry["at"], entry["path"], entry["id"], entry["stage"]))
                    except (ValueError, KeyError, TypeError):
                        if line.strip():
                            problems.append(f"{store.journal}: line {n} is torn (skipped)")
            db.executemany("INSERT INTO writes(at, path, id, stage) VALUES (?,?,?,?)", rows)
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()
        install_index(store, new)
        # tmp/ holds objects being added and stdin being spooled: remove only what a
        # dead process left (each entry's name carries its writer's pid).
        for entry in (store.root / "tmp").glob("*") if (store.root / "tmp").exists() else []:
            pid = _pid_in(entry.name)  # None: not a name mlstage gives, left alone
            if pid is not None and not _pid_alive(pid):
                remove_tree(entry) if entry.is_dir() else entry.unlink(missing_ok=True)
    return count, problems


def index_dump(store: Store) -> dict[str, list]:
    """The index's content in a stable order (for comparing against a reindex)."""
    db = store.db
    return {
        "artifacts": db.execute("SELECT * FROM artifacts ORDER BY id").fetchall(),
        "edges": db.execute("SELECT * FROM edges ORDER BY child, parent, role, path").fetchall(),
        "writes": db.execute("SELECT at, path, id, stage FROM writes ORDER BY seq").fetchall(),
    }


def _pid_in(name: str) -> int | None:
    """The writer's pid in a tmp entry's name: '<id>.<pid>', 'out-<pid>-<rand>', 'stdin-<pid>'."""
    import re

    m = re.search(r"(?:\.|^out-|^stdin-|^s3src-|^fetch-)(\d+)(?:-|$)", name)
    return int(m.group(1)) if m else None


def _pid_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
