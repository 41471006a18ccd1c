"""The whole examples/ loop with its data, store and registry in a bucket and its stages on
a Dask cluster gives the ids of the same loop on local disk in one process
(examples/loop_s3.sh run on both): issue 17's "done when".

The loop: the chain -> serve (the registry polled in the bucket) and drifted traffic ->
monitor calls for retraining -> a new labelled file arrives under incoming/ -> `retrain`
appends it as a span, trains, evaluates against the served model and deploys version 2,
which the running server swaps in -> rollback, which it swaps back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from mlstage.core import objstore as client
from mlstage.core.s3url import S3Url
from mlstage.serving.requestlog import FLUSH_SECONDS

from ..conftest import ROOT, SAMPLE
from ..serve.conftest import free_port, wait_ready

ROWS = 10_000  # a third of Adult keeps the test under the suite's budget
LOOP = ROOT / "examples/loop_s3.sh"


def loop_env(tmp_path: Path, data: str, engine: str | None, port: int) -> dict[str, str]:
    # the examples' training without its search (6 trials x 3 folds: 20 s a run here)
    config = tmp_path / "train.json"
    if not config.exists():
        train = json.loads((ROOT / "examples/adult_train.json").read_text())
        train.pop("tune")
        config.write_text(json.dumps(train))
    return {**os.environ, "DATA": data, "MLSTAGE": f"{sys.executable} -m mlstage",
            "TRAIN_CONFIG": str(config), "PORT": str(port), "WINDOW": "1000d",
            "DEPLOY_OPTS": "--skip-check", "MLSTAGE_NO_SHORTCUT": "1",
            "MLSTAGE_S3_POLL_SECONDS": "0.3",
            "PYTHONPATH": str(ROOT), "MLSTAGE_ENGINE": engine or "local"}  # fmt: skip


def run(at: str, target: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LOOP), at, target], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600)  # fmt: skip


def port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def served_version(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/income", timeout=5) as r:
        return json.loads(r.read())["served_version"]


def wait_version(port: int, version: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while served_version(port) != version:
        assert time.monotonic() < deadline, f"the server still serves {served_version(port)}"
        time.sleep(0.2)


def whole_loop(at: str, data: str, more: Path, tmp_path: Path, engine: str | None = None):
    """The loop in `at` (a folder or s3://...): the store's (path, id) of every write but
    monitor's (its requests' times differ), and monitor's exit codes."""
    work = tmp_path / ("remote" if at.startswith("s3://") else "local-work")
    work.mkdir()
    port = free_port()
    env = loop_env(tmp_path, data, engine, port)
    if not at.startswith("s3://"):
        Path(at, "incoming").mkdir(parents=True)  # a local incoming/ is a folder that exists
    first = run(at, "all", env, work)
    assert first.returncode == 0, first.stderr
    again = run(at, "all", env, work)  # nothing new: every stage is up to date
    assert again.returncode == 0 and "now serves" not in again.stderr, again.stderr

    server = subprocess.Popen([str(LOOP), at, "serve"], env=env, cwd=work,
                              stderr=open(work / "serve.log", "wb"))  # fmt: skip
    try:
        wait_ready(port, server)
        assert served_version(port) == 1
        replay = subprocess.run(
            [sys.executable, str(ROOT / "examples/replay_requests.py"), str(SAMPLE / "adult.csv"),
             f"http://127.0.0.1:{port}/v1/models/income:predict", "--rows", "1500",
             "--skip", "20000", "--drift", "--tag", "drift"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert replay.returncode == 0, replay.stderr
        # new labelled data arrives; the server keeps running while the loop retrains
        if at.startswith("s3://"):
            client.put(S3Url.parse(f"{at}/incoming/batch-2.csv"), more)
        else:
            os.link(more, Path(at, "incoming", "batch-2.csv"))
        time.sleep(FLUSH_SECONDS + 0.5)  # the server has written its requests' log
        retrain = run(at, "retrain", env, work)
        assert retrain.returncode == 0, retrain.stderr
        assert "monitor called for retraining" in retrain.stderr
        assert "now serves version 2" in retrain.stderr
        wait_version(port, 2)  # the hot swap, from the bucket's serving.json
        back = run(at, "rollback", env, work)
        assert back.returncode == 0, back.stderr
        wait_version(port, 1)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    # the server itself got the signal (the script execs it: no server left behind); it
    # shuts down gracefully, then ends by the signal, as uvicorn does
    assert server.returncode in (0, -signal.SIGTERM)
    assert not port_open(port)
    monitor = run(at, "monitor", env, work)  # version 1 again: its evaluation, same traffic
    log = subprocess.run([sys.executable, "-m", "mlstage", "log", "--json", "--store", f"{at}/store"],
                         env=env, cwd=work, capture_output=True, text=True, check=True)  # fmt: skip
    writes = sorted(
        (e["path"].removeprefix(at).lstrip("/"), e["id"]) for e in json.loads(log.stdout)
        if not e["path"].removeprefix(at).lstrip("/").startswith("monitor/")
    )  # fmt: skip
    return writes, monitor.returncode


def test_the_examples_loop_in_a_bucket_on_a_cluster_gives_the_local_ids(bucket, tmp_path):
    lines = (SAMPLE / "adult.csv").read_text().splitlines(keepends=True)
    data, more = tmp_path / "adult.csv", tmp_path / "more.csv"
    data.write_text("".join(lines[: ROWS + 1]))
    more.write_text(lines[0] + "".join(lines[ROWS + 1 : ROWS + 4001]))
    local, local_monitor = whole_loop(str(tmp_path / "local"), str(data), more, tmp_path)
    at = f"s3://{bucket}/loop"
    client.put(S3Url.parse(f"{at}/raw/adult.csv"), data)
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        remote, remote_monitor = whole_loop(at, f"{at}/raw/adult.csv", more, tmp_path,
                                            engine=cluster.scheduler_address)  # fmt: skip
    paths = {p for p, _ in local}
    assert paths == {"data/adult-base", "data/adult", "stats/adult", "schema/adult",
                     "anomalies/adult", "features/adult", "models/adult", "evaluations/adult",
                     "registry/income/1", "registry/income/2"}  # fmt: skip
    assert remote == local
    # two datasets, models, evaluations: the retrain made new ones of each
    assert sum(p == "models/adult" for p, _ in local) == 2
    assert local_monitor == remote_monitor == 1  # the drifted traffic, on either side
    serving = json.loads(client.get(S3Url.parse(f"{at}/registry/income/serving.json")).data)
    assert [h["action"] for h in serving["history"]] == ["deploy", "deploy", "rollback"]
    assert serving["version"] == 1
    models = dict(p for p in local if p[0].startswith("registry/"))
    assert serving["history"][1]["model"] == models["registry/income/2"]
    dataset = json.loads(
        subprocess.run([sys.executable, "-m", "mlstage", "show", f"{at}/data/adult",
                        "--store", f"{at}/store"], capture_output=True, text=True,
                       check=True).stdout
    )  # fmt: skip
    assert dataset["summary"]["root"] == dict(local)["data/adult-base"]  # grew from the base
    evaluation = json.loads(
        subprocess.run([sys.executable, "-m", "mlstage", "show", f"{at}/evaluations/adult",
                        "--store", f"{at}/store"], capture_output=True, text=True,
                       check=True).stdout
    )  # fmt: skip
    # the retrained model was evaluated against the served one (the first had no baseline)
    assert [i["id"] for i in evaluation["inputs"] if i["role"] == "baseline"] == [
        models["registry/income/1"]]  # fmt: skip
    spans = dataset["summary"]["spans"]
    assert [len(s["sources"]) for s in spans] == [1, 1]  # the base file, then batch-2
    assert spans[1]["sources"][0]["path"].endswith("incoming/batch-2.csv")
