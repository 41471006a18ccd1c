"""The Dask engine (issue 17, item 2): a stage run with `engine=ADDRESS` computes its
per-partition work on a cluster's workers and writes the same artifact as the local run,
byte for byte; an unreachable engine or a worker of another version is exit 2.

One cluster for the whole module: a `LocalCluster` of 2 worker *processes* (1 thread
each), started once (about a second). Processes rather than threads because they are
what a real cluster does: every task, its arguments and its result are pickled, and a
worker imports mlstage and reads the partitions by path on its own, in its own working
folder. The local runs are built once too (`chain`); each test reruns one stage on the
cluster into another folder of the same store and compares.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from mlstage import featurize, ingest, monitor, predict, schema, stats, train, validate
from mlstage.core import engine as engine_mod
from mlstage.errors import BadInput, opt

from ..conftest import ROOT, SAMPLE

pytestmark = pytest.mark.slow  # starts a cluster of worker processes

EXAMPLES = ROOT / "examples"
SEARCH = {
    "format": "mlstage-train/1", "task": "classification", "estimator": "LogisticRegression",
    "params": {"max_iter": 300}, "seed": 0,
    "tune": {"search": "random", "n_iter": 4, "cv": 2, "space": {"C": {"loguniform": [0.01, 10]}}},
}  # fmt: skip


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as c,
        Client(c.scheduler_address) as client,  # the test's own, to watch the tasks
    ):
        yield c.scheduler_address, client
    engine_mod.close_all()


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The local runs, once: 6,000 rows of Adult in partitions of 1,000 (train 5, eval 2)."""
    root = tmp_path_factory.mktemp("engine")
    store = root / ".mlstage"
    csv = root / "adult_6k.csv"
    pl.read_csv(SAMPLE / "adult.csv", infer_schema_length=None).head(6_000).write_csv(csv)
    (root / "search.json").write_text(json.dumps(SEARCH))
    split = {"train": 8, "eval": 2}
    runs = {
        "ingest": ingest([csv], root / "ds", split=split, partition_rows=1_000, store=store),
    }
    runs["stats"] = stats(root / "ds", root / "st", slices=["sex"], store=store)
    schema(root / "st", root / "sc", label="income", store=store)
    runs["validate"] = validate(root / "ds", root / "v", schema=root / "sc", baseline=root / "st",
                                store=store)  # fmt: skip
    spec = EXAMPLES / "adult_features.json"
    runs["featurize"] = featurize(root / "ds", root / "f", spec=spec, store=store)
    runs["train"] = train(root / "f", root / "m", config=root / "search.json", store=store)
    runs["monitor"] = monitor(root / "ds", root / "mon", baseline=root / "st",
                              schema=root / "sc", store=store)  # fmt: skip
    return {"root": root, "store": store, "csv": csv, "runs": runs}


def assert_same_artifact(local, remote) -> None:
    """The same id and every payload file the same bytes (and the run did run)."""
    assert not remote.up_to_date
    assert remote.manifest["id"] == local.manifest["id"]
    files = [f["path"] for f in local.manifest["files"]]
    assert files == [f["path"] for f in remote.manifest["files"]]
    for name in files:
        assert (remote.path / name).read_bytes() == (local.path / name).read_bytes(), name


def task_names(stream) -> set[str]:
    return {
        t["key"].split("-")[0] if isinstance(t["key"], str) else str(t["key"]) for t in stream.data
    }


def test_ingest_on_the_cluster_is_the_local_run_byte_for_byte(cluster, chain):
    """Two sources (CSV and JSON Lines), each converted by a worker; split, partitioned."""
    from distributed import get_task_stream

    address, client = cluster
    root, store = chain["root"], chain["store"]
    frame = pl.read_csv(chain["csv"], infer_schema_length=None)
    frame.head(2_500).write_csv(root / "first.csv")
    frame.tail(3_500).write_ndjson(root / "second.jsonl")
    sources = [root / "first.csv", root / "second.jsonl"]
    options = {"split": {"train": 8, "eval": 2}, "partition_rows": 1_000, "store": store}
    local = ingest(sources, root / "two", **options)
    with get_task_stream(client) as ts:
        r = ingest(sources, root / "two-dask", engine=address, **options)
    assert_same_artifact(local, r)
    assert task_names(ts) == {"convert_source"} and len(ts.data) == 2
    assert len(r.manifest["summary"]["splits"]) == 2 and len(list(r.path.glob("*.part-*"))) >= 5
    assert not list(r.path.glob(".*"))  # the workers' converted files are gone
    # a value that does not fit: the same message as the local run's, from the worker
    (root / "bad.csv").write_text("a,b\n" + "1,x\n" * 20 + "oops,y\n")
    errors = []
    for where, engine in (("bad-local", None), ("bad-dask", address)):
        with pytest.raises(BadInput) as e:
            ingest([root / "bad.csv"], root / where, types=["a=int"], store=store, engine=engine)
        errors.append(str(e.value))
    assert errors[0] == errors[1] and "oops" in errors[0] and "line 22" in errors[0], errors


