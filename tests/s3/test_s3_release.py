"""Labels, canaries, shadows, promote and rollback on a registry in a bucket: every step
and refusal of a local registry's, the same history; the pre-push check; damaged
versions; writers racing without a lock ending as they would one at a time; `serve`
routing a canary from the bucket and seeing its promotion; `monitor --compare`."""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.request
from pathlib import Path

import polars as pl
import pytest
from starlette.testclient import TestClient

from mlstage.core import objstore as client
from mlstage.core.s3url import S3Url, cache_root
from mlstage.errors import MlstageError, for_python
from mlstage.serving.app import create_app
from mlstage.serving.models import canary_share
from mlstage.stages.deploy import CheckOptions, deploy, promote, rollback
from mlstage.store import s3registry
from mlstage.store.registry import parse_serving, read_serving
from mlstage.store.s3registry import RegistryMirror
from mlstage.store.store import Store

from ..conftest import cli

NO_CHECK = CheckOptions(skip=True)


def serving_s3(registry: str, name: str = "income") -> dict:
    blob = client.get(S3Url.parse(f"{registry}/{name}/serving.json"))
    assert blob is not None
    return parse_serving(blob.data, "serving.json")


def run(models: Path, registry, op: tuple):
    """One step (deploy MODEL [EVALUATION], promote, rollback) as the Python API takes it:
    its outcome, or the refusal's type and reason (without the place, which differs)."""
    kind, *args = op
    options = dict(args.pop()) if args and isinstance(args[-1], dict) else {}
    options.setdefault("name", "income")
    try:
        if kind == "deploy":
            model, evaluation = args
            ev = None if evaluation is None else str(models / evaluation)
            r = deploy(Store.open(models / ".mlstage"), str(models / model), ev, registry,
                       check=NO_CHECK, allow_unblessed=ev is None, **options)  # fmt: skip
        else:
            r = (promote if kind == "promote" else rollback)(registry, **options)
    except MlstageError as e:
        return (type(e).__name__, for_python(getattr(e, "reason", e.raw)))
    return (r.version, r.label, r.action, r.up_to_date)


def plain(doc: dict | None) -> dict | None:
    """serving.json without the times of its entries."""
    if doc is None:
        return None
    return {**doc, "history": [{k: v for k, v in h.items() if k != "at"} for h in doc["history"]]}


