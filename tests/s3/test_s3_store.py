"""The store, outputs, inputs and sources in object storage (moto's server on loopback)."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from pathlib import Path

import pytest

from mlstage import featurize, ingest, schema, stats, train, validate
from mlstage.core import objstore as client
from mlstage.core.s3url import S3Url
from mlstage.store.s3outputs import WriteConflict
from mlstage.store.store import Store

from ..conftest import cli, write_json

SPEC = {"format": "mlstage-features/1", "label": "income", "features": [
    {"column": "age", "transform": "standardize", "impute": "median"},
    {"column": "workclass", "transform": "one_hot", "impute": "mode"},
    {"column": "sex", "transform": "one_hot"}]}  # fmt: skip
TRAIN = {"format": "mlstage-train/1", "task": "classification", "seed": 0,
         "estimator": "LogisticRegression"}  # fmt: skip


def chain(source: str, at: str, store: str, spec: Path, config: Path) -> dict[str, str]:
    """ingest → stats → schema → validate → featurize → train; the ids by stage."""
    ids = {}
    r = ingest([source], f"{at}/data", null=["?"], split={"train": 8, "eval": 2}, store=store)
    ids["ingest"] = r.manifest["id"]
    ids["stats"] = stats(f"{at}/data", f"{at}/stats", store=store).manifest["id"]
    ids["schema"] = schema(f"{at}/stats", f"{at}/schema", label="income", store=store).manifest[
        "id"
    ]
    ids["validate"] = validate(f"{at}/data", f"{at}/anomalies", schema=f"{at}/schema",
                               baseline=f"{at}/stats", store=store).manifest["id"]  # fmt: skip
    ids["featurize"] = featurize(f"{at}/data", f"{at}/features", spec=spec, store=store).manifest[
        "id"
    ]
    ids["train"] = train(f"{at}/features", f"{at}/model", config=config, store=store).manifest["id"]
    return ids


def put_file(url: str, path: Path) -> None:
    client.put(S3Url.parse(url), path)


def test_the_chain_in_a_bucket_gives_the_local_run_ids(bucket, adult_small, tmp_path):
    spec, config = write_json(tmp_path / "spec.json", SPEC), write_json(tmp_path / "t.json", TRAIN)
    local = chain(
        str(adult_small), str(tmp_path / "local"), str(tmp_path / ".mlstage"), spec, config
    )
    put_file(f"s3://{bucket}/raw/adult.csv", adult_small)  # the source in the bucket too
    remote = chain(f"s3://{bucket}/raw/adult.csv", f"s3://{bucket}/out", f"s3://{bucket}/store",
                   spec, config)  # fmt: skip
    assert remote == local
    # the output prefix holds the manifest and the payload, as a folder does
    model = S3Url.parse(f"s3://{bucket}/out/model")
    manifest = json.loads(client.get(model.join("manifest.json")).data)
    assert manifest["id"] == local["train"]
    for f in manifest["files"]:
        data = client.get(model.join(f["path"])).data
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
    # the store: one committed object per artifact, one journal object per write
    store = S3Url.parse(f"s3://{bucket}/store")
    keys = [k for k, _ in client.listing(store)]
    committed = {
        k.split("/")[1] for k in keys if k.startswith("objects/") and k.endswith("/manifest.json")
    }
    assert set(local.values()) <= committed
    assert len([k for k in keys if k.startswith("journal/")]) == 6
    # a rerun is up to date, and says so without writing a journal object
    again = stats(
        f"s3://{bucket}/out/data", f"s3://{bucket}/out/stats", store=f"s3://{bucket}/store"
    )
    assert again.up_to_date and again.manifest["id"] == local["stats"]
    assert len([k for k, _ in client.listing(store.join("journal"))]) == 6


def test_reindex_rebuilds_the_cache_from_the_remote_journal(bucket, adult_small, tmp_path):
    store = f"s3://{bucket}/store"
    for seed in (0, 1):
        r = cli("ingest", str(adult_small), "--null", "?", "--split", "train=8", "--split",
                "eval=2", "--seed", str(seed), "-o", f"s3://{bucket}/data", "--store", store)  # fmt: skip
        assert r.exit_code == 0, r.stderr
    before = json.loads(cli("log", "--json", "--store", store).stdout)
    assert [e["path"] for e in before] == [f"s3://{bucket}/data"] * 2
    dump = Store.open(store).index_dump()
    shutil.rmtree(tmp_path / "s3cache")  # the cache is derived: nothing is lost with it
    r = cli("reindex", "--store", store)
    assert r.exit_code == 0, r.stderr
    rebuilt = Store.open(store)
    assert rebuilt.index_dump() == dump
    assert json.loads(cli("log", "--json", "--store", store).stdout) == before
    # an @id reference is fetched from the bucket into the cache, verified
    r = cli("stats", f"@{before[1]['id'][:10]}", "-o", str(tmp_path / "st"), "--store", store)
    assert r.exit_code == 0, r.stderr


@pytest.mark.parametrize("drops", ["both", "if-match"])
def test_a_server_ignoring_conditional_writes_is_refused_at_open(
    bucket, adult_small, monkeypatch, drops
):
    import obstore

    real = obstore.put

    def careless(store, path, file, **kwargs):  # a server that drops the condition(s)
        if drops == "both" or isinstance(kwargs.get("mode"), dict):
            kwargs.pop("mode", None)
        return real(store, path, file, **kwargs)

    monkeypatch.setattr(obstore, "put", careless)
    monkeypatch.setattr("mlstage.store.s3store._probed", set())
    r = cli(
        "ingest", str(adult_small), "-o", f"s3://{bucket}/data", "--store", f"s3://{bucket}/store"
    )
    assert r.exit_code == 2
    assert "does not honour conditional writes" in r.stderr
    assert [k for k, _ in client.listing(S3Url.parse(f"s3://{bucket}/data"))] == []


def test_s3_is_never_a_local_folder(bucket, adult_small, tmp_path):
    r = cli("ingest", str(adult_small), "-o", f"s3://{bucket}/data", "--store", f"s3://{bucket}/st")
    assert r.exit_code == 0, r.stderr
    assert not (tmp_path / "s3:").exists()
    # an output in object storage with a local store is refused, naming why
    r = cli(
        "stats",
        f"s3://{bucket}/data",
        "-o",
        f"s3://{bucket}/stats",
        "--store",
        str(tmp_path / "local"),
    )
    assert r.exit_code == 2 and "needs a store there too" in r.stderr
    assert not (tmp_path / "s3:").exists()
    # a prefix holding objects mlstage did not write is never replaced
    client.put(S3Url.parse(f"s3://{bucket}/theirs/notes.txt"), b"keep me")
    r = cli(
        "stats",
        f"s3://{bucket}/data",
        "-o",
        f"s3://{bucket}/theirs",
        "--store",
        f"s3://{bucket}/st",
    )
    assert r.exit_code == 2 and "not an mlstage artifact" in r.stderr
    assert client.get(S3Url.parse(f"s3://{bucket}/theirs/notes.txt")).data == b"keep me"
    # nor taken for a store
    r = cli(
        "stats", f"s3://{bucket}/data", "-o", f"s3://{bucket}/o", "--store", f"s3://{bucket}/theirs"
    )
    assert r.exit_code == 2 and "is not an mlstage store" in r.stderr
    assert [k for k, _ in client.listing(S3Url.parse(f"s3://{bucket}/theirs"))] == ["notes.txt"]


def test_an_output_inside_another_or_inside_a_registry_is_refused(bucket, adult_small, models):
    # a local store refuses these (core.outputs.owner); so must a bucket: rewriting the
    # outer artifact would delete the inner one's files
    st = f"s3://{bucket}/st"
    assert (
        cli("ingest", str(adult_small), "-o", f"s3://{bucket}/data", "--store", st).exit_code == 0
    )
    r = cli("stats", f"s3://{bucket}/data", "-o", f"s3://{bucket}/data/stats", "--store", st)
    assert r.exit_code == 2 and f"inside the artifact s3://{bucket}/data" in r.stderr
    r = cli("deploy", str(models / "m0"), "--evaluation", str(models / "ev0"), "--registry",
            f"s3://{bucket}/data/registry", "--name", "income", "--skip-check", "--store", st)  # fmt: skip
    assert r.exit_code == 2 and "keep registries outside" in r.stderr
    r = cli("deploy", str(models / "m0"), "--evaluation", str(models / "ev0"), "--registry",
            f"s3://{bucket}/reg", "--name", "income", "--skip-check", "--store", st)  # fmt: skip
    assert r.exit_code == 0, r.stderr
    r = cli("stats", f"s3://{bucket}/data", "-o", f"s3://{bucket}/reg/income/1", "--store", st)
    assert r.exit_code == 2 and "inside the registry model folder" in r.stderr
    kept = {k for k, _ in client.listing(S3Url.parse(f"s3://{bucket}/reg/income/1"))}
    assert "manifest.json" in kept and ".claim" in kept and len(kept) > 2


def test_writers_racing_for_one_output_exactly_one_wins(bucket, adult_small, monkeypatch):
    """Rounds of 4 writers of different artifacts to one output: each has read the
    output's pointer before any commits (a barrier after producing), so every round is a
    real race. Exactly one wins each; the losers fail with WriteConflict and leave no
    journal object; the prefix ends holding the last winner's manifest and files."""
    import mlstage.stages.base as base

    store, out, racers = f"s3://{bucket}/store", f"s3://{bucket}/race", 4
    barrier = threading.Barrier(racers)
    produce = base._produce

    def produce_then_wait(*args, **kwargs):
        manifest = produce(*args, **kwargs)
        barrier.wait(timeout=60)
        return manifest

    monkeypatch.setattr(base, "_produce", produce_then_wait)
    winners = []

    def run(seed: int, outcomes: dict[int, object]) -> None:
        try:
            r = ingest([adult_small], out, null=["?"], split={"train": 8, "eval": 2},
                       seed=seed, store=store)  # fmt: skip
            outcomes[seed] = r.manifest["id"]
        except WriteConflict as e:
            outcomes[seed] = e

    for round_ in range(2):
        outcomes: dict[int, object] = {}

        seeds = [round_ * 10 + i for i in range(racers)]
        threads = [threading.Thread(target=run, args=(s, outcomes)) for s in seeds]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        won = [v for v in outcomes.values() if isinstance(v, str)]
        lost = [v for v in outcomes.values() if isinstance(v, WriteConflict)]
        assert len(outcomes) == racers and len(won) == 1 and len(lost) == racers - 1
        assert all("another writer replaced it" in str(e) for e in lost)
        winners.append(won[0])
    pointer = json.loads(client.get(S3Url.parse(out).join("manifest.json")).data)
    assert pointer["id"] == winners[-1]
    for f in pointer["files"]:
        data = client.get(S3Url.parse(out).join(f["path"])).data
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
    # the journal holds the wins, and only them, in order
    log = [e["id"] for e in reversed(json.loads(cli("log", "--json", "--store", store).stdout))]
    assert log == winners
    assert len(list(client.listing(S3Url.parse(store).join("journal")))) == 2


