"""`gc` of a store in object storage: the objects nothing holds are deleted from the
bucket, without locks, while writers on other machines may be reusing them; then the
local cache is pruned as a local store's gc prunes one (`maintenance.drop_dead_copies`).

What is held (the live set, walked by `maintenance.with_lineage` as for a local store):

- each path's latest write in the journal (every machine's, merged by `sync`), and what
  its `manifest.json` names now (an `s3://` output read from the bucket; a local path
  of this machine read from disk): one GET per path;
- every model and evaluation in the serving history of a registry folder holding any
  of those paths: deploy logs each version as a write to `REGISTRY/NAME/<N>`, so the
  registries gc knows are the parents of the paths the journal names (`serving.json`
  read there);
- every object modified within the grace (a stage that has just committed its output
  has not logged it yet);
- everything those descend from (lineage edges; every manifest in the bucket is
  indexed first, so the edges are complete).

The protocol, without locks, against writers on other machines that reuse an old object
(a stage whose result has the id of an object the bucket holds uploads nothing and only
logs it). gc's half, one object at a time:

1. Start a clock: monotonic time before the journal is listed; the server's time read
   from an object it just created (`objstore.server_time`), so no age depends on this
   machine's clock.
2. List the journal, the objects (with LastModified), compute the live set; order the
   dead so that an artifact comes before its inputs.
3. For each object not live whose manifest is older than the grace (never less than
   `GC_MIN_GRACE`): stop, and plan again from step 1, once grace - `JOURNAL_WINDOW` has
   passed since step 1; HEAD the manifest; keep it if it is younger than the grace now
   (a writer refreshed it: its lineage is kept too); else delete the manifest (the
   commit point: the object no longer exists) and then its files, each DELETE sent
   within `DELETE_WINDOW` of the HEAD (in one attempt, `objstore.delete_now`), the
   rest left for the next gc.
4. Files without a manifest (a crashed upload, or a deletion cut short) whose newest is
   older than the grace (an upload under way keeps adding files): each HEADed and,
   still older than the grace, deleted within `DELETE_WINDOW`.

The writers' half (`keep_fresh` and `upload`, called by `S3Store.record_write` and
`S3Store.add`):

- Freshness before logging. A writer about to log a write of an object it did not
  create or refresh itself in the last `FRESH` seconds first refreshes the object's
  manifest: HEAD it, then PUT the identical bytes with If-Match on its etag (which moves
  LastModified, and can never bring back a manifest gc has deleted: the refused PUT
  means it is gone, and the writer uploads the object anew from its cache), then logs.
  A journal object gc did not see was written after gc began to list the journal, so
  its object was refreshed after that minus `JOURNAL_WINDOW`, and when gc HEADs it
  (within grace - `JOURNAL_WINDOW` of that start) it is younger than the grace: kept.
- A refresh between gc's HEAD and its DELETE. If the refresh moved LastModified by
  `AT_RISK` (= `GC_MIN_GRACE`) or more (both times by the server's clock), a gc may
  have judged the object deletable just before: the writer waits `SETTLE` seconds
  (more than `DELETE_WINDOW` plus a DELETE's one attempt), then looks again: it
  refreshes again, or, the object gone, uploads it anew with those of its inputs its
  cache holds (gc meets an artifact before its inputs: it may be deleting them next).
- Uploading over leftovers. An upload first lists the object's prefix; when files are
  there already (a crashed upload, or a gc deleting them) or the upload took longer
  than `AT_RISK` / 2, it waits `SETTLE` after uploading, puts back any file that
  vanished meanwhile, and only then creates the manifest.

The assumptions: **a writer's journal object lands within `JOURNAL_WINDOW` (5 min) of
its refresh** (the next request, at most `FRESH` after it; a process stopped for longer
in between can log an object a concurrent gc has deleted); a DELETE lands within its
one attempt's timeout; no single file of an upload takes longer than the grace.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import objstore as client
from ..core.artifact import MANIFEST, manifest_bytes
from ..core.s3url import S3Url, as_s3
from ..errors import BadInput
from .index import index_artifact, unindex_artifact
from .maintenance import (
    ARTIFACT_ID,
    drop_dead_copies,
    held_id,
    held_roots,
    serving_history,
    with_lineage,
)
from .registry import parse_serving

if TYPE_CHECKING:
    from .s3store import S3Store


# The protocol's times, in seconds (the module's docstring):
GC_MIN_GRACE = 900.0  # gc never deletes an object whose manifest is younger than this
AT_RISK = GC_MIN_GRACE  # a refresh moving LastModified this much may have raced gc's DELETE
JOURNAL_WINDOW = 300.0  # assumed: a writer's journal object lands this soon after a refresh
FRESH = 60.0  # a writer that (re)wrote a manifest this recently logs without refreshing it
DELETE_WINDOW = 10.0  # gc sends an object's DELETEs within this of the HEAD that judged it
SETTLE = 60.0  # a writer's wait for such DELETEs to land (DELETE_WINDOW + one attempt)


def settle() -> None:
    """Wait for the deletions a gc may have in flight to land (a hook for the tests)."""
    time.sleep(SETTLE)


# -- the writers' half -------------------------------------------------------------------
def upload(store: S3Store, local: Path, manifest: dict[str, Any]) -> None:
    """An object's files from `local`, then its manifest, created once. Files already at
    its prefix (a crashed upload's, or a gc's deleting them), or an upload slow enough
    for its first files to look abandoned, make it wait for any deletion in flight and
    put back what went, before the commit."""
    artifact_id = manifest["id"]
    base = store.url.join("objects", artifact_id)
    there = {key for key, _ in client.listing(base)}
    if MANIFEST in there:
        return  # committed meanwhile by another writer of the same id: same content
    began = time.monotonic()
    for f in manifest["files"]:
        client.put(base.join(f["path"]), local / f["path"])
    if there or time.monotonic() - began > AT_RISK / 2:
        settle()
        now = {key for key, _ in client.listing(base)}
        for f in manifest["files"]:
            if f["path"] not in now:
                client.put(base.join(f["path"]), local / f["path"])
    started = time.monotonic()
    try:
        client.put(base.join(MANIFEST), manifest_bytes(manifest), create=True)
        store.fresh[artifact_id] = started
    except client.Conflict:
        pass  # committed by another writer of the same id meanwhile: same content


def keep_fresh(
    store: S3Store, manifest: dict[str, Any], seen: frozenset[str] = frozenset()
) -> None:
    """Before a write of this artifact is logged: its manifest refreshed, or the object
    uploaded anew (with the inputs the cache holds) if gc took it; nothing when this
    process did either less than FRESH seconds ago."""
    artifact_id = manifest["id"]
    last = store.fresh.get(artifact_id)
    if last is not None and time.monotonic() - last < FRESH:
        return
    url = store.manifest_url(artifact_id)
    for _ in range(5):
        started = time.monotonic()
        before = client.head(url)
        if before is None:  # collected (or never here): upload it anew from the cache
            local = store.object_dir(artifact_id)
            if (local / MANIFEST).exists() and store.intact(local, manifest):
                upload(store, local, manifest)
                seen |= {artifact_id}
                for i in sorted({i["id"] for i in manifest["inputs"]} - seen):
                    known = _cached_manifest(store, i)
                    if known is not None:
                        keep_fresh(store, known, seen)
            return  # else an artifact this store never held: logged as before
        # the bucket's own bytes put back (not this writer's copy, whose `created` and
        # `environment` may differ): the same object, only its LastModified moves
        blob = client.get(url)
        if blob is None or blob.etag != before["e_tag"]:
            continue  # deleted (or rewritten) since the HEAD: look again
        try:
            client.put(url, blob.data, if_match=blob.etag)
        except client.Conflict:
            continue  # deleted (or rewritten) since the GET: look again
        after = client.head(url)
        if after is None:
            continue
        if client.modified(after) - client.modified(before) < AT_RISK:
            store.fresh[artifact_id] = started
            return
        settle()  # old enough for a gc to have judged it deletable just before the refresh
    raise BadInput(
        f"@{artifact_id[:12]}: cannot keep this artifact in the store {store.url} (it"
        " kept vanishing while a gc ran); run again"
    )


def _cached_manifest(store: S3Store, artifact_id: str) -> dict[str, Any] | None:
    """A manifest the cache holds (no request), or None."""
    try:
        return json.loads(store.manifest_file(artifact_id).read_bytes())
    except (OSError, ValueError):
        return None


# -- gc's half ----------------------------------------------------------------------------
class ServerClock:
    """The server's time now, never ahead of it (ages measured with it are never
    overstated): one reading, carried forward by this machine's monotonic clock."""

    def __init__(self, url: S3Url) -> None:
        self.at, self.mono = client.server_time(url)

    def now(self) -> float:
        return self.at + time.monotonic() - self.mono

    def age(self, modified: float) -> float:
        """How long ago an object was last modified, at least (S3 gives whole seconds)."""
        return self.now() - (modified + 1.0)