# (step, its outcome); after the local registry's rules (tests/serve/test_release.py)
SEQUENCE = [
    (("deploy", "m0", "ev0"), (1, "stable", "deploy", False)),
    (("deploy", "m0", "ev0"), (1, "stable", "none", True)),
    (("deploy", "m1", "ev1", {"label": "exp"}), (2, "exp", "deploy", False)),
    (("deploy", "m1", "ev1", {"label": "exp"}), (2, "exp", "none", True)),
    (("deploy", "m2", "ev2", {"canary": 20}), (3, "canary", "canary", False)),
    (("deploy", "m2", "ev2", {"canary": 20}), (3, "canary", "none", True)),
    (("deploy", "m2", "ev2", {"canary": 35}), (3, "canary", "canary", False)),  # a new share
    (("deploy", "m0", "ev0", {"canary": 10}), ("BadInput", "is already stable: a canary of it compares nothing")),
    (("deploy", "m1", None, {"shadow": True}), (2, "shadow", "shadow-unblessed", False)),
    (("promote",), (3, "stable", "promote", False)),  # the canary; it ends
    (("rollback",), (1, "stable", "rollback", False)),
    (("deploy", "m2", "ev2"), (3, "stable", "redeploy", False)),
    (("rollback", {"label": "shadow"}), (2, "shadow", "end-shadow", False)),
    (("rollback", {"label": "exp"}), ("BadInput", "no earlier version of exp in the history to roll back to")),
    (("deploy", "m0", "ev0", {"label": "exp"}), (1, "exp", "redeploy", False)),
    (("rollback", {"label": "exp"}), (2, "exp", "rollback", False)),
    (("promote", {"label": "exp"}), (2, "stable", "promote", False)),
    (("promote", {"label": "exp"}), (2, "stable", "none", True)),
    (("promote",), ("BadInput", "no canary or shadow runs: nothing to promote (label names another)")),
    (("deploy", "m1", "ev1", {"shadow": True}), ("BadInput", "is already stable: a shadow of it compares nothing")),
    (("deploy", "m3", "ev3", {"shadow": True}), (4, "shadow", "shadow", False)),
    (("deploy", "m3", "ev3", {"canary": 50}), (4, "canary", "canary", False)),
    (("rollback", {"to": 4}), (4, "stable", "rollback", False)),  # ends both runs of 4
    (("rollback", {"to": 9}), ("BadInput", "no version 9; the registry has: 1, 2, 3, 4")),
    (("rollback", {"label": "canary"}), ("BadInput", "no label 'canary'; labels: exp, stable")),
    (("promote", {"label": "nope"}), ("BadInput", "no label 'nope'; labels: exp, stable")),
    (("deploy", "m0", "ev0", {"canary": 10}), (1, "canary", "canary", False)),
    (("rollback", {"label": "canary", "to": 2}), ("BadInput", "a canary ends on rollback: to is for other labels")),
    (("deploy", "m2", "ev2", {"shadow": True}), (3, "shadow", "shadow", False)),
    (("deploy", "m0", "ev0"), (1, "stable", "redeploy", False)),  # ends the canary of 1
    (("rollback", {"label": "shadow"}), (3, "shadow", "end-shadow", False)),
    (("deploy", "m1", "ev1", {"canary": 5, "name": "other"}), ("BadInput", "nothing is served yet: deploy a stable version before a canary")),
]  # fmt: skip
HISTORY = [  # (version, label, action) of every entry the sequence leaves
    (1, "stable", "deploy"), (2, "exp", "deploy"), (3, "canary", "canary"),
    (3, "canary", "canary"), (2, "shadow", "shadow-unblessed"), (3, "stable", "promote"),
    (3, "canary", "end-canary"), (1, "stable", "rollback"), (3, "stable", "redeploy"),
    (2, "shadow", "rollback"), (1, "exp", "redeploy"), (2, "exp", "rollback"),
    (2, "stable", "promote"), (4, "shadow", "shadow"), (4, "canary", "canary"),
    (4, "stable", "rollback"), (4, "canary", "end-canary"), (4, "shadow", "end-shadow"),
    (1, "canary", "canary"), (3, "shadow", "shadow"), (1, "stable", "redeploy"),
    (1, "canary", "end-canary"), (3, "shadow", "rollback"),
]  # fmt: skip


def test_every_step_and_refusal_is_the_local_registrys_with_the_same_history(
    bucket, models, tmp_path
):
    local, remote = tmp_path / "reg", f"s3://{bucket}/registry"
    for op, want in SEQUENCE:
        here, there = run(models, local, op), run(models, remote, op)
        if isinstance(want[0], str):  # a refusal: its reason, on both
            assert here[0] == there[0] == want[0] and want[1] in there[1], (op, here, there)
            assert here == there, op
        else:
            assert here == there == want, (op, here, there)
    doc = serving_s3(remote)
    assert plain(doc) == plain(read_serving(local / "income"))
    assert [(h["version"], h["label"], h["action"]) for h in doc["history"]] == HISTORY
    assert doc["version"] == 1 and doc["labels"] == {"exp": 2, "stable": 1}
    assert "canary" not in doc and "shadow" not in doc
    promoted = [h for h in doc["history"] if h["action"] == "promote"]
    assert [(h["from"], h["check"]) for h in promoted] == [
        ("canary", "skipped"),
        ("exp", "skipped"),
    ]
    # the refused canary of a new model wrote nothing there
    assert client.get(S3Url.parse(f"{remote}/other/serving.json")) is None
    assert client.children(S3Url.parse(f"{remote}/income")) == ["1", "2", "3", "4"]
    # the CLI says the same (exit 2 for a refusal) and reads the bucket's labels
    r = cli("deploy", "--rollback", "--label", "exp", "--registry", remote, "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout) | {"model": None} == {
        "registry": remote, "name": "income", "version": 1, "model": None, "label": "exp",
        "action": "rollback", "up_to_date": False, "check": None, "exit_code": 0}  # fmt: skip
    r = cli("deploy", "--promote", "--registry", remote)
    assert r.exit_code == 2 and "no canary or shadow runs" in r.stderr