@pytest.mark.parametrize("spec", ["s3://{b}/raw/*.csv", "s3://{b}/raw/"])
def test_sources_by_glob_and_prefix(bucket, adult_small, tmp_path, spec):
    put_file(f"s3://{bucket}/raw/a.csv", adult_small)
    client.put(S3Url.parse(f"s3://{bucket}/raw/readme.md"), b"not data")
    local = ingest([adult_small], str(tmp_path / "d"), null=["?"], store=str(tmp_path / ".m"))
    remote = ingest(
        [spec.format(b=bucket)], str(tmp_path / "e"), null=["?"], store=str(tmp_path / ".m")
    )
    assert remote.manifest["id"] == local.manifest["id"]
    assert remote.manifest["inputs"][0]["path"] == f"s3://{bucket}/raw/a.csv"
    assert not list((tmp_path / ".m" / "tmp").glob("s3src-*"))  # the spooled copy is gone


def test_a_local_gc_keeps_what_a_registry_in_a_bucket_serves(bucket, adult_small, tmp_path):
    # a local store that deployed into s3://...: the served model and its evaluation are
    # held by the bucket's serving.json, not by any local path
    from mlstage.stages.deploy import CheckOptions, deploy
    from mlstage.stages.evaluate import evaluate

    st = tmp_path / "store"
    spec, config = write_json(tmp_path / "spec.json", SPEC), write_json(tmp_path / "t.json", TRAIN)
    ingest([adult_small], tmp_path / "ds", null=["?"], split={"train": 8, "eval": 2}, store=st)
    featurize(tmp_path / "ds", tmp_path / "feat", spec=spec, store=st)
    served = train(tmp_path / "feat", tmp_path / "m", config=config, store=st).manifest["id"]
    plain = write_json(tmp_path / "ev.json", {"format": "mlstage-evaluate/1"})
    ev = evaluate(tmp_path / "m", tmp_path / "ds", tmp_path / "ev", config=plain, store=st)
    reg = f"s3://{bucket}/registry"
    deploy(Store.open(st), str(tmp_path / "m"), str(tmp_path / "ev"), reg, name="income",
           check=CheckOptions(skip=True))  # fmt: skip
    # retrained over the same local paths: nothing local holds the served model any more
    other = write_json(tmp_path / "t2.json", {**TRAIN, "params": {"C": 0.01}})
    train(tmp_path / "feat", tmp_path / "m", config=other, store=st)
    evaluate(tmp_path / "m", tmp_path / "ds", tmp_path / "ev", config=plain, store=st)
    r = cli("gc", "--grace", "0", "--store", str(st), "--json")
    assert r.exit_code == 0, r.stderr
    dropped = json.loads(r.stdout)["dropped"]
    assert served not in dropped and ev.manifest["id"] not in dropped
    assert (st / "objects" / served).is_dir() and (st / "objects" / ev.manifest["id"]).is_dir()


