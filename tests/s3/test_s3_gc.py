"""`gc` on a store in object storage (moto's server on loopback): what it deletes from the
bucket and keeps, its grace, its dry run, the cache it prunes, and the interleavings of
its protocol with a writer reusing an old object, played in order.

Ages are measured by the server's clock (`s3gc.ServerClock`); the tests set that clock
ahead instead of waiting an hour, so objects made before a moment are old to gc."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from mlstage import evaluate, featurize, ingest, stats, train
from mlstage.core import objstore as client
from mlstage.core.s3url import S3Url
from mlstage.store import s3gc
from mlstage.store.s3gc import GC_MIN_GRACE
from mlstage.store.s3store import S3Store
from mlstage.store.store import Store

from ..conftest import cli, write_json

SPEC = {"format": "mlstage-features/1", "label": "income", "features": [
    {"column": "age", "transform": "standardize", "impute": "median"},
    {"column": "sex", "transform": "one_hot"}]}  # fmt: skip
TRAIN = {"format": "mlstage-train/1", "task": "classification", "seed": 0,
         "estimator": "LogisticRegression"}  # fmt: skip
EVALUATE = {"format": "mlstage-evaluate/1", "positive": ">50K"}


def machine(store: str, cache: Path, monkeypatch) -> S3Store:
    """The store as one machine sees it: its own local cache."""
    monkeypatch.setenv("MLSTAGE_S3_CACHE", str(cache))
    opened = Store.open(store)
    assert isinstance(opened, S3Store)
    return opened


def modified(store: str, artifact_id: str) -> float:
    meta = client.head(S3Url.parse(store).join("objects", artifact_id, "manifest.json"))
    assert meta is not None
    return client.modified(meta)


def objects(store: str) -> dict[str, set[str]]:
    """id -> the keys below objects/<id>/ in the bucket."""
    found: dict[str, set[str]] = {}
    for key, _ in client.listing(S3Url.parse(store).join("objects")):
        i, _, rest = key.partition("/")
        found.setdefault(i, set()).add(rest)
    return found


def clock_at(monkeypatch, now: float) -> None:
    """gc's reading of the server's clock, set to `now`."""
    monkeypatch.setattr(s3gc.ServerClock, "now", lambda self: now)


def ingest_to(source: Path, out: str, seed: int, store) -> str:
    r = ingest([source], out, null=["?"], split={"train": 8, "eval": 2}, seed=seed, store=store)
    return r.manifest["id"]


def test_gc_deletes_what_nothing_holds_and_keeps_what_is_held(
    bucket, adult_small, tmp_path, monkeypatch
):
    at, store = f"s3://{bucket}", f"s3://{bucket}/store"
    spec, config = write_json(tmp_path / "spec.json", SPEC), write_json(tmp_path / "t.json", TRAIN)
    evaluation = write_json(tmp_path / "e.json", EVALUATE)
    here = machine(store, tmp_path / "cache", monkeypatch)
    # two versions of data and stats: the first of each is dead
    d0 = ingest_to(adult_small, f"{at}/data", 0, here)
    s0 = stats(f"{at}/data", f"{at}/stats", store=here).manifest["id"]
    d1 = ingest_to(adult_small, f"{at}/data", 1, here)
    s1 = stats(f"{at}/data", f"{at}/stats", store=here).manifest["id"]
    f = featurize(f"{at}/data", f"{at}/features", spec=spec, store=here).manifest["id"]
    m = train(f"{at}/features", f"{at}/model", config=config, store=here).manifest["id"]
    # e1 is deployed with the model, then its path is overwritten: only the registry's
    # serving history holds it
    e1 = evaluate(f"{at}/model", f"{at}/data", f"{at}/eval", config=evaluation, split="eval",
                  store=here).manifest["id"]  # fmt: skip
    r = cli("deploy", f"{at}/model", "--evaluation", f"{at}/eval", "--skip-check",
            "--allow-unblessed", "--registry", f"{at}/registry", "--name", "income",
            "--store", store)  # fmt: skip
    assert r.exit_code == 0, r.stderr
    e2 = evaluate(f"{at}/model", f"{at}/data", f"{at}/eval", config=evaluation, split="train",
                  store=here).manifest["id"]  # fmt: skip
    # files of a crashed upload (no manifest), and of an upload under way (its newest file
    # is young: it is kept whole)
    orphan, uploading = "f" * 64, "e" * 64
    client.put(S3Url.parse(store).join("objects", orphan, "data.parquet"), b"half an upload")
    client.put(S3Url.parse(store).join("objects", uploading, "a.parquet"), b"first file")
    # another machine knows every manifest now (its cache will outlive the objects)
    there = machine(store, tmp_path / "cache-there", monkeypatch)
    there.close()
    monkeypatch.setenv("MLSTAGE_S3_CACHE", str(tmp_path / "cache"))
    time.sleep(1.1)  # a second later by the server's clock: a young dead object
    d2 = ingest_to(adult_small, f"{at}/scratch", 2, here)
    d3 = ingest_to(adult_small, f"{at}/scratch", 3, here)
    client.put(S3Url.parse(store).join("objects", uploading, "b.parquet"), b"second file")
    live = {d1, s1, f, m, e1, e2, d3}
    before = objects(store)
    assert {d0, s0, d2, orphan, uploading} | live <= set(before)
    stats_cache = tmp_path / "cache" / bucket / "store" / "cache" / "stats"
    shas = {i: {x["sha256"] for x in here.manifest(i)["files"]} for i in (d0, d1)}
    assert shas[d0] | shas[d1] <= {p.name for p in stats_cache.iterdir()}

    # with the server's own clock nothing is old: nothing would go from the bucket
    r = cli("gc", "--dry-run", "--json", "--store", store)
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["dropped"] == []

    # an hour on, all but d2 (made a second after the rest) is older than the grace
    clock_at(monkeypatch, modified(store, d2) + 3600 + 0.5)
    r = cli("gc", "--dry-run", "--json", "--grace", "3600", "--store", store)
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["dropped"] == sorted([d0, s0, orphan])
    assert json.loads(r.stdout)["cache"] == []  # the cache's copies are young by their mtime
    # --grace below gc's minimum counts as the minimum for the bucket, not for the cache
    clock_at(monkeypatch, modified(store, d2) + GC_MIN_GRACE + 0.5)
    r = cli("gc", "--dry-run", "--json", "--grace", "0", "--store", store)
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["dry_run"] is True
    assert report["dropped"] == sorted([d0, s0, orphan])
    # the cache: copies of the dead (d2 is young in the bucket: kept, with its lineage)
    assert {d0, s0} <= set(report["cache"]) and not set(report["cache"]) & (live | {d2})
    assert objects(store) == before  # a dry run deletes nothing

    r = cli("gc", "--grace", "0", "--store", store)
    assert r.exit_code == 0, r.stderr
    assert sorted(r.stdout.split("\n")[:3]) == sorted(i[:12] for i in (d0, s0, orphan))
    assert f"{d0[:12]}\tcache" in r.stdout
    assert "dropped 3 artifacts" in r.stderr and "cached copies" in r.stderr
    after = objects(store)
    assert not {d0, s0, orphan} & set(after)  # gone, manifest and files
    for i in live | {d2, uploading}:  # the young dead one is kept by the grace
        assert after[i] == before[i]
    registry = S3Url.parse(f"{at}/registry/income")
    assert client.head(registry.join("1", "manifest.json")) is not None
    # the cache: copies and statistics of dead objects pruned, the live ones' kept
    assert not (here.objects / d0).exists() and not (here.objects / s0).exists()
    assert (here.objects / d1 / "manifest.json").exists()
    assert (here.objects / d2 / "manifest.json").exists()
    left = {p.name for p in stats_cache.iterdir()}
    assert not shas[d0] - shas[d1] & left and shas[d1] <= left

    # reading a collected id: exit 2 naming it, here and on a machine whose cache knew it
    r = cli("show", f"@{d0[:12]}", "--store", store)
    assert r.exit_code == 2 and d0[:12] in r.stderr
    monkeypatch.setenv("MLSTAGE_S3_CACHE", str(tmp_path / "cache-there"))
    r = cli("stats", f"@{d0[:12]}", "-o", str(tmp_path / "st"), "--store", store)
    assert r.exit_code == 2, r.stderr
    assert f"@{d0[:12]}" in r.stderr and "removed from the store" in r.stderr

    # the index after gc is what a fresh cache rebuilds from the bucket
    monkeypatch.setenv("MLSTAGE_S3_CACHE", str(tmp_path / "cache"))
    dump = Store.open(store).index_dump()
    assert {row[0] for row in dump["artifacts"]} == set(after) - {uploading}
    shutil.rmtree(tmp_path / "cache")
    r = cli("reindex", "--store", store)
    assert r.exit_code == 0, r.stderr
    assert Store.open(store).index_dump() == dump


def two_versions(source: Path, bucket: str, store) -> tuple[str, str]:
    """Data and its stats written twice: the first dataset d0 and its stats s0 are dead."""
    d0 = ingest_to(source, f"s3://{bucket}/data", 0, store)
    s0 = stats(f"s3://{bucket}/data", f"s3://{bucket}/stats", store=store).manifest["id"]
    ingest_to(source, f"s3://{bucket}/data", 1, store)
    stats(f"s3://{bucket}/data", f"s3://{bucket}/stats", store=store)
    return d0, s0


def test_a_rewrite_refreshes_an_old_object_so_a_concurrent_gc_keeps_it(
    bucket, adult_small, tmp_path, monkeypatch
):
    """gc lists the journal; a writer on another machine then makes an old dead object
    again (its manifest exists: nothing is uploaded) and logs it at a new path; then gc
    looks at the object. The writer's refresh of the manifest keeps it, and with it its
    input (met after it); a writer that skipped the refresh would leave a journal entry
    naming nothing."""
    store = f"s3://{bucket}/store"
    gc_machine = machine(store, tmp_path / "gc-cache", monkeypatch)
    d0, s0 = two_versions(adult_small, bucket, gc_machine)
    clock_at(monkeypatch, modified(store, s0) + GC_MIN_GRACE + 1.5)  # d0, s0 are old...
    time.sleep(1.1)  # ...and whatever is modified from now on is young
    plan = s3gc.make_plan(gc_machine, grace=0)
    assert [c.id for c in plan.dead] == [s0, d0]  # the child first

    writer = machine(store, tmp_path / "writer-cache", monkeypatch)
    again = stats(f"@{d0}", f"s3://{bucket}/copy", store=writer)
    assert again.manifest["id"] == s0 and not again.up_to_date
    assert s3gc.execute(gc_machine, plan) == ([], True)
    assert {s0, d0} <= set(objects(store))
    reader = machine(store, tmp_path / "reader-cache", monkeypatch)
    reader.fetch(s0)  # whole, verified
    reader.fetch(d0)

    # the same interleaving with a writer that does not refresh: the object goes while
    # the journal's latest write of s3://.../copy2 names it
    clock_at(monkeypatch, time.time() + 7200)
    r = cli("stats", f"s3://{bucket}/data", "-o", f"s3://{bucket}/copy", "--store", store)
    assert r.exit_code == 0, r.stderr  # s0 is dead again
    plan = s3gc.make_plan(gc_machine, grace=0)
    assert s0 in [c.id for c in plan.dead]
    monkeypatch.setattr(s3gc, "keep_fresh", lambda store, manifest: None)
    assert stats(f"@{d0}", f"s3://{bucket}/copy2", store=writer).manifest["id"] == s0
    gone, _ = s3gc.execute(gc_machine, plan)
    assert s0 in gone
    assert client.head(S3Url.parse(store).join("objects", s0, "manifest.json")) is None
    log = json.loads(cli("log", "--json", "--store", store).stdout)
    assert next(w["id"] for w in log if w["path"] == f"s3://{bucket}/copy2") == s0


def test_a_refresh_between_gcs_head_and_its_delete_puts_the_object_back(
    bucket, adult_small, tmp_path, monkeypatch
):
    """gc HEADs an old manifest; before its DELETEs land, a writer refreshes it. The
    refresh moved LastModified by more than gc's minimum grace (the object was old), so
    the writer waits for any deletion in flight: meanwhile gc deletes the object and
    then its input. The writer finds the object gone and uploads it again, and its input
    too (both are in its cache), before logging."""
    store = f"s3://{bucket}/store"
    gc_machine = machine(store, tmp_path / "gc-cache", monkeypatch)
    d0, s0 = two_versions(adult_small, bucket, gc_machine)
    writer = machine(store, tmp_path / "writer-cache", monkeypatch)
    writer.fetch(d0)  # the writer read d0 and made s0 again, say
    writer.fetch(s0)
    manifest = writer.manifest(s0)
    assert manifest is not None
    clock_at(monkeypatch, modified(store, s0) + GC_MIN_GRACE + 1.5)
    time.sleep(2.1)
    # the writer counts a manifest as old from 1 s on (as if gc's minimum grace were 1 s)
    monkeypatch.setattr(s3gc, "AT_RISK", 1.0)
    plan = s3gc.make_plan(gc_machine, grace=0)
    assert [c.id for c in plan.dead] == [s0, d0]
    real_delete, held = s3gc.delete, []

    def gc_goes_on() -> None:  # the writer waits; gc's DELETEs land, then it takes d0
        if held:
            real_delete(held.pop())
            assert s3gc.collect(gc_machine, plan, plan.dead[1]) == "deleted"

    def writer_refreshes_before_the_deletes_land(doomed: s3gc.Doomed) -> bool:
        if not doomed.url.name == s0:
            return real_delete(doomed)
        held.append(doomed)
        monkeypatch.setattr(s3gc, "settle", gc_goes_on)
        writer.record_write(S3Url.parse(f"s3://{bucket}/copy"), manifest)
        return True

    monkeypatch.setattr(s3gc, "delete", writer_refreshes_before_the_deletes_land)
    s3gc.execute(gc_machine, plan)
    assert not held  # the writer waited, and gc's deletions landed meanwhile
    found = objects(store)
    for i in (s0, d0):  # both back, whole
        assert found[i] == {"manifest.json"} | {f["path"] for f in writer.manifest(i)["files"]}
    reader = machine(store, tmp_path / "reader-cache", monkeypatch)
    reader.fetch(s0)  # downloaded and verified
    reader.fetch(d0)


def test_a_refresh_never_brings_back_a_manifest_gc_deleted(
    bucket, adult_small, tmp_path, monkeypatch
):
    """gc deletes the object between the writer's HEAD and its refresh: the refresh
    (If-Match) is refused, and the writer uploads the whole object anew, never a
    manifest without its files."""
    store = f"s3://{bucket}/store"
    here = machine(store, tmp_path / "cache", monkeypatch)
    d0, _ = two_versions(adult_small, bucket, here)
    manifest = here.manifest(d0)
    assert manifest is not None
    base = S3Url.parse(store).join("objects", d0)
    real_put, refused = client.put, []

    def gc_lands_first(url, data, *, create=False, if_match=None):
        if if_match is not None and url == base.join("manifest.json"):
            for key in objects(store)[d0]:
                client.delete(base.join(key))
            try:
                return real_put(url, data, create=create, if_match=if_match)
            except client.Conflict:
                refused.append(url)
                raise
        return real_put(url, data, create=create, if_match=if_match)

    monkeypatch.setattr(client, "put", gc_lands_first)
    here.fresh.clear()  # as if d0 were made more than FRESH seconds ago: refreshed
    here.record_write(S3Url.parse(f"s3://{bucket}/copy"), manifest)
    assert refused == [base.join("manifest.json")]
    assert objects(store)[d0] == {"manifest.json"} | {f["path"] for f in manifest["files"]}


def test_an_upload_over_leftover_files_puts_back_what_a_gc_deletes_meanwhile(
    bucket, adult_small, tmp_path, monkeypatch
):
    store = f"s3://{bucket}/store"
    here = machine(store, tmp_path / "cache", monkeypatch)
    a = ingest_to(adult_small, f"s3://{bucket}/data", 0, here)
    manifest = here.manifest(a)
    assert manifest is not None
    base = S3Url.parse(store).join("objects", a)
    client.delete(base.join("manifest.json"))  # a deletion cut short: files, no manifest
    first = manifest["files"][0]["path"]
    waited = []

    def a_gc_deletes_one() -> None:
        waited.append(True)
        client.delete(base.join(first))

    monkeypatch.setattr(s3gc, "settle", a_gc_deletes_one)
    here.add(here.object_dir(a), manifest)
    assert waited == [True]
    assert objects(store)[a] == {"manifest.json"} | {f["path"] for f in manifest["files"]}


@pytest.mark.parametrize("grace", [0, 3600])
def test_gc_of_an_empty_store_in_a_bucket(bucket, tmp_path, monkeypatch, grace):
    r = cli("gc", "--json", "--grace", str(grace), "--store", f"s3://{bucket}/store")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout) == {"dropped": [], "cache": [], "dry_run": False}


def test_children_come_before_their_inputs_in_a_chain_deeper_than_the_recursion_limit():
    # a dead chain of appends (hourly for months) is thousands deep: no recursion
    import sqlite3
    import sys
    from types import SimpleNamespace

    from mlstage.store.s3gc import _children_first

    depth = sys.getrecursionlimit() * 3
    ids = [f"{k:064x}" for k in range(depth)]
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE edges (child TEXT, parent TEXT)")
    db.executemany(
        "INSERT INTO edges VALUES (?, ?)", [(ids[k + 1], ids[k]) for k in range(depth - 1)]
    )
    order = _children_first(SimpleNamespace(db=db), ids)
    assert order == ids[::-1]  # the newest first, each before the one it grew from
    # a diamond: d descends from b and c, both from a
    a, b, c, d = "a" * 64, "b" * 64, "c" * 64, "d" * 64
    db2 = sqlite3.connect(":memory:")
    db2.execute("CREATE TABLE edges (child TEXT, parent TEXT)")
    db2.executemany("INSERT INTO edges VALUES (?, ?)", [(b, a), (c, a), (d, b), (d, c)])
    order = _children_first(SimpleNamespace(db=db2), [a, b, c, d])
    assert order.index(d) < order.index(b) < order.index(a) and order.index(c) < order.index(a)
    assert sorted(order) == sorted([a, b, c, d])


def test_a_refresh_puts_back_the_buckets_own_manifest_bytes(bucket, adult_small):
    # a --force rerun giving the same id refreshes the object: its manifest in the bucket
    # must stay the one every cache has (not take this writer's `created`)
    from mlstage.store.s3gc import keep_fresh
    from mlstage.store.s3store import S3Store

    st = f"s3://{bucket}/st"
    r = cli("ingest", str(adult_small), "-o", f"s3://{bucket}/d", "--store", st, "--json")
    assert r.exit_code == 0, r.stderr
    artifact = json.loads(r.stdout)["id"]
    url = S3Url.parse(f"{st}/objects/{artifact}/manifest.json")
    original = client.get(url)
    mine = {**json.loads(original.data), "created": "2099-01-01T00:00:00Z"}
    keep_fresh(S3Store.open_url(st), mine)
    after = client.get(url)
    assert after.data == original.data and after.etag != ""
