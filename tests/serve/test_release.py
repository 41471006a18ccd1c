"""Releases: labels, a canary and a shadow under concurrent traffic, `monitor --compare`'s
verdict, `deploy --promote`, and the pre-push check in a real server process."""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import signal
import threading
import time
import urllib.request
from pathlib import Path

import polars as pl
import pytest
from starlette.testclient import TestClient

from mlstage import monitor, stats, train
from mlstage.errors import BadInput
from mlstage.serving.app import create_app
from mlstage.serving.logreader import read_requests
from mlstage.stages.deploy import DeployRefused, deploy, promote, rollback
from mlstage.stages.evaluate import evaluate
from mlstage.store.registry import labels_of, read_serving, resolve_model
from mlstage.store.store import Store

from ..conftest import cli, write_json
from .conftest import INPUTS, NO_CHECK, row, start_server, wait_ready


@pytest.fixture(scope="module")
def more(built):
    """m3: nearly m1 (a canary worth promoting); dummy: always ">50K" (worse), blessed by
    an evaluation without thresholds."""
    from ..conftest import working_in

    with working_in(built):
        base = {"format": "mlstage-train/1", "task": "classification", "seed": 0}
        ok = built / "ok.json"
        if not (built / "m3").exists():
            cfg = {**base, "estimator": "LogisticRegression", "params": {"C": 0.5}}
            train("feat", "m3", config=write_json(built / "c.json", cfg))
            evaluate("m3", "ds", "e3", config=ok)
            cfg = {
                **base,
                "estimator": "DummyClassifier",
                "params": {"strategy": "constant", "constant": 1},
            }
            train("feat", "dummy", config=write_json(built / "d.json", cfg))
            plain = write_json(built / "plain.json", {"format": "mlstage-evaluate/1"})
            evaluate("dummy", "ds", "ed", config=plain)
            stats("ds", "st")
    return built


def eval_rows(root: Path) -> pl.DataFrame:
    files = sorted((root / "ds").glob("eval*.parquet"))
    return pl.read_parquet(files).select([*INPUTS, "income"])