def test_deploy_refreshes_the_model_and_evaluation_its_history_will_name(
    bucket, adult_small, tmp_path
):
    # a gc that planned with the evaluation dead (nothing named it yet) HEADs it right
    # before deleting: a deploy refreshes it first, so that gc keeps it
    import time

    st = f"s3://{bucket}/st"
    spec, config = write_json(tmp_path / "spec.json", SPEC), write_json(tmp_path / "t.json", TRAIN)
    plain = write_json(tmp_path / "ev.json", {"format": "mlstage-evaluate/1"})
    for args in (
        ["ingest", str(adult_small), "--null", "?", "--split", "train=8", "--split", "eval=2",
         "-o", f"s3://{bucket}/ds"],
        ["featurize", f"s3://{bucket}/ds", "--spec", str(spec), "-o", f"s3://{bucket}/feat"],
        ["train", f"s3://{bucket}/feat", "--config", str(config), "-o", f"s3://{bucket}/m"],
        ["evaluate", f"s3://{bucket}/m", f"s3://{bucket}/ds", "--config", str(plain),
         "-o", f"s3://{bucket}/ev"],
    ):  # fmt: skip
        r = cli(*args, "--store", st)
        assert r.exit_code == 0, r.stderr
    ids = {n: json.loads(client.get(S3Url.parse(f"s3://{bucket}/{n}/manifest.json")).data)["id"]
           for n in ("m", "ev")}  # fmt: skip
    urls = {n: S3Url.parse(f"{st}/objects/{i}/manifest.json") for n, i in ids.items()}
    before = {n: client.modified(client.head(u)) for n, u in urls.items()}
    time.sleep(1.1)  # LastModified has whole seconds
    r = cli("deploy", f"s3://{bucket}/m", "--evaluation", f"s3://{bucket}/ev", "--registry",
            f"s3://{bucket}/reg", "--name", "income", "--skip-check", "--store", st)  # fmt: skip
    assert r.exit_code == 0, r.stderr
    for n, u in urls.items():
        assert client.modified(client.head(u)) > before[n], n


def test_gc_of_a_bucket_stops_at_a_manifest_it_cannot_read(bucket, adult_small):
    st = f"s3://{bucket}/st"
    assert cli("ingest", str(adult_small), "-o", f"s3://{bucket}/d", "--store", st).exit_code == 0
    torn = S3Url.parse(f"{st}/objects/{'f' * 64}/manifest.json")
    client.put(torn, b"{torn")
    r = cli("gc", "--grace", "0", "--store", st)
    assert r.exit_code == 2 and "gc stops" in r.stderr and "ffffffffffff" in r.stderr
    assert client.head(torn) is not None