def test_promote_refuses_a_damaged_version_in_the_bucket_and_deploy_copies_it_afresh(
    bucket, models
):
    registry = f"s3://{bucket}/registry"
    run(models, registry, ("deploy", "m0", "ev0"))
    assert run(models, registry, ("deploy", "m1", "ev1", {"canary": 10}))[0] == 2
    version2 = S3Url.parse(f"{registry}/income/2")
    model_file = next(k for k, _ in client.listing(version2) if k.endswith(".skops"))
    client.put(version2.join(model_file), b"not the model")
    before = client.get(S3Url.parse(f"{registry}/income/serving.json"))
    r = cli("deploy", "--promote", "--registry", registry)
    assert r.exit_code == 2, r.stderr
    assert f"version 2 is damaged ({version2.join(model_file)}: " in r.stderr
    assert "not promoted; deploy its model again" in r.stderr
    after = client.get(S3Url.parse(f"{registry}/income/serving.json"))
    assert after is not None and before is not None and after.etag == before.etag
    # the damaged copy is never pointed at again: the same canary gets a fresh version
    assert run(models, registry, ("deploy", "m1", "ev1", {"canary": 10})) == (
        3, "canary", "canary", False)  # fmt: skip
    assert run(models, registry, ("promote",)) == (3, "stable", "promote", False)
    # a copy with a file missing is damaged too: m0 (version 1) is copied again
    client.delete(S3Url.parse(f"{registry}/income/1/signature.json"))
    assert run(models, registry, ("deploy", "m0", "ev0")) == (4, "stable", "deploy", False)
    doc = serving_s3(registry)
    assert doc["version"] == 4 and doc["labels"] == {"stable": 4}
    # an intact copy is pointed at again, not copied (its files were downloaded and hashed)
    assert run(models, registry, ("deploy", "m1", "ev1")) == (3, "stable", "redeploy", False)


def test_the_pre_push_check_of_a_canary_in_a_bucket_is_recorded_and_promoted(
    bucket, models, tmp_path
):
    """The check runs for every label as it does locally: a canary checked with the
    evaluation's rows, a shadow refused by the latency bound (nothing claimed, nothing
    pointed), and promote keeping the check the canary passed."""
    registry, store = f"s3://{bucket}/registry", str(models / ".mlstage")
    base = ["--registry", registry, "--name", "income", "--store", store]
    r = cli(
        "deploy", str(models / "m0"), "--evaluation", str(models / "ev0"), "--skip-check", *base
    )
    assert r.exit_code == 0, r.stderr
    r = cli("deploy", str(models / "m1"), "--evaluation", str(models / "ev1"), "--canary", "30",
            "--json", *base)  # fmt: skip
    assert r.exit_code == 0, r.stderr
    checked = json.loads(r.stdout)["check"]
    assert checked["rows"] == 200 and checked["source"] == "evaluation", checked
    doc = serving_s3(registry)
    assert doc["history"][-1]["check"] == checked and doc["canary"] == {"version": 2, "percent": 30}
    before = doc
    r = cli("deploy", str(models / "m2"), "--evaluation", str(models / "ev2"), "--shadow",
            "--check-latency-ms", "0.001", *base)  # fmt: skip
    assert r.exit_code == 1 and "95th percentile, over the bound of 0.001 ms" in r.stderr
    assert serving_s3(registry) == before
    assert client.children(S3Url.parse(f"{registry}/income")) == ["1", "2"]  # no claim
    # the check's server ran from the registry's cache folder and left nothing there
    cache = Path(cache_root(S3Url.parse(f"{registry}/income")))
    assert cache.is_dir() and not list(cache.glob(".mlstage-check-*"))
    p = promote(registry)
    assert (p.version, p.action, p.check) == (2, "promote", checked)
    last = serving_s3(registry)["history"][-2:]
    assert [(h["action"], h.get("from"), h.get("check")) for h in last] == [
        ("promote", "canary", checked), ("end-canary", None, None)]  # fmt: skip