def send(port: int, rows: list[dict], ids: list[str], threads: int = 8, path=None):
    """POST each row as its own request with its id, from `threads` clients at once:
    (id -> model_version, failures)."""
    path = path or "/v1/models/income:predict"
    answered: dict[str, int] = {}
    failures: list[str] = []

    def client(part):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in part:
            body = json.dumps({"instances": [rows[i]]})
            head = {"Content-Type": "application/json", "X-Request-ID": ids[i]}
            try:
                conn.request("POST", path, body=body, headers=head)
                resp = conn.getresponse()
                text = resp.read()
            except (OSError, http.client.HTTPException) as e:
                failures.append(f"{ids[i]}: {e}")
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            if resp.status != 200:
                failures.append(f"{ids[i]}: {resp.status} {text[:200]!r}")
            else:
                answered[ids[i]] = json.loads(text)["model_version"]
        conn.close()

    workers = [
        threading.Thread(target=client, args=(range(k, len(rows), threads),))
        for k in range(threads)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return answered, failures


def stop(proc) -> None:
    proc.send_signal(signal.SIGTERM)  # a graceful stop flushes the request logs
    proc.wait(timeout=30)


def feedback(root: Path, frame: pl.DataFrame, ids: list[str]) -> Path:
    path = root / "feedback.csv"
    pl.DataFrame({"request_id": ids, "income": frame["income"]}).write_csv(path)
    return path


# -- labels ---------------------------------------------------------------------------
def test_labels_point_route_roll_back_and_old_files_still_work(here, tmp_path):
    store, reg = Store.open(), tmp_path / "reg"
    deploy(store, "m1", "e1", reg, name="income", check=NO_CHECK)
    r = deploy(store, "m2", "e2", reg, label="exp", check=NO_CHECK)
    assert (r.version, r.label, r.action) == (2, "exp", "deploy")
    doc = read_serving(reg / "income")
    assert doc["version"] == 1 and doc["labels"] == {"exp": 2, "stable": 1}
    assert doc["history"][-1]["label"] == "exp" and doc["history"][-1]["check"] == "skipped"
    assert resolve_model(str(reg / "income")) == str(reg / "income" / "1")  # stable
    with TestClient(create_app(reg, watch=False)) as c:
        one = {"instances": [row()]}
        assert c.post("/v1/models/income/labels/exp:predict", json=one).json()["model_version"] == 2
        assert c.post("/v1/models/income:predict", json=one).json()["model_version"] == 1
        stable = c.post("/v1/models/income/labels/stable:predict", json=one)
        assert stable.json()["model_version"] == 1
        inv = c.post("/invocations?model=income&label=exp", json={"dataframe_records": [row()]})
        assert inv.json()["model_version"] == 2
        missing = c.post("/v1/models/income/labels/nope:predict", json=one)
        assert missing.status_code == 404 and "no label 'nope'" in missing.json()["error"]
        assert c.get("/v1/models/income").json()["labels"] == {"exp": 2, "stable": 1}
        meta = c.get("/v1/models/income/labels/exp/metadata").json()
        assert meta["model_spec"] == {"version": "2", "version_labels": ["exp"]}
    # a label's own history: exp -> 1, then rolled back to 2; stable untouched
    assert deploy(store, "m1", "e1", reg, label="exp", check=NO_CHECK).version == 1
    back = rollback(reg, label="exp")
    assert (back.version, back.label) == (2, "exp")
    assert labels_of(read_serving(reg / "income")) == {"exp": 2, "stable": 1}
    with pytest.raises(BadInput, match="no earlier version of stable"):
        rollback(reg)  # stable has only ever been version 1
    # a registry written before labels: one pointer, history without labels
    old = {"format": "mlstage-serving/1", "version": 1,
           "history": [{"version": 1, "model": doc["history"][0]["model"], "at": "2026-01-01T00:00:00Z",
                        "action": "deploy", "message": ""}]}  # fmt: skip
    (reg / "income" / "serving.json").write_text(json.dumps(old))
    assert labels_of(read_serving(reg / "income")) == {"stable": 1}
    with TestClient(create_app(reg, watch=False)) as c:
        got = c.post("/v1/models/income:predict", json={"instances": [row()]})
        assert got.json()["model_version"] == 1
        assert c.get("/v1/models/income").json()["labels"] == {"stable": 1}
    assert deploy(store, "m2", "e2", reg, label="exp", check=NO_CHECK).version == 2


def test_release_options_refused_with_a_reason(here, tmp_path):
    reg = str(tmp_path / "reg")
    base = ["deploy", "m2", "--evaluation", "e2", "--registry", reg, "--name", "income"]
    r = cli(*base, "--canary", "20")
    assert r.exit_code == 2 and "deploy a stable version before a canary" in r.stderr
    assert not (tmp_path / "reg" / "income" / "serving.json").exists()
    assert cli(*base, "--skip-check").exit_code == 0
    for extra, said in [
        (["--canary", "0"], "a percentage in (0, 100]"),
        (["--canary", "150"], "a percentage in (0, 100]"),
        (["--canary", "nan"], "a percentage in (0, 100]"),
        (["--canary", "10", "--shadow"], "give one"),
        (["--label", "canary"], "use --canary"),
        (["--label", "Bad Label"], "a label is a lowercase letter"),
        (["--shadow"], "is already stable"),  # m2 is the stable version
        (["--check-latency-ms", "0"], "a positive bound"),
    ]:
        r = cli(*base, *extra)
        assert r.exit_code == 2 and said in r.stderr, (extra, r.stderr)
    r = cli("deploy", "--promote", "--registry", reg)
    assert r.exit_code == 2 and "no canary or shadow runs" in r.stderr
    r = cli("deploy", "--rollback", "--label", "exp", "--registry", reg)
    assert r.exit_code == 2 and "no label 'exp'" in r.stderr
    assert read_serving(tmp_path / "reg" / "income")["labels"] == {"stable": 1}


# -- canary ---------------------------------------------------------------------------
def test_canary_splits_traffic_by_request_id_and_is_promoted(more, monkeypatch, tmp_path):
    monkeypatch.chdir(more)
    store, reg, logs = Store.open(), tmp_path / "reg", tmp_path / "logs"
    deploy(store, "m1", "e1", reg, name="income", check=NO_CHECK)
    r = deploy(store, "m3", "e3", reg, canary=20)  # checked in a real server first
    assert r.label == "canary" and r.check["source"] == "evaluation" and r.check["rows"] == 200
    doc = read_serving(reg / "income")
    assert doc["canary"] == {"version": 2, "percent": 20} and doc["version"] == 1
    frame = eval_rows(more)
    n = 5_000
    rows = [{c: frame[c][i % frame.height] for c in INPUTS} for i in range(n)]
    ids = [f"req-{i}" for i in range(n)]
    proc, port = start_server(reg, tmp_path / "serve.log", "--log-dir", str(logs))
    try:
        wait_ready(port, proc)
        answered, failures = send(port, rows, ids)
        assert failures == [] and len(answered) == n
        share = sum(v == 2 for v in answered.values()) / n * 100
        assert abs(share - 20) <= 2, share
        # a retried request (the same id) lands on the same version, on either protocol
        again, _ = send(port, rows[:200], ids[:200], threads=2)
        assert again == {i: answered[i] for i in ids[:200]}
        inv, _ = send(port, rows[:200], ids[:200], threads=2, path="/invocations?model=income")
        assert inv == again
    finally:
        stop(proc)
    logged = read_requests(sorted(logs.glob("requests-*.parquet")), "logs")
    first = logged.unique("request_id", keep="first").sort("request_id")
    assert first.height == n
    assert dict(zip(first["request_id"], first["version"], strict=True)) == answered
    fb = feedback(tmp_path, frame[[i % frame.height for i in range(n)]], ids)
    logged.filter(pl.int_range(pl.len()) < n).write_parquet(tmp_path / "window.parquet")
    window = tmp_path / "window"
    window.mkdir()
    (tmp_path / "window.parquet").rename(window / "requests-window.parquet")
    r = cli("monitor", "--requests", str(window), "--baseline", "st", "--evaluation", str(reg / "income"),
            "--feedback", str(fb), "--join", "request_id", "--compare", str(reg / "income"),
            "-o", str(tmp_path / "mon"))  # fmt: skip
    assert r.exit_code in (0, 1), r.stderr
    report = json.loads((tmp_path / "mon" / "report.json").read_text())
    cmp = report["comparison"]
    assert cmp["role"] == "canary" and cmp["verdict"] == "promote", cmp["reasons"]
    assert r.exit_code == 0, r.stderr
    assert cmp["stable"]["rows"] + cmp["candidate"]["rows"] == n
    assert cmp["candidate"]["rows"] == sum(v == 2 for v in answered.values())
    assert cmp["candidate"]["live"]["joined"] == cmp["candidate"]["rows"]
    assert cmp["candidate"]["estimated"]["metrics"]["accuracy"] is not None
    assert "verdict: promote the canary" in r.stderr
    p = promote(reg)
    assert (p.version, p.action) == (2, "promote")
    doc = read_serving(reg / "income")
    assert doc["version"] == 2 and "canary" not in doc and doc["labels"] == {"stable": 2}
    assert [h["action"] for h in doc["history"]][-2:] == ["promote", "end-canary"]
    assert rollback(reg).version == 1  # the promotion is rolled back like any deploy


def test_a_worse_canary_is_rolled_back(more, monkeypatch, tmp_path):
    monkeypatch.chdir(more)
    store, reg, logs = Store.open(), tmp_path / "reg", tmp_path / "logs"
    deploy(store, "m1", "e1", reg, name="income", check=NO_CHECK)
    deploy(store, "dummy", "ed", reg, canary=50, check=NO_CHECK)
    frame = eval_rows(more)
    n = min(frame.height, 3_000)
    ids = [f"r{i}" for i in range(n)]
    with TestClient(create_app(reg, log_dir=str(logs), watch=False)) as c:
        for i in range(n):
            body = {"instances": [{k: frame[k][i] for k in INPUTS}]}
            got = c.post("/v1/models/income:predict", json=body, headers={"X-Request-ID": ids[i]})
            assert got.status_code == 200
    fb = feedback(tmp_path, frame.head(n), ids)
    r = cli("monitor", "--requests", str(logs), "--baseline", "st", "--evaluation", str(reg / "income"),
            "--feedback", str(fb), "--join", "request_id", "--compare", str(reg / "income"),
            "-o", str(tmp_path / "mon"))  # fmt: skip
    cmp = json.loads((tmp_path / "mon" / "report.json").read_text())["comparison"]
    assert r.exit_code == 1 and cmp["verdict"] == "rollback"
    test = cmp["outcome_test"]
    assert test["significant"] and test["candidate"] < test["stable"]
    # the test's numbers, from the joined rows directly
    logged = read_requests(sorted(logs.glob("*.parquet")), "logs").join(
        pl.read_csv(fb), on="request_id"
    )
    for version, key in ((1, "stable"), (2, "candidate")):
        part = logged.filter(pl.col("version") == version)
        assert math.isclose(test[key], (part["prediction"] == part["income"]).mean(), rel_tol=1e-12)
    assert any("significantly worse" in x for x in cmp["reasons"])
    ended = rollback(reg, label="canary")
    assert ended.action == "end-canary"
    assert "canary" not in read_serving(reg / "income")


# -- shadow ---------------------------------------------------------------------------
def test_shadow_predicts_copies_that_no_client_sees(more, monkeypatch, tmp_path):
    from mlstage.model.artifact import Model

    monkeypatch.chdir(more)
    store, reg, logs = Store.open(), tmp_path / "reg", tmp_path / "logs"
    deploy(store, "m1", "e1", reg, name="income", check=NO_CHECK)
    deploy(store, "m3", "e3", reg, shadow=True, check=NO_CHECK)
    frame = eval_rows(more)
    n = 1_000
    rows = [{c: frame[c][i % frame.height] for c in INPUTS} for i in range(n)]
    ids = [f"s{i}" for i in range(n)]
    proc, port = start_server(reg, tmp_path / "serve.log", "--log-dir", str(logs))
    try:
        wait_ready(port, proc)
        answered, failures = send(port, rows, ids, threads=4)
        counts = {}
        for _ in range(50):  # the copies leave ten times a second
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
            counts = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
                      if line.startswith("mlstage_shadow_")}  # fmt: skip
            if counts.get("mlstage_shadow_copies") == n:
                break
            time.sleep(0.1)
        assert counts == {"mlstage_shadow_copies": n, "mlstage_shadow_dropped": 0}
    finally:
        stop(proc)
    assert failures == [] and set(answered.values()) == {1}  # the shadow answers nobody
    logged = read_requests(sorted(logs.glob("requests-*.parquet")), "logs")
    shadow = logged.filter(pl.col("shadow").fill_null(False))
    assert shadow.height == n and set(shadow["version"]) == {2}
    assert sorted(shadow["request_id"]) == sorted(ids)
    # the shadow's predictions are the shadow model's, on the same rows
    m3 = Model.load(reg / "income" / "2")
    by_id = dict(zip(shadow["request_id"], shadow["prediction"], strict=True))
    want, _ = m3.predict_frame(pl.DataFrame(rows[:200]))
    assert [by_id[i] for i in ids[:200]] == want
    # monitor counts what clients saw; --compare pairs the shadow with the stable answers
    plain = monitor(logs, tmp_path / "plain", baseline="st", allow_empty=True)
    assert plain.manifest["summary"]["rows"] == n
    r = cli("monitor", "--requests", str(logs), "--baseline", "st",
            "--compare", str(reg / "income"), "-o", str(tmp_path / "mon"))  # fmt: skip
    cmp = json.loads((tmp_path / "mon" / "report.json").read_text())["comparison"]
    assert cmp["role"] == "shadow" and cmp["candidate"]["rows"] == n
    assert cmp["difference"]["paired_rows"] == n and cmp["difference"]["agreement"] > 0.9
    assert cmp["verdict"] == "promote" and r.exit_code == 0, cmp["reasons"]
    p = promote(reg)
    assert p.version == 2 and "shadow" not in read_serving(reg / "income")