def test_stats_on_the_cluster_is_the_local_run_byte_for_byte(cluster, chain):
    from distributed import get_task_stream

    address, client = cluster
    root = chain["root"]
    # the local run cached every partition's statistics: without the cache, the
    # cluster computes them all
    shutil.rmtree(Path(chain["store"]) / "cache" / "stats")
    with get_task_stream(client) as ts:
        r = stats(root / "ds", root / "st-dask", slices=["sex"], store=chain["store"],
                  engine=address)  # fmt: skip
    assert_same_artifact(chain["runs"]["stats"], r)
    assert "split_stats" in task_names(ts)  # the partitions were computed by the workers
    assert len(ts.data) == 7  # 5 train + 2 eval partitions


def test_validate_on_the_cluster_is_the_local_run_byte_for_byte(cluster, chain):
    """A task per column and partition, merged in partition order: the moments (Chan's
    formula), value and int counts, ranges' counts and first examples all the same."""
    from distributed import get_task_stream

    address, client = cluster
    root, store = chain["root"], chain["store"]
    with get_task_stream(client) as ts:
        r = validate(root / "ds", root / "v-dask", schema=root / "sc", baseline=root / "st",
                     store=store, engine=address)  # fmt: skip
    assert_same_artifact(chain["runs"]["validate"], r)
    columns = chain["runs"]["ingest"].manifest["summary"]["columns"]
    assert task_names(ts) == {"scan_on_worker"} and len(ts.data) == columns * 7
    doc = json.loads((r.path / "anomalies.json").read_text())
    assert doc["drift"]["eval"]  # drift was measured: there was something to get wrong
    # ranges that most partitions break: counts and examples gathered across partitions
    rules = json.loads((root / "sc" / "schema.json").read_text())
    rules["columns"]["age"]["max"] = 30
    rules["columns"]["hours-per-week"]["min"] = 45
    (root / "narrow.json").write_text(json.dumps(rules))
    local = validate(root / "ds", root / "vn", schema=root / "narrow.json", store=store)
    remote = validate(root / "ds", root / "vn-dask", schema=root / "narrow.json", store=store,
                      engine=address)  # fmt: skip
    assert_same_artifact(local, remote)
    found = json.loads((remote.path / "anomalies.json").read_text())["anomalies"]
    ranges = [a for a in found if a["type"] == "out_of_range"]
    assert len(ranges) == 4 and all(len(a["examples"]) == 10 for a in ranges)


def test_validate_merges_the_partitions_examples_as_the_local_run_reads_them(cluster, chain):
    """Out-of-range values met again in a later partition are listed once, the first ten
    in row order, whichever worker scanned which partition."""
    address, _ = cluster
    root, store = chain["root"], chain["store"]
    x = [0] * 3_000
    x[0:5] = [100, 100, 100, 101, 102]  # partition 0
    x[1_000:1_004] = [101, 102, 103, 104]  # partition 1: two seen before
    x[2_000:2_016] = list(range(105, 121))  # partition 2
    pl.DataFrame({"x": x, "s": ["a", "b", "c"] * 1_000}).write_csv(root / "ranges.csv")
    ingest([root / "ranges.csv"], root / "ranges", partition_rows=1_000, store=store)
    (root / "ranges.json").write_text(json.dumps({"format": "mlstage-schema/1", "columns": {
        "x": {"type": "int", "max": 50}, "s": {"type": "string", "domain": ["a", "b"]}}}))  # fmt: skip
    local = validate(root / "ranges", root / "vr", schema=root / "ranges.json", store=store)
    remote = validate(root / "ranges", root / "vr-dask", schema=root / "ranges.json", store=store,
                      engine=address)  # fmt: skip
    assert_same_artifact(local, remote)
    found = json.loads((remote.path / "anomalies.json").read_text())["anomalies"]
    (x_range,) = [a for a in found if a["column"] == "x"]
    assert x_range["examples"] == list(range(100, 110))
    (s_domain,) = [a for a in found if a["column"] == "s"]
    assert s_domain["examples"] == ["c"]


def test_featurize_apply_on_the_cluster_is_the_local_run_byte_for_byte(cluster, chain):
    from distributed import get_task_stream

    address, client = cluster
    root = chain["root"]
    spec = EXAMPLES / "adult_features.json"
    with get_task_stream(client) as ts:
        r = featurize(root / "ds", root / "f-dask", spec=spec, store=chain["store"],
                      engine=address)  # fmt: skip
    assert_same_artifact(chain["runs"]["featurize"], r)
    assert "_apply_on_worker" in task_names(ts) and len(ts.data) == 7
    assert sorted(p.name for p in r.path.glob("train*.parquet"))[-1] == "train.part-00004.parquet"