# -- writers racing ---------------------------------------------------------------------
def race(monkeypatch, registry: str, jobs: list) -> tuple[list, list[dict]]:
    """Run `jobs` at once, each first write held until all have read serving.json (so all
    but one lose their If-Match and decide again), while a reader polls the file: (each
    job's outcome, every version of the file the reader saw)."""
    barrier = threading.Barrier(len(jobs))
    put = s3registry.put_serving
    waited: set[int] = set()
    lost: list[int] = []

    def put_after_all_read(folder, doc, etag):
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            barrier.wait(timeout=60)
        won = put(folder, doc, etag)
        if not won:
            lost.append(1)
        return won

    monkeypatch.setattr(s3registry, "put_serving", put_after_all_read)
    outcomes: list = [None] * len(jobs)
    seen: list[dict] = []
    done = threading.Event()

    def read() -> None:
        url = S3Url.parse(f"{registry}/income/serving.json")
        while not done.is_set():
            blob = client.get(url)
            seen.append(parse_serving(blob.data, "serving.json"))  # never half a file
            time.sleep(0.005)

    def work(i: int) -> None:
        try:
            outcomes[i] = jobs[i]()
        except Exception as e:  # noqa: BLE001 - the test reports it
            outcomes[i] = e

    reader = threading.Thread(target=read)
    reader.start()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    done.set()
    reader.join(30)
    monkeypatch.setattr(s3registry, "put_serving", put)
    assert not any(isinstance(o, Exception) for o in outcomes), outcomes
    assert len(lost) >= len(jobs) - 1  # all but one first write lost, and was decided again
    seen.append(serving_s3(registry))
    return outcomes, seen


def by_model(doc: dict) -> dict:
    """serving.json with each version named by its model (serial replays number new
    versions in their own order)."""
    model = {h["version"]: h["model"] for h in doc["history"]}
    return {
        "stable": model[doc["version"]],
        "labels": {k: model[v] for k, v in doc["labels"].items()},
        "runs": {
            r: (model[doc[r]["version"]], doc[r].get("percent"))
            for r in ("canary", "shadow")
            if r in doc
        },  # fmt: skip
        "history": [(h["model"], h["label"], h["action"]) for h in doc["history"]],
    }


def assert_one_at_a_time(models, tmp_path, setup, ops, outcomes, final):
    """The bucket's final serving.json, and each job's outcome, equal a local registry's
    after the same jobs run one at a time in some order."""
    orders = []
    for k, order in enumerate(itertools.permutations(range(len(ops)))):
        local = tmp_path / f"serial{k}"
        for op in setup:
            run(models, local, op)
        got = [None] * len(ops)
        for i in order:
            got[i] = run(models, local, ops[i])
        mine = [(o.label, o.action, o.up_to_date) for o in outcomes]
        theirs = [g[1:] for g in got]
        if by_model(read_serving(local / "income")) == by_model(final) and mine == theirs:
            return order
        orders.append((order, theirs, by_model(read_serving(local / "income"))["history"]))
    raise AssertionError(f"no serial order gives {by_model(final)}; tried {orders}")


def assert_never_lost(seen: list[dict]) -> None:
    """Each version of the file the reader saw extends the one before: no entry lost."""
    for a, b in itertools.pairwise(seen):
        assert plain(b)["history"][: len(a["history"])] == plain(a)["history"]