# -- the pre-push check ---------------------------------------------------------------
WRONG = """
import mlstage.model.artifact as a
_real = a.Model.predict_rows
def _flipped(self, rows):
    preds, proba = _real(self, rows)
    classes = self.class_names
    return [classes[0] if p == classes[-1] else classes[-1] for p in preds], proba
a.Model.predict_rows = _flipped
"""


def test_the_pre_push_check_refuses_a_server_that_answers_differently(here, tmp_path, monkeypatch):
    store, reg = Store.open(), tmp_path / "reg"
    deploy(store, "m1", "e1", reg, name="income", check=NO_CHECK)
    before = (reg / "income" / "serving.json").read_bytes()
    # the server process (not this one) gets a row path that disagrees with predict
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(WRONG)
    monkeypatch.setenv("PYTHONPATH", str(inject))
    with pytest.raises(
        DeployRefused, match="pre-push check failed: TF Serving: row [0-9]+ of the sample"
    ):
        deploy(store, "m2", "e2", reg)
    assert (reg / "income" / "serving.json").read_bytes() == before  # nothing pointed
    assert sorted(p.name for p in (reg / "income").iterdir()) == [".lock", "1", "serving.json"]
    assert not list(reg.glob(".mlstage-check-*"))  # the check's registry is gone
    monkeypatch.delenv("PYTHONPATH")
    # too slow for the bound: refused, with the measured latency in the reason
    r = cli(
        "deploy", "m2", "--evaluation", "e2", "--registry", str(reg), "--check-latency-ms", "0.001"
    )
    assert r.exit_code == 1 and "95th percentile, over the bound of 0.001 ms" in r.stderr
    assert (reg / "income" / "serving.json").read_bytes() == before
    # without an evaluation, rows come from the signature's ranges and domains
    ok = deploy(store, "m2", None, reg, allow_unblessed=True)
    assert ok.check["source"] == "signature" and ok.check["rows"] == 200


