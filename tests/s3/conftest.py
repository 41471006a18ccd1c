"""An S3-compatible server (moto's, single-threaded) on a free loopback port for the
session, the AWS_* variables pointing at it, a fresh bucket per test, and small models
to deploy."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import SAMPLE, working_in, write_json

HERE = Path(__file__).resolve().parent
SPEC = {"format": "mlstage-features/1", "label": "income", "features": [
    {"column": "age", "transform": "standardize", "impute": "median"},
    {"column": "sex", "transform": "one_hot"}]}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "moto_server.py"), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto's server did not start") from None
            time.sleep(0.05)
    return proc, endpoint


def make_bucket(endpoint: str, name: str) -> None:
    req = urllib.request.Request(f"{endpoint}/{name}", method="PUT")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    proc, endpoint = start_moto()
    saved = {k: os.environ.get(k) for k in [*AWS_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(AWS_ENV, AWS_ENDPOINT_URL=endpoint)
    try:
        yield endpoint
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def bucket(s3_endpoint, tmp_path, monkeypatch) -> str:
    """A new, empty bucket; each test's S3 cache in its own folder."""
    name = f"t-{secrets.token_hex(6)}"
    make_bucket(s3_endpoint, name)
    monkeypatch.setenv("MLSTAGE_S3_CACHE", str(tmp_path / "s3cache"))
    return name


@pytest.fixture(scope="package")
def models(tmp_path_factory):
    """In a local store: `ds` (1,500 rows of Adult), `feat`, four models m0..m3
    (LogisticRegression with four C), each blessed by `ev0`..`ev3` (no thresholds), and
    `st`, the dataset's statistics. Tests add outputs of their own in other names."""
    from mlstage import featurize, ingest, stats, train
    from mlstage.stages.evaluate import evaluate

    root = tmp_path_factory.mktemp("s3models")
    with working_in(root):
        src = root / "small.csv"
        with open(SAMPLE / "adult.csv") as f, open(src, "w") as g:
            g.writelines(line for i, line in enumerate(f) if i <= 1500)
        ingest([src], "ds", null=["?"], split={"train": 8, "eval": 2})
        featurize("ds", "feat", spec=write_json(root / "spec.json", SPEC))
        plain = write_json(root / "plain.json", {"format": "mlstage-evaluate/1"})
        for i, c in enumerate((1.0, 0.1, 0.01, 0.001)):
            cfg = {"format": "mlstage-train/1", "task": "classification", "seed": 0,
                   "estimator": "LogisticRegression", "params": {"C": c}}  # fmt: skip
            train("feat", f"m{i}", config=write_json(root / f"t{i}.json", cfg))
            evaluate(f"m{i}", "ds", f"ev{i}", config=plain)
        stats("ds", "st")
    return root