def test_concurrent_canary_deploys_end_as_one_at_a_time(bucket, models, monkeypatch, tmp_path):
    registry = f"s3://{bucket}/registry"
    setup = [("deploy", "m0", "ev0")]
    for op in setup:
        run(models, registry, op)
    ops = [("deploy", f"m{i}", f"ev{i}", {"canary": 10 * i}) for i in (1, 2, 3)]
    outcomes, seen = race(monkeypatch, registry,
                          [lambda op=op: _api(models, registry, op) for op in ops])  # fmt: skip
    final = seen[-1]
    assert sorted(o.version for o in outcomes) == [2, 3, 4]  # each its own version
    entries = [(h["version"], h["model"]) for h in final["history"] if h["label"] == "canary"]
    assert sorted(entries) == sorted((o.version, o.model) for o in outcomes)  # none lost
    last = next(i for i, o in enumerate(outcomes) if o.version == entries[-1][0])
    assert final["canary"] == {"version": outcomes[last].version, "percent": 10 * (last + 1)}
    assert final["labels"] == {"canary": outcomes[last].version, "stable": 1}
    assert_never_lost(seen)
    assert_one_at_a_time(models, tmp_path, setup, ops, outcomes, final)


def test_two_deploys_of_one_canary_at_once_point_once(bucket, models, monkeypatch, tmp_path):
    """Both upload a copy before either writes serving.json; the loser, deciding again,
    finds the canary already on its model: up to date, as it would be after a lock. Its
    copy stays in the bucket, unpointed."""
    registry = f"s3://{bucket}/registry"
    setup = [("deploy", "m0", "ev0")]
    run(models, registry, setup[0])
    ops = [("deploy", "m1", "ev1", {"canary": 20})] * 2
    listed, claim, first = threading.Barrier(2), s3registry.claim_version, set()

    def claim_after_both_listed(folder, version, model):
        if threading.get_ident() not in first:  # neither has a copy yet: both add one
            first.add(threading.get_ident())
            listed.wait(timeout=60)
        return claim(folder, version, model)

    monkeypatch.setattr(s3registry, "claim_version", claim_after_both_listed)
    outcomes, seen = race(monkeypatch, registry,
                          [lambda op=op: _api(models, registry, op) for op in ops])  # fmt: skip
    assert sorted((o.action, o.up_to_date) for o in outcomes) == [("canary", False), ("none", True)]
    final = seen[-1]
    assert [h["action"] for h in final["history"]] == ["deploy", "canary"]
    assert final["canary"]["version"] == next(o.version for o in outcomes if not o.up_to_date)
    assert client.children(S3Url.parse(f"{registry}/income")) == ["1", "2", "3"]
    assert_never_lost(seen)
    assert_one_at_a_time(models, tmp_path, setup, ops, outcomes, final)


def test_a_promote_racing_a_deploy_and_a_canary_ends_as_one_at_a_time(
    bucket, models, monkeypatch, tmp_path
):
    registry = f"s3://{bucket}/registry"
    setup = [("deploy", "m0", "ev0"), ("deploy", "m1", "ev1", {"canary": 20})]
    for op in setup:
        run(models, registry, op)
    ops = [("promote",), ("deploy", "m2", "ev2"), ("deploy", "m3", "ev3", {"canary": 40})]
    outcomes, seen = race(monkeypatch, registry,
                          [lambda op=op: _api(models, registry, op) for op in ops])  # fmt: skip
    final = seen[-1]
    assert len(final["history"]) >= 2 + 3  # the setup's and one entry per job at least
    assert_never_lost(seen)
    assert_one_at_a_time(models, tmp_path, setup, ops, outcomes, final)


def _api(models: Path, registry, op: tuple):
    """One step through the Python API, its result (or its exception) as it is."""
    kind, *args = op
    options = dict(args.pop()) if args and isinstance(args[-1], dict) else {}
    if kind == "deploy":
        model, evaluation = args
        return deploy(Store.open(models / ".mlstage"), str(models / model), str(models / evaluation),
                      registry, name="income", check=NO_CHECK, **options)  # fmt: skip
    return promote(registry, name="income", **options)