def test_compare_judges_a_version_without_an_evaluation_and_small_windows(
    more, monkeypatch, tmp_path
):
    """A canary deployed without an evaluation is still measured by its outcomes; fewer
    than 100 candidate rows is undecided (exit 4) unless harm is already significant;
    `--compare` needs logs; a plain monitor holds only stable's answers against the
    stable evaluation."""
    monkeypatch.chdir(more)
    store, reg, logs = Store.open(), tmp_path / "reg", tmp_path / "logs"
    deploy(store, "m1", "e1", reg, name="income", check=NO_CHECK)
    deploy(store, "dummy", None, reg, canary=50, allow_unblessed=True, check=NO_CHECK)
    frame = eval_rows(more)
    n = min(frame.height, 1_500)
    ids = [f"u{i}" for i in range(n)]
    with TestClient(create_app(reg, log_dir=str(logs), watch=False)) as c:
        for i in range(n):
            body = {"instances": [{k: frame[k][i] for k in INPUTS}]}
            c.post("/v1/models/income:predict", json=body, headers={"X-Request-ID": ids[i]})
    fb = feedback(tmp_path, frame.head(n), ids)
    args = ["--requests", str(logs), "--baseline", "st", "--feedback", str(fb),
            "--join", "request_id", "--compare", str(reg / "income")]  # fmt: skip
    r = cli("monitor", *args, "-o", str(tmp_path / "a"))
    cmp = json.loads((tmp_path / "a" / "report.json").read_text())["comparison"]
    assert r.exit_code == 1 and cmp["verdict"] == "rollback", (r.stderr, cmp["reasons"])
    assert cmp["candidate"]["note"].startswith("deployed without an evaluation")
    assert (
        cmp["candidate"]["live"]["metrics"]["accuracy"] < 0.5 and cmp["outcome_test"]["significant"]
    )
    # a small window: 40 requests, about 20 to the canary
    small = tmp_path / "small"
    small.mkdir()
    logged = read_requests(sorted(logs.glob("*.parquet")), "logs")
    logged.filter(pl.col("request_id").is_in(ids[:40])).write_parquet(small / "requests-x.parquet")
    r = cli("monitor", *args[:1], str(small), *args[2:], "-o", str(tmp_path / "b"))
    cmp = json.loads((tmp_path / "b" / "report.json").read_text())["comparison"]
    if cmp["reasons"]:  # harm already significant on 20 rows: rolled back
        assert r.exit_code == 1 and cmp["verdict"] == "rollback"
    else:
        assert r.exit_code == 4 and cmp["verdict"] == "undecided"
        assert "too few to judge" in r.stderr
    # an empty window: undecided, exit 4, even with --allow-empty
    r = cli("monitor", *args, "--window", "1h", "--until", "2000-01-01T00:00:00",
            "--allow-empty", "-o", str(tmp_path / "c"))  # fmt: skip
    assert r.exit_code == 4 and "too few to judge" in r.stderr
    # a dataset has no versions
    r = cli("monitor", "--requests", "ds", "--baseline", "st", "--compare", str(reg / "income"),
            "-o", str(tmp_path / "d"))  # fmt: skip
    assert r.exit_code == 2 and "needs the server's request logs" in r.stderr
    # a plain monitor judges only stable's answers by the stable evaluation
    r = cli("monitor", "--requests", str(logs), "--baseline", "st", "--evaluation",
            str(reg / "income"), "-o", str(tmp_path / "e"))  # fmt: skip
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    stable_rows = logged.filter(pl.col("version") == 1).height
    assert report["predictions"]["rows"] == stable_rows < n
    assert report["requests"]["rows"] == n


