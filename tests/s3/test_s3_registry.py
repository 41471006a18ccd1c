"""The registry in object storage: deploys racing for version numbers, and serve's mirror
polling serving.json with conditional GETs."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from starlette.testclient import TestClient

from mlstage.core import objstore as client
from mlstage.core.s3url import S3Url
from mlstage.serving.app import create_app
from mlstage.stages.deploy import CheckOptions, deploy
from mlstage.store.s3registry import RegistryMirror
from mlstage.store.store import Store

from ..conftest import cli, working_in, write_json

NO_CHECK = CheckOptions(skip=True)
ROW = {"age": 40, "sex": "Male"}


def test_deploys_racing_for_a_version_all_succeed_with_distinct_numbers(
    bucket, models, monkeypatch
):
    """Four deploys of four models at once: each has listed the versions before any claims
    (a barrier before the first claim), so all want version 1; each gets its own number
    (1..4), every one is in serving.json's history, none is lost."""
    import mlstage.store.s3registry as reg

    registry, racers = f"s3://{bucket}/registry", 4
    barrier = threading.Barrier(racers)
    claim = reg.claim_version
    first: set[int] = set()

    def claim_after_all_listed(folder, version, model_id):
        me = threading.get_ident()
        if me not in first:
            first.add(me)
            barrier.wait(timeout=60)
        return claim(folder, version, model_id)

    monkeypatch.setattr(reg, "claim_version", claim_after_all_listed)
    results: dict[int, object] = {}

    def run(i: int) -> None:
        try:
            results[i] = deploy(Store.open(models / ".mlstage"), str(models / f"m{i}"), None, registry,
                                name="income", allow_unblessed=True, check=NO_CHECK)  # fmt: skip
        except Exception as e:  # noqa: BLE001 - the test reports it
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(not isinstance(r, Exception) for r in results.values()), results
    got = sorted(r.version for r in results.values())
    assert got == [1, 2, 3, 4]
    folder = S3Url.parse(registry).join("income")
    serving = json.loads(client.get(folder.join("serving.json")).data)
    history = {(h["version"], h["model"]) for h in serving["history"]}
    assert history == {(r.version, r.model) for r in results.values()}
    assert serving["version"] in got
    for r in results.values():  # each version holds its own model
        manifest = json.loads(client.get(folder.join(str(r.version), "manifest.json")).data)
        assert manifest["id"] == r.model
    # deploying the model already served is up to date
    served = next(r for r in results.values() if r.version == serving["version"])
    i = next(i for i, r in results.items() if r is served)
    again = deploy(Store.open(models / ".mlstage"), str(models / f"m{i}"), None, registry,
                   allow_unblessed=True, check=NO_CHECK)  # fmt: skip
    assert again.up_to_date and again.version == serving["version"]


def test_serve_mirrors_the_s3_registry_and_swaps_on_a_new_version(bucket, models, tmp_path):
    registry = f"s3://{bucket}/registry"
    r = cli("deploy", str(models / "m0"), "--allow-unblessed", "--skip-check", "--registry",
            registry, "--name", "income", "--store", str(models / ".mlstage"))  # fmt: skip
    assert r.exit_code == 0, r.stderr
    mirror = RegistryMirror(S3Url.parse(registry), tmp_path / "mirror")
    assert mirror.sync() is True
    assert json.loads((tmp_path / "mirror/income/serving.json").read_text())["version"] == 1
    assert mirror.sync() is False and mirror.not_modified == 1  # a 304: nothing downloaded
    stop = threading.Event()
    mirror.start(0.1, stop)
    try:
        with TestClient(create_app(registry=str(tmp_path / "mirror"))) as web:
            answer = web.post("/v1/models/income:predict", json={"instances": [ROW]}).json()
            assert answer["model_version"] == 1
            r = cli("deploy", str(models / "m1"), "--allow-unblessed", "--skip-check",
                    "--registry", registry, "--store", str(models / ".mlstage"))  # fmt: skip
            assert r.exit_code == 0, r.stderr
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                answer = web.post("/v1/models/income:predict", json={"instances": [ROW]}).json()
                if answer["model_version"] == 2:
                    break
                time.sleep(0.1)
            assert answer["model_version"] == 2
    finally:
        stop.set()
    assert (tmp_path / "mirror/income/2/manifest.json").exists()


