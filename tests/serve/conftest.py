"""The serving tests' models (built once), a test client, and helpers for real servers."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import pytest
from starlette.testclient import TestClient

from mlstage import featurize, ingest, train
from mlstage.serving.app import create_app
from mlstage.stages.deploy import CheckOptions, deploy
from mlstage.stages.evaluate import evaluate
from mlstage.store.store import Store

from ..conftest import SAMPLE, working_in, write_json

SPEC = {"format": "mlstage-features/1", "label": "income", "features": [
    {"column": "age", "transform": "standardize", "impute": "median"},
    {"column": "hours-per-week", "transform": "standardize", "impute": "median"},
    {"column": "workclass", "transform": "one_hot", "impute": "mode"},
    {"column": "sex", "transform": "one_hot"}]}  # fmt: skip
INPUTS = ["age", "hours-per-week", "workclass", "sex"]
# Deploys whose subject is not the pre-push check skip it (on record): it starts a server
# process per deploy; test_release.py and the deploy tests run it.
NO_CHECK = CheckOptions(skip=True)


@pytest.fixture(scope="package")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    with working_in(root):
        ingest([SAMPLE / "adult.csv"], "ds", null=["?"], split={"train": 8, "eval": 2})
        featurize("ds", "feat", spec=write_json(root / "spec.json", SPEC))
        base = {"format": "mlstage-train/1", "task": "classification", "seed": 0}
        train(
            "feat",
            "m1",
            config=write_json(root / "a.json", {**base, "estimator": "LogisticRegression"}),
        )
        train(
            "feat",
            "m2",
            config=write_json(
                root / "b.json", {**base, "estimator": "LogisticRegression", "params": {"C": 0.01}}
            ),
        )
        ok = write_json(
            root / "ok.json",
            {"format": "mlstage-evaluate/1", "thresholds": {"accuracy": {"min": 0.5}}},
        )
        strict = write_json(
            root / "strict.json",
            {"format": "mlstage-evaluate/1", "thresholds": {"accuracy": {"min": 0.99}}},
        )
        evaluate("m1", "ds", "e1", config=ok)
        evaluate("m2", "ds", "e2", config=ok)
        evaluate("m1", "ds", "e1_fail", config=strict)
    return root


@pytest.fixture
def here(built, monkeypatch):
    monkeypatch.chdir(built)
    return built


def row(**over):
    base = {"age": 40, "hours-per-week": 45, "workclass": "Private", "sex": "Male"}
    return {**base, **over}


@pytest.fixture
def client(here, tmp_path):
    reg = tmp_path / "reg"
    deploy(Store.open(), "m1", "e1", reg, name="income", check=NO_CHECK)
    app = create_app(reg, log_dir=str(tmp_path / "logs"), log_exclude=["sex"], watch=False)
    with TestClient(app) as c:
        c.registry = reg
        c.app_ = app
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port, path, body, timeout=10):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, json.loads(resp.read())


def start_server(reg, log, *options: str):
    """A real `mlstage serve` of `reg` on a free port, its stderr in the file `log`:
    (process, port). The caller waits for it (`wait_ready`) and stops it."""
    import subprocess

    from ..conftest import mlstage_exe

    port = free_port()
    cmd = [mlstage_exe(), "serve", "--registry", str(reg), "--port", str(port), *options]
    return subprocess.Popen(cmd, stderr=open(log, "wb")), port


def wait_ready(port, proc, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise AssertionError("the server did not start")


def stderr_of(proc) -> str:
    proc.kill()
    return proc.stderr.read().decode()