def test_registry_edits_and_runs_end_consistently(here, tmp_path):
    store, reg = Store.open(), tmp_path / "reg"
    deploy(store, "m1", "e1", reg, name="income", check=NO_CHECK)
    deploy(store, "m2", "e2", reg, canary=10, check=NO_CHECK)
    # rolling stable back to the canary's version ends the canary
    deploy(store, "m2", "e2", reg, label="exp", check=NO_CHECK)
    rollback(reg, to=2)
    doc = read_serving(reg / "income")
    assert doc["version"] == 2 and "canary" not in doc and "canary" not in doc["labels"]
    assert doc["labels"] == {"exp": 2, "stable": 2}
    # promote refuses a damaged version
    deploy(store, "m1", "e1", reg, canary=10, check=NO_CHECK)
    os.chmod(reg / "income" / "1" / "model.skops", 0o644)
    with open(reg / "income" / "1" / "model.skops", "ab") as f:
        f.write(b"x")
    r = cli("deploy", "--promote", "--registry", str(reg))
    assert r.exit_code != 0 and "damaged" in r.stderr
    assert read_serving(reg / "income")["version"] == 2
    # hand edits that would leave deploy and the server reading the file differently
    path = reg / "income" / "serving.json"
    good = json.loads(path.read_text())
    for edit, said in [
        ({"labels": {"stable": 1}}, "labels.stable (1) differs from version (2)"),
        ({"labels": {"Bad Label!": 1, "stable": 2}}, "is not a label name"),
        ({"canary": {"version": 1, "percent": 0}}, "canary.percent"),
        (
            {"canary": {"version": 2, "percent": 5}, "labels": {"canary": 1, "stable": 2}},
            "canary.version (2) differs from labels.canary (1)",
        ),
    ]:
        path.write_text(json.dumps({**good, **edit}))
        with pytest.raises(BadInput, match=re.escape(said)):
            read_serving(reg / "income")
    # a canary written without its label is still a canary to deploy and the server
    path.write_text(json.dumps({**good, "labels": {"stable": 2}}))
    assert labels_of(read_serving(reg / "income"))["canary"] == 1
    assert rollback(reg, label="canary").action == "end-canary"
    assert "canary" not in read_serving(reg / "income")
    for extra, said in [(["--promote", "--to", "1"], "no --to"),
                        (["--rollback", "--skip-check"], "no --skip-check"),
                        (["--to", "1"], "--to is for --rollback")]:  # fmt: skip
        r = cli("deploy", *extra, "--registry", str(reg))
        assert r.exit_code == 2 and said in r.stderr, r.stderr