def test_predict_on_the_cluster_is_the_local_run_byte_for_byte(cluster, chain, monkeypatch):
    """Batches of 96 rows, 4 batches a task, 3 tasks gathered at a time: tasks that start
    and end inside partitions, and several windows; the same batches as the local run."""
    from distributed import get_task_stream

    address, client = cluster
    root = chain["root"]
    monkeypatch.setattr("mlstage.stages.predict.BATCH_ROWS", 96)
    monkeypatch.setattr("mlstage.stages.predict.TASK_BATCHES", 4)
    monkeypatch.setattr("mlstage.stages.predict.WINDOW_TASKS", 3)
    local = predict(root / "m", root / "ds", root / "p", keep=["income"], store=chain["store"])
    with get_task_stream(client) as ts:
        r = predict(root / "m", root / "ds", root / "p-dask", keep=["income"],
                    store=chain["store"], engine=address)  # fmt: skip
    assert_same_artifact(local, r)
    rows = chain["runs"]["ingest"].manifest["summary"]["splits"]
    assert len(ts.data) == sum(-(-n // (96 * 4)) for n in rows.values())
    assert pl.read_parquet(r.path / "predictions.parquet").height == sum(rows.values())


def test_monitor_on_the_cluster_is_the_local_run_byte_for_byte(cluster, chain):
    from distributed import get_task_stream

    address, client = cluster
    root = chain["root"]
    with get_task_stream(client) as ts:
        r = monitor(root / "ds", root / "mon-dask", baseline=root / "st", schema=root / "sc",
                    store=chain["store"], engine=address)  # fmt: skip
    assert_same_artifact(chain["runs"]["monitor"], r)
    assert "scan_on_worker" in task_names(ts)


def test_train_search_trials_on_the_cluster_choose_the_same_model(cluster, chain):
    from distributed import get_task_stream

    address, client = cluster
    root = chain["root"]
    with get_task_stream(client) as ts:
        r = train(root / "f", root / "m-dask", config=root / "search.json", store=chain["store"],
                  engine=address)  # fmt: skip
    assert_same_artifact(chain["runs"]["train"], r)
    # the 4 candidates x 2 folds ran on the workers, in joblib's batches of calls
    batches = [
        re.fullmatch(r"(?:mixed_)?batch_of__fit_and_score_(\d+)_calls-\w+", t["key"])
        for t in ts.data
    ]
    assert all(batches), [t["key"] for t in ts.data]
    assert sum(int(b[1]) for b in batches if b) == 4 * 2
    cv = json.loads((r.path / "metrics.json").read_text())["cv"]
    assert len(cv["trials"]) == 4


def test_the_engine_is_not_in_the_fingerprint(cluster, chain):
    """The local run's output is up to date for a run on the cluster, and the other way."""
    address, _ = cluster
    root = chain["root"]
    again = stats(root / "ds", root / "st", slices=["sex"], store=chain["store"], engine=address)
    assert again.up_to_date and again.manifest["id"] == chain["runs"]["stats"].manifest["id"]


def test_an_error_on_a_worker_is_bad_input_and_nothing_is_written(cluster, chain):
    """A worker's BadInput comes back whole (its text, its exit code) and no output or
    temporary folder is left."""
    from distributed import get_task_stream

    address, client = cluster
    root = chain["root"]
    # a log transform fitted on positive values, applied to data with a negative one in
    # its third partition: refused by the worker that applies it there
    frame = pl.DataFrame({"x": [float(i + 1) for i in range(2_500)], "y": ["a", "b"] * 1_250})
    frame.write_csv(root / "pos.csv")
    frame.with_columns(pl.col("x").replace(2_201.0, -1.0)).write_csv(root / "neg.csv")
    for name in ("pos", "neg"):
        ingest([root / f"{name}.csv"], root / name, partition_rows=1_000, store=chain["store"])
    spec = root / "log.json"
    spec.write_text(json.dumps({"format": "mlstage-features/1", "label": "y",
                                "features": [{"column": "x", "transform": "log"}]}))  # fmt: skip
    featurize(root / "pos", root / "pos-f", spec=spec, store=chain["store"])
    with get_task_stream(client) as ts, pytest.raises(BadInput) as e:
        featurize(root / "neg", root / "neg-f", transform=root / "pos-f", store=chain["store"],
                  engine=address)  # fmt: skip
    assert len(ts.data) == 3 and "_apply_on_worker" in task_names(ts)
    assert e.value.exit_code == 2 and "-1" in str(e.value) and '"x"' in str(e.value), str(e.value)
    assert not (root / "neg-f").exists()
    assert [p.name for p in root.iterdir() if "neg-f" in p.name] == []


def test_environment_variable_selects_the_engine_and_local_overrides_it(
    cluster, chain, monkeypatch
):
    from distributed import get_task_stream

    from mlstage.cli import app

    address, client = cluster
    root = chain["root"]
    monkeypatch.setenv("MLSTAGE_ENGINE", address)
    args = ["stats", str(root / "ds"), "--slice", "sex", "--store", str(chain["store"])]
    shutil.rmtree(Path(chain["store"]) / "cache" / "stats", ignore_errors=True)  # not cached
    with get_task_stream(client) as ts:
        result = CliRunner().invoke(app, [*args, "-o", str(root / "st-env")])
    assert result.exit_code == 0, result.stderr
    assert "split_stats" in task_names(ts)
    assert (root / "st-env" / "stats.json").read_bytes() == (
        root / "st" / "stats.json"
    ).read_bytes()
    with get_task_stream(client) as ts:
        result = CliRunner().invoke(app, [*args, "-o", str(root / "st-here"), "--engine", "local"])
    assert result.exit_code == 0, result.stderr
    assert ts.data == []  # `--engine local` wins over the variable: nothing ran on the cluster


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_engine_is_exit_2_naming_its_address(chain, monkeypatch):
    from mlstage.cli import app

    monkeypatch.setattr(engine_mod, "CONNECT_TIMEOUT", 0.5)
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    root = chain["root"]
    with pytest.raises(BadInput, match=address.replace(".", r"\.")):
        stats(root / "ds", root / "st-none", store=chain["store"], engine=address)
    result = CliRunner().invoke(
        app,
        ["stats", str(root / "ds"), "-o", str(root / "st-none"), "--store", str(chain["store"]),
         "--engine", address],
    )  # fmt: skip
    assert result.exit_code == 2
    assert f"--engine {address}: cannot reach a Dask scheduler there" in result.stderr
    assert not (root / "st-none").exists()


def test_a_worker_of_another_version_is_exit_2_naming_it(cluster, chain):
    """What the check reads on the workers (mlstage.version.__version__, polars'
    __version__) is changed there, as if another release were installed."""
    address, client = cluster

    def pretend(package: str, value: str | None, dask_worker=None):
        import polars

        import mlstage.version

        module = mlstage.version if package == "mlstage" else polars
        old = module.__version__
        module.__version__ = value if value is not None else old
        return old

    ours = engine_mod.versions()
    for package, other in (("mlstage", "0.0.1"), ("polars", "1.0.0")):
        workers = sorted(client.scheduler_info()["workers"])
        client.run(pretend, package, other, workers=workers[:1])
        try:
            with pytest.raises(BadInput) as e:
                engine_mod.engine_for(address)
            text = str(e.value)
            assert e.value.exit_code == 2
            assert (
                f"worker {workers[0]} runs {package} {other}, this client {ours[package]}" in text
            )
        finally:
            client.run(pretend, package, ours[package], workers=workers[:1])
    assert engine_mod.engine_for(address).address == address  # all agree again


def test_errors_keep_their_attributes_through_pickle():
    error = BadInput(f"{opt('engine')} x: no", file="data.csv", column="age")
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is BadInput and str(back) == str(error)
    assert back.cli_message() == error.cli_message() and "--engine x" in back.cli_message()
    assert (back.file, back.column, back.exit_code) == ("data.csv", "age", 2)


def test_help_and_local_runs_do_not_import_dask(chain):
    """`-X importtime` lists every module imported: no dask or distributed for --help or
    for a stage run without an engine (the start-up time budget)."""
    root = chain["root"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MLSTAGE_ENGINE", None)
    for args in (
        ["stats", "--help"],
        ["stats", str(root / "ds"), "-o", str(root / "st-plain"), "--store", str(chain["store"])],
    ):
        run = subprocess.run([sys.executable, "-X", "importtime", "-m", "mlstage", *args],
                             capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
        assert run.returncode == 0, run.stderr[-2000:]
        imported = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if "|" in line}
        assert "polars" in imported or args[-1] == "--help"  # the run did import its libraries
        assert not {m for m in imported if m.split(".")[0] in ("dask", "distributed")}, args


def test_an_engine_path_is_what_a_worker_reads_absolute(cluster, chain, monkeypatch):
    """Relative paths given here are made absolute for the workers, whose working folder
    is not ours."""
    address, _ = cluster
    root = chain["root"]
    monkeypatch.chdir(root)
    r = stats("ds", "st-rel", slices=["sex"], store=".mlstage", engine=address)
    assert_same_artifact(chain["runs"]["stats"], r)
    assert Path(r.path) == Path("st-rel")