# -- serve and monitor ------------------------------------------------------------------
def eval_rows(models: Path) -> pl.DataFrame:
    return pl.read_parquet(sorted((models / "ds").glob("eval*.parquet"))).select(
        "age", "sex", "income"
    )


def test_serve_splits_traffic_to_a_canary_in_a_bucket_and_sees_its_promotion(
    bucket, models, tmp_path, monkeypatch
):
    from ..serve.conftest import start_server, wait_ready

    registry = f"s3://{bucket}/registry"
    run(models, registry, ("deploy", "m0", "ev0"))
    run(models, registry, ("deploy", "m1", "ev1", {"canary": 50}))
    poll = 0.5
    monkeypatch.setenv("MLSTAGE_S3_POLL_SECONDS", str(poll))
    proc, port = start_server(registry, tmp_path / "serve.log")
    try:
        wait_ready(port, proc)
        status = json.loads(
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/income").read()
        )
        assert status["canary"] == {"version": 2, "percent": 50} and status["labels"] == {
            "canary": 2, "stable": 1}  # fmt: skip
        frame = eval_rows(models)
        ids = [f"c{i}" for i in range(200)]
        answered = {}
        for i, rid in enumerate(ids):
            row = {"age": frame["age"][i], "sex": frame["sex"][i]}
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/models/income:predict",
                data=json.dumps({"instances": [row]}).encode(),
                headers={"content-type": "application/json", "X-Request-ID": rid},
            )
            answered[rid] = json.loads(urllib.request.urlopen(req, timeout=10).read())[
                "model_version"
            ]
        # each request goes where its id's hash falls, as from a local registry
        assert answered == {rid: 2 if canary_share("income", rid) < 50 else 1 for rid in ids}
        assert 60 < sum(v == 2 for v in answered.values()) < 140
        r = cli("deploy", "--promote", "--registry", registry)
        assert r.exit_code == 0, r.stderr
        promoted_at = time.monotonic()
        while time.monotonic() - promoted_at < 10:
            status = json.loads(
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/income").read()
            )
            if status["served_version"] == 2 and status.get("canary") is None:
                break
            time.sleep(0.05)
        took = time.monotonic() - promoted_at
        assert status["served_version"] == 2 and status.get("canary") is None, status
        assert status["labels"] == {"stable": 2}
        # seen within a couple of polls (plus the watcher's half second)
        assert took < 2 * poll + 1.0, took
    finally:
        proc.terminate()
        proc.wait(30)


def test_monitor_compares_a_canary_in_a_bucket_as_a_local_one(bucket, models, tmp_path):
    """`monitor --compare s3://…/registry/NAME` (and `--evaluation`) on the logs of a
    canary served from the bucket's mirror: the report a local registry with the same
    versions gives."""
    remote, local = f"s3://{bucket}/registry", tmp_path / "reg"
    for registry in (remote, local):
        run(models, registry, ("deploy", "m0", "ev0"))
        run(models, registry, ("deploy", "m3", "ev3", {"canary": 50}))
    mirror = RegistryMirror(S3Url.parse(remote), tmp_path / "mirror")
    mirror.sync()
    assert sorted(p.name for p in (tmp_path / "mirror/income").iterdir()) == [
        "1",
        "2",
        "serving.json",
    ]
    frame = eval_rows(models)
    n = min(frame.height, 300)
    ids = [f"m{i}" for i in range(n)]
    logs = tmp_path / "logs"
    with TestClient(
        create_app(registry=str(tmp_path / "mirror"), log_dir=str(logs), watch=False)
    ) as c:
        versions = []
        for i in range(n):
            body = {"instances": [{"age": frame["age"][i], "sex": frame["sex"][i]}]}
            got = c.post("/v1/models/income:predict", json=body, headers={"X-Request-ID": ids[i]})
            versions.append(got.json()["model_version"])
    fb = tmp_path / "feedback.csv"
    pl.DataFrame({"request_id": ids, "income": frame["income"][:n]}).write_csv(fb)
    reports = {}
    for where, registry in (("bucket", remote), ("local", str(local))):
        r = cli("monitor", "--requests", str(logs), "--baseline", str(models / "st"),
                "--evaluation", f"{registry}/income", "--feedback", str(fb), "--join",
                "request_id", "--compare", f"{registry}/income", "--store",
                str(models / ".mlstage"), "-o", str(tmp_path / where))  # fmt: skip
        assert r.exit_code in (0, 1, 4), r.stderr
        reports[where] = json.loads((tmp_path / where / "report.json").read_text())
    cmp = reports["bucket"]["comparison"]
    assert cmp["role"] == "canary"
    assert cmp["candidate"]["rows"] == versions.count(2) and cmp["stable"][
        "rows"
    ] == versions.count(1)
    assert cmp["candidate"]["live"]["joined"] == versions.count(2)
    assert cmp == reports["local"]["comparison"]
    assert reports["bucket"]["predictions"] == reports["local"]["predictions"]
    inputs = json.loads((tmp_path / "bucket" / "manifest.json").read_text())["inputs"]
    ev = {i: json.loads((models / f"ev{i}" / "manifest.json").read_text())["id"] for i in (0, 3)}
    assert {ev[0], ev[3]} <= {i["id"] for i in inputs}