def test_registry_name_in_a_bucket_is_a_model_and_an_evaluation_reference(bucket, models):
    """predict, evaluate --baseline and monitor --evaluation take REGISTRY/NAME in object
    storage as they take a local one (read from the registry's local mirror)."""
    from mlstage.store.registry import resolve_evaluation, resolve_model

    registry = f"s3://{bucket}/registry"
    store = str(models / ".mlstage")
    cfg = write_json(models / "eval.json", {"format": "mlstage-evaluate/1", "positive": ">50K"})
    with working_in(models):
        r = cli("evaluate", "m0", "ds", "--config", str(cfg), "-o", "e0")
        assert r.exit_code == 0, r.stderr
        r = cli("deploy", "m0", "--evaluation", "e0", "--skip-check", "--registry", registry,
                "--name", "income", "--store", store)  # fmt: skip
        assert r.exit_code == 0, r.stderr
        m0 = json.loads((models / "m0/manifest.json").read_text())["id"]
        e0 = json.loads((models / "e0/manifest.json").read_text())["id"]
        served = resolve_model(f"{registry}/income")
        assert json.loads((Path(served) / "manifest.json").read_text())["id"] == m0
        assert resolve_evaluation(f"{registry}/income") == f"@{e0}"
        r = cli("predict", f"{registry}/income", "ds", "--split", "eval", "-o", "p", "--json")
        assert r.exit_code == 0, r.stderr
        assert m0 in {
            i["id"] for i in json.loads((models / "p/manifest.json").read_text())["inputs"]
        }
        r = cli("evaluate", "m1", "ds", "--config", str(cfg), "--baseline", f"{registry}/income",
                "-o", "e1")  # fmt: skip
        assert r.exit_code in (0, 1), r.stderr
        inputs = json.loads((models / "e1/manifest.json").read_text())["inputs"]
        assert {"role": "baseline", "id": m0} in [{k: i[k] for k in ("role", "id")} for i in inputs]
        assert cli("stats", "ds", "-o", "st").exit_code == 0
        r = cli("monitor", "--requests", "ds", "--baseline", "st", "--evaluation",
                f"{registry}/income", "-o", "mon")  # fmt: skip
        assert r.exit_code in (0, 1), r.stderr
        inputs = json.loads((models / "mon/manifest.json").read_text())["inputs"]
        assert {"role": "evaluation", "id": e0} in [
            {k: i[k] for k in ("role", "id")} for i in inputs
        ]


def test_rollback_on_a_registry_in_a_bucket(bucket, models):
    registry = f"s3://{bucket}/registry"
    store = str(models / ".mlstage")
    for m in ("m0", "m1"):
        r = cli("deploy", str(models / m), "--allow-unblessed", "--skip-check", "--registry",
                registry, "--name", "income", "--store", store)  # fmt: skip
        assert r.exit_code == 0, r.stderr
    r = cli("deploy", "--rollback", "--registry", registry, "--store", store, "--json")
    assert r.exit_code == 0, r.stderr
    serving = json.loads(client.get(S3Url.parse(f"{registry}/income/serving.json")).data)
    assert serving["version"] == 1 and serving["history"][-1]["action"] == "rollback"
    assert serving["labels"]["stable"] == 1
    r = cli("deploy", "--rollback", "--to", "2", "--registry", registry, "--store", store)
    assert r.exit_code == 0, r.stderr
    assert json.loads(client.get(S3Url.parse(f"{registry}/income/serving.json")).data)[
        "version"] == 2  # fmt: skip
    r = cli("deploy", "--rollback", "--to", "9", "--registry", registry, "--store", store)
    assert r.exit_code == 2 and "no version 9" in r.stderr
    r = cli("deploy", "--promote", "--registry", registry, "--store", store)
    assert r.exit_code == 2 and "no canary or shadow runs: nothing to promote" in r.stderr


