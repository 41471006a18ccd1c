"""The examples/ chain with its data, store and registry in a bucket, its stages on a Dask
cluster, gives the ids of the same chain on local disk in one process (examples/loop_s3.sh
run on both): issue 17's "done when"."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from mlstage.core import objstore as client
from mlstage.core.s3url import S3Url

from ..conftest import ROOT, SAMPLE

ROWS = 10_000


def run_loop(at: str, data: str, tmp_path, engine: str | None = None) -> dict[str, str]:
    # the examples' training without its search (6 trials x 3 folds: 20 s a run here)
    train = json.loads((ROOT / "examples/adult_train.json").read_text())
    train.pop("tune")
    config = tmp_path / "train.json"
    config.write_text(json.dumps(train))
    env = {**os.environ, "DATA": data, "MLSTAGE": f"{sys.executable} -m mlstage",
           "TRAIN_CONFIG": str(config),
           "DEPLOY_OPTS": "--skip-check", "MLSTAGE_NO_SHORTCUT": "1",
           "PYTHONPATH": str(ROOT), "MLSTAGE_ENGINE": engine or "local"}  # fmt: skip
    done = subprocess.run([str(ROOT / "examples/loop_s3.sh"), at], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    log = subprocess.run([sys.executable, "-m", "mlstage", "log", "--json", "--store", f"{at}/store"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, check=True)  # fmt: skip
    return {e["path"].removeprefix(at).lstrip("/"): e["id"] for e in json.loads(log.stdout)}


def test_the_examples_chain_in_a_bucket_gives_the_local_ids(bucket, tmp_path):
    # a third of Adult keeps the test under the suite's budget; the chain is the examples'
    data = tmp_path / "adult.csv"
    with open(SAMPLE / "adult.csv") as f, open(data, "w") as g:
        g.writelines(line for i, line in enumerate(f) if i <= ROWS)
    local = run_loop(str(tmp_path / "local"), str(data), tmp_path)
    client.put(S3Url.parse(f"s3://{bucket}/loop/raw/adult.csv"), data)
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        remote = run_loop(f"s3://{bucket}/loop", f"s3://{bucket}/loop/raw/adult.csv", tmp_path,
                          engine=cluster.scheduler_address)  # fmt: skip
    expected = {"data/adult", "stats/adult", "schema/adult", "anomalies/adult",
                "features/adult", "models/adult", "evaluations/adult", "registry/income/1"}  # fmt: skip
    assert set(local) == expected and remote == local
    serving = json.loads(
        client.get(S3Url.parse(f"s3://{bucket}/loop/registry/income/serving.json")).data
    )
    assert serving["version"] == 1 and serving["history"][0]["model"] == local["models/adult"]
    assert serving["history"][0]["action"] == "deploy"  # blessed: the evaluation let it in