def test_the_check_survives_odd_names_and_a_killed_deploy(here, tmp_path):
    import os
    import subprocess
    import time as clock

    from ..conftest import mlstage_exe

    store, reg = Store.open(), tmp_path / "reg"
    ok = deploy(store, "m1", "e1", reg, name="my model#1")  # the check's URLs never see it
    assert isinstance(ok.check, dict) and ok.check["rows"] == 200
    # a deploy stopped by SIGTERM mid-check leaves no server, scratch folder or copy
    proc = subprocess.Popen([mlstage_exe(), "deploy", "m2", "--evaluation", "e2", "--registry",
                             str(reg), "--name", "my model#1"], stderr=subprocess.PIPE)  # fmt: skip
    deadline = clock.monotonic() + 60
    while clock.monotonic() < deadline and not list(reg.glob(".mlstage-check-*/registry")):
        clock.sleep(0.05)
    assert list(reg.glob(".mlstage-check-*")), "the check did not start"
    clock.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 143
    clock.sleep(1.0)
    left = subprocess.run(["pgrep", "-f", str(reg / ".mlstage-check-")], capture_output=True)
    assert left.stdout == b"", left.stdout
    assert not list(reg.glob(".mlstage-check-*")) and not list(reg.glob("*/.v*.tmp"))
    assert read_serving(reg / "my model#1")["version"] == 1
    # a killed deploy's scratch folder is removed by the next check
    os.makedirs(reg / ".mlstage-check-999999999-x" / "registry")
    deploy(store, "m2", "e2", reg, name="my model#1")
    assert not list(reg.glob(".mlstage-check-*"))


LOAD_FAILS = """
import mlstage.model.artifact as a
def _refuse(cls, path):
    raise RuntimeError("this server cannot load models")
a.Model.load = classmethod(_refuse)
"""


def test_a_version_the_server_cannot_load_fails_the_check_at_once(here, tmp_path, monkeypatch):
    import time as clock

    store, reg = Store.open(), tmp_path / "reg"
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(LOAD_FAILS)
    monkeypatch.setenv("PYTHONPATH", str(inject))
    started = clock.monotonic()
    with pytest.raises(DeployRefused, match="does not load in the server: this server cannot load"):
        deploy(store, "m1", "e1", reg, name="income")
    assert clock.monotonic() - started < 60
    assert not (reg / "income" / "serving.json").exists()