@dataclass
class Candidate:
    """An object in the bucket (`objects/<id>/...`) that no live artifact is."""

    id: str
    keys: list[str]  # below objects/<id>/, as listed
    committed: bool  # its manifest was listed
    modified: float  # LastModified of its manifest, else of its newest file


@dataclass
class Plan:
    grace: float  # the grace for the bucket: never below GC_MIN_GRACE
    started: float  # time.monotonic() before the journal was listed
    clock: ServerClock
    live: set[str]
    committed: set[str]  # ids whose manifest was listed
    dead: list[Candidate] = field(default_factory=list)  # not live, old enough when listed


def gc(store: S3Store, *, dry_run: bool, grace: float) -> dict[str, Any]:
    """Delete from the bucket what nothing holds, then prune the cache; returns
    {"dropped": ids deleted from the bucket (or that would be), "cache": ids whose
    cached copies were dropped (or would be)}."""
    dropped: list[str] = []
    while True:
        plan = make_plan(store, grace)
        if dry_run:
            dropped = [c.id for c in plan.dead]
            break
        gone, finished = execute(store, plan)
        dropped += gone
        if finished:
            break
        if not gone:  # planning alone outlasts the time budget: never delete on stale news
            raise BadInput(
                f"gc: listing {store.url} takes longer than the grace allows"
                f" ({plan.grace - JOURNAL_WINDOW:.0f} s); run it with a longer --grace"
            )
    with store.locked():
        for i in dropped if not dry_run else []:
            store.manifest_file(i).unlink(missing_ok=True)
            unindex_artifact(store.db, i)
        if not dry_run:
            _forget_vanished(store, plan.committed)
        cache = drop_dead_copies(
            store, plan.live, time.time() - grace, dry_run=dry_run, unindex=False
        )
    return {"dropped": sorted(set(dropped)), "cache": cache}