def test_a_reader_that_read_the_bucket_before_a_rollback_never_puts_the_older_state_back(
    bucket, models
):
    # `serve` and a `predict`/`monitor` of REGISTRY/NAME share the registry's mirror: one
    # that read serving.json before a rollback must not overwrite the newer state after
    # serve wrote it (serve's next poll is a 304: it would serve the rolled-back model)
    from mlstage.stages.deploy import rollback
    from mlstage.store.s3registry import _write_if_newer, read_serving_s3

    reg = f"s3://{bucket}/registry"
    with working_in(models):
        store = Store.open()
        for m, ev in (("m0", "ev0"), ("m1", "ev1")):
            deploy(store, m, ev, reg, name="income", check=NO_CHECK)
    folder = S3Url.parse(reg).join("income")
    before, _ = read_serving_s3(folder)  # a predict reads: version 2 served
    rollback(reg, name="income", to=None, message="back")
    serve = RegistryMirror(S3Url.parse(reg))
    assert serve.sync()
    target = serve.local / "income"
    assert json.loads((target / "serving.json").read_text())["version"] == 1
    _write_if_newer(target, before)  # the predict, finishing late
    assert json.loads((target / "serving.json").read_text())["version"] == 1
    assert not serve.sync()  # serve's poll: unchanged in the bucket, and the mirror is right


def test_a_write_that_landed_but_was_answered_as_a_conflict_is_not_done_twice(
    bucket, models, monkeypatch
):
    # obstore retries a PUT whose answer was lost; the retry's If-Match then fails (the
    # etag moved with the first attempt). Deciding anew would roll back a second step.
    import mlstage.store.s3registry as s3r
    from mlstage.stages.deploy import rollback

    reg = f"s3://{bucket}/registry"
    with working_in(models):
        store = Store.open()
        for m, ev in (("m0", "ev0"), ("m1", "ev1"), ("m2", "ev2")):
            deploy(store, m, ev, reg, name="income", check=NO_CHECK)
    real, lost = s3r.put_serving, []

    def answer_lost(folder, doc, etag):
        done = real(folder, doc, etag)
        if done and not lost:
            lost.append(True)
            return False  # landed, but the client saw a refusal
        return done

    monkeypatch.setattr(s3r, "put_serving", answer_lost)
    rollback(reg, name="income", to=None, message="back one")
    doc, _ = s3r.read_serving_s3(S3Url.parse(reg).join("income"))
    assert lost and doc["version"] == 2  # one step back from 3, not two
    assert [h["action"] for h in doc["history"]].count("rollback") == 1


def test_the_mirror_replaces_a_version_whose_number_a_new_registry_reused(bucket, models):
    # a registry deleted and made again: its version 1 is another model; a mirror (here
    # a new process's) must not keep serving the old copy
    reg = f"s3://{bucket}/registry"
    with working_in(models):
        store = Store.open()
        deploy(store, "m0", "ev0", reg, name="income", check=NO_CHECK)
        first = RegistryMirror(S3Url.parse(reg))
        first.sync()
        copy = first.local / "income" / "1" / "manifest.json"
        m0 = json.loads(copy.read_text())["id"]
        for key, _ in client.listing(S3Url.parse(reg)):
            client.delete(S3Url.parse(reg).join(key))
        deploy(store, "m1", "ev1", reg, name="income", check=NO_CHECK)
    later = RegistryMirror(S3Url.parse(reg))
    assert later.sync()
    m1 = json.loads(copy.read_text())["id"]
    assert m1 != m0 and m1 == json.loads((models / "m1" / "manifest.json").read_text())["id"]
    assert not any(p.name.endswith(".stale") for p in copy.parent.parent.iterdir())