def test_a_damaged_canary_in_the_bucket_leaves_the_mirror_serving_the_rest(
    bucket, models, tmp_path, monkeypatch
):
    """As from a local registry: a labelled version that does not verify is left out of
    the mirror and reported (its label has a problem, traffic stays on stable), the rest
    of the model is mirrored, and a fresh canary gets through at the next poll."""
    registry = f"s3://{bucket}/registry"
    run(models, registry, ("deploy", "m0", "ev0"))
    run(models, registry, ("deploy", "m1", "ev1", {"canary": 50}))
    version2 = S3Url.parse(f"{registry}/income/2")
    client.put(version2.join("signature.json"), b"{}")
    mirror = RegistryMirror(S3Url.parse(registry), tmp_path / "mirror")
    with pytest.raises(MlstageError, match=r"registry/income/2: its files differ"):
        mirror.sync()
    local = tmp_path / "mirror/income"
    assert sorted(p.name for p in local.iterdir()) == ["1", "serving.json"]
    assert read_serving(local)["canary"] == {"version": 2, "percent": 50}
    with TestClient(create_app(registry=str(tmp_path / "mirror"), watch=False)) as c:
        body = {"instances": [{"age": 40, "sex": "Male"}]}
        got = {c.post("/v1/models/income:predict", json=body, headers={"X-Request-ID": f"d{i}"})
               .json()["model_version"] for i in range(40)}  # fmt: skip
        assert got == {1}
        assert "2" in json.dumps(c.get("/v1/models/income").json()["problem"])
    # a real server starts on such a bucket, serving stable and saying why not the canary
    from ..serve.conftest import start_server, wait_ready

    proc, port = start_server(registry, tmp_path / "serve.log")
    try:
        wait_ready(port, proc)
        status = json.loads(
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/income").read()
        )
        assert status["served_version"] == 1 and status.get("canary") is None, status
    finally:
        proc.terminate()
        proc.wait(30)
    assert "registry/income/2: its files differ" in (tmp_path / "serve.log").read_text()
    # the damaged copy is tried again at a later poll, not at every one
    downloads, download = [], client.download
    monkeypatch.setattr(client, "download", lambda *a: downloads.append(a) or download(*a))
    with pytest.raises(MlstageError, match="its files differ"):
        mirror.sync()
    assert downloads == []
    assert run(models, registry, ("deploy", "m1", "ev1", {"canary": 50})) == (
        3, "canary", "canary", False)  # fmt: skip
    assert mirror.sync() is True
    assert sorted(p.name for p in local.iterdir()) == ["1", "3", "serving.json"]
    assert read_serving(local)["canary"] == {"version": 3, "percent": 50}