def make_plan(store: S3Store, grace: float) -> Plan:
    """Steps 1 and 2: the clock, the journal, the objects, the live set."""
    started = time.monotonic()
    store.sync()  # lists the journal; merges what is new
    clock = ServerClock(store.url)
    listed: dict[str, Candidate] = {}
    for entry in client.entries(store.url.join("objects")):
        artifact_id, _, rest = entry.key.partition("/")
        if not ARTIFACT_ID.match(artifact_id) or not rest:
            continue  # only what the store made: objects/<id>/<file>
        c = listed.setdefault(artifact_id, Candidate(artifact_id, [], False, 0.0))
        c.keys.append(rest)
        if rest == MANIFEST:
            c.committed, c.modified = True, entry.modified
        elif not c.committed:
            c.modified = max(c.modified, entry.modified)
    committed = {i for i, c in listed.items() if c.committed}
    unreadable = _index_unknown(store, committed)
    grace = max(grace, GC_MIN_GRACE)
    # young objects are kept, and so is their lineage: a stage that has just committed
    # its output has not logged it yet
    young = {i for i in committed if clock.age(listed[i].modified) <= grace}
    live = with_lineage(store.db, _roots(store) | young) | unreadable
    plan = Plan(grace, started, clock, live, committed)
    dead = {i: c for i, c in listed.items() if i not in live and clock.age(c.modified) > grace}
    plan.dead = [dead[i] for i in _children_first(store, sorted(dead))]
    return plan


def _children_first(store: S3Store, ids: list[str]) -> list[str]:
    """`ids` ordered so that an artifact comes before those it descends from: an object
    a writer refreshed meanwhile is met before its inputs, which it then keeps."""
    chosen = set(ids)
    children: dict[str, list[str]] = {i: [] for i in ids}
    for i in ids:
        for (parent,) in store.db.execute("SELECT parent FROM edges WHERE child=?", (i,)):
            if parent in chosen and parent != i:
                children[parent].append(i)
    order: list[str] = []
    placed: set[str] = set()
    for root in ids:  # depth first, without recursion: a dead chain of appends is deep
        if root in placed:
            continue
        on_path, stack = {root}, [(root, iter(children[root]))]
        while stack:
            node, rest = stack[-1]
            # (a cycle cannot be in content-addressed lineage; on_path guards anyway)
            child = next((c for c in rest if c not in placed and c not in on_path), None)
            if child is None:
                stack.pop()
                on_path.discard(node)
                placed.add(node)
                order.append(node)
            else:
                on_path.add(child)
                stack.append((child, iter(children[child])))
    return order


def _index_unknown(store: S3Store, committed: set[str]) -> set[str]:
    """Index the bucket's manifests the cache has not seen (objects no journal entry
    names: their lineage edges count too). A manifest that cannot be read stops gc
    (exit 2): what it descends from is unknown, so nothing could be judged dead."""
    known = {r[0] for r in store.db.execute("SELECT id FROM artifacts")}
    found, unreadable = [], set()
    for i in sorted(committed - known):
        try:
            manifest = store.manifest(i)
        except BadInput:
            unreadable.add(i)
            continue
        if manifest is not None:
            found.append(manifest)
    if unreadable:
        first = sorted(unreadable)[0]
        raise BadInput(
            f"gc stops: the manifest of @{first[:12]} (and {len(unreadable) - 1} more) cannot"
            " be read, so what it descends from is unknown; nothing was deleted",
            file=str(store.manifest_url(first)),
        )
    if found:
        with store.locked():
            for manifest in found:
                index_artifact(store.db, manifest)
    return unreadable


def _roots(store: S3Store) -> set[str]:
    """Each path's latest write in the journal, what each path holds now, and what the
    serving histories of the registries among them name."""
    latest = dict(store.db.execute("SELECT path, id FROM writes ORDER BY seq").fetchall())
    places = [as_s3(key) or Path(key) for key in latest]
    return set(latest.values()) | held_roots(places, _held, _history)


def _held(place: S3Url | Path) -> str | None:
    if not isinstance(place, S3Url):
        return held_id(place)
    blob = client.get(place.join(MANIFEST))  # a failure to read stops gc: never guess
    try:
        doc = json.loads(blob.data) if blob is not None else None
    except ValueError:
        return None
    return doc["id"] if isinstance(doc, dict) and isinstance(doc.get("id"), str) else None


def _history(folder: S3Url | Path) -> list[dict[str, Any]] | None:
    if not isinstance(folder, S3Url):
        return serving_history(folder)
    blob = client.get(folder.join("serving.json"))
    if blob is None:
        return None
    try:
        return parse_serving(blob.data, str(folder.join("serving.json"))).get("history", [])
    except BadInput as e:  # damaged: what it serves is unknown, so gc must not guess
        raise BadInput(f"gc stops: {e}; nothing was deleted") from None


def execute(store: S3Store, plan: Plan) -> tuple[list[str], bool]:
    """Step 3 and 4 for each candidate, children before their inputs; returns (ids
    deleted, whether all were seen: False when the time budget ran out and a new plan
    is needed). An object found refreshed keeps what it descends from."""
    budget = plan.grace - JOURNAL_WINDOW
    gone: list[str] = []
    spared: set[str] = set()
    for candidate in plan.dead:
        if candidate.id in spared:
            continue
        if time.monotonic() - plan.started >= budget:
            return gone, False
        outcome = collect(store, plan, candidate)
        if outcome == "deleted":
            gone.append(candidate.id)
        elif outcome == "kept":
            spared |= with_lineage(store.db, [candidate.id])
    return gone, True


@dataclass
class Doomed:
    """An object judged deletable by a HEAD of its manifest at `headed` (monotonic)."""

    url: S3Url
    keys: list[str]  # the manifest first: the commit point goes first
    headed: float


def collect(store: S3Store, plan: Plan, candidate: Candidate) -> str:
    """Delete one object if it is still as old as the plan found it (a HEAD right
    before): "deleted" (some of it, at least), "kept" (a writer refreshed it since the
    listing), or "none" (nothing old was left)."""
    base = store.url.join("objects", candidate.id)
    files = [k for k in candidate.keys if k != MANIFEST]
    if candidate.committed:
        headed = time.monotonic()
        meta = client.head(base.join(MANIFEST))
        if meta is not None:
            if plan.clock.age(client.modified(meta)) <= plan.grace:
                return "kept"
            return "deleted" if delete(Doomed(base, [MANIFEST, *files], headed)) else "none"
    # No manifest (any more): the files of an upload that stopped (its newest file older
    # than the grace: an upload under way keeps adding files), or of a deletion cut short;
    # then each file judged by its own age (a writer uploading anew makes them young).
    now = list(client.entries(base))
    if any(e.key == MANIFEST for e in now):
        return "kept"  # committed meanwhile
    if not now or plan.clock.age(max(e.modified for e in now)) <= plan.grace:
        return "none"
    deleted = False
    for key in sorted(e.key for e in now):
        headed = time.monotonic()
        meta = client.head(base.join(key))
        if meta is not None and plan.clock.age(client.modified(meta)) > plan.grace:
            deleted = delete(Doomed(base, [key], headed)) or deleted
    return "deleted" if deleted else "none"


def delete(doomed: Doomed) -> bool:
    """The DELETEs, each sent within DELETE_WINDOW of the HEAD; whether any was."""
    sent = False
    for key in doomed.keys:
        if time.monotonic() - doomed.headed >= DELETE_WINDOW:
            break  # what is left (files without a manifest) is the next gc's
        client.delete_now(doomed.url.join(key))
        sent = True
    return sent


def _forget_vanished(store: S3Store, committed: set[str]) -> None:
    """Index rows of artifacts the bucket no longer holds (another machine's gc took
    them): dropped once a HEAD confirms the manifest is gone. Run under the lock."""
    for (i,) in store.db.execute("SELECT id FROM artifacts").fetchall():
        if i not in committed and client.head(store.url.join("objects", i, MANIFEST)) is None:
            store.manifest_file(i).unlink(missing_ok=True)
            unindex_artifact(store.db, i)
