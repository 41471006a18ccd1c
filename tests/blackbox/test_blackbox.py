"""The installed `mlstage` command run as Make or cron would: crashes and races with real processes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest

from mlstage.core.artifact import read_manifest
from mlstage.store.store import Store

from ..conftest import SAMPLE, mlstage_exe, run_mlstage, write


def _leftovers(parent: Path) -> list[str]:
    return sorted(
        p.name
        for p in parent.iterdir()
        if ".tmp-" in p.name or ".old-" in p.name or p.name.endswith(".swap.json")
    )


def test_help_is_fast_and_imports_no_heavy_library(tmp_path):
    start = time.perf_counter()
    run_mlstage("--help", cwd=tmp_path, check=0)
    assert (
        time.perf_counter() - start < 5
    )  # a generous bound: the benchmark measures the real figure
    code = (
        "import sys; sys.argv=['mlstage','--help']\n"
        "from mlstage.cli import app\n"
        "try: app()\nexcept SystemExit: pass\n"
        "bad=[m for m in ('polars','pyarrow','sklearn','numpy') if m in sys.modules]\n"
        "print('HEAVY:' + ','.join(bad))"
    )
    python = str(Path(mlstage_exe()).parent / "python")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY:"


def test_up_to_date_run_imports_no_heavy_library(tmp_path):
    write(tmp_path / "d.csv", "a\n1\n")
    run_mlstage("ingest", "d.csv", "-o", "ds", cwd=tmp_path, check=0)
    code = (
        "import sys; sys.argv=['mlstage','ingest','d.csv','-o','ds']\n"
        "from mlstage.cli import app\n"
        "try: app()\nexcept SystemExit as e: assert not e.code, e.code\n"
        "print(','.join(m for m in ('polars','pyarrow','sklearn') if m in sys.modules))"
    )
    python = str(Path(mlstage_exe()).parent / "python")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert "up to date" in out.stderr
    assert out.stdout.strip() == ""


def test_a_make_style_chain_in_a_temp_dir(tmp_path):
    args = [
        "ingest",
        str(SAMPLE / "adult.csv"),
        "--null",
        "?",
        "--split",
        "train=8",
        "--split",
        "eval=2",
    ]
    run_mlstage(*args, "-o", "data/adult", cwd=tmp_path, check=0)
    proc = run_mlstage(*args, "-o", "data/adult", "--json", cwd=tmp_path, check=0)
    assert json.loads(proc.stdout)["up_to_date"] is True
    log = (
        run_mlstage("log", "data/adult", cwd=tmp_path, check=0).stdout.decode().strip().splitlines()
    )
    assert len(log) == 1
    assert run_mlstage("verify", cwd=tmp_path).returncode == 0
    bad = run_mlstage("ingest", "missing.csv", "-o", "data/adult", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stdout == b"" and b"missing.csv" in bad.stderr


def test_stdin_pipe_and_stdout_pipe(tmp_path):
    data = (SAMPLE / "chicago_taxi.csv").read_bytes()[:20000].rsplit(b"\n", 1)[0] + b"\n"
    proc = run_mlstage("ingest", "-", "-o", "-", cwd=tmp_path, input=data, check=0)
    import io

    import pyarrow.ipc as ipc

    table = ipc.open_stream(io.BytesIO(proc.stdout)).read_all()
    assert table.num_rows == data.count(b"\n") - 1
    assert "payment_type" in table.column_names


@pytest.mark.parametrize("point", ["produced", "stored", "swapped"])
def test_sigkill_at_each_point_of_a_write_loses_nothing(tmp_path, point):
    src = write(tmp_path / "d.csv", "a,b\n1,x\n")
    run_mlstage("ingest", "d.csv", "-o", "ds", cwd=tmp_path, check=0)
    old = read_manifest(tmp_path / "ds")["id"]
    write(src, "a,b\n1,x\n2,y\n")
    killed = run_mlstage("ingest", "d.csv", "-o", "ds", cwd=tmp_path, env={"MLSTAGE_FAULT": point})
    assert killed.returncode == -signal.SIGKILL
    # the path holds one whole version, old or new, and verifies
    now = read_manifest(tmp_path / "ds")["id"]
    assert now == old if point in ("produced", "stored") else now != old
    assert run_mlstage("verify", "ds", cwd=tmp_path).returncode == 0
    # the next run completes, cleans up and logs every version at the path
    done = run_mlstage("ingest", "d.csv", "-o", "ds", "--json", cwd=tmp_path, check=0)
    new = json.loads(done.stdout)["id"]
    assert new != old and read_manifest(tmp_path / "ds")["id"] == new
    assert _leftovers(tmp_path) == []
    store = Store.open(tmp_path / ".mlstage")
    assert [w["id"] for w in store.writes(tmp_path / "ds")] == [new, old]
    assert store.verify()[1] == []
    assert pl.read_parquet(tmp_path / "ds" / "data.parquet").height == 2


def test_sigkill_at_random_moments_of_a_long_ingest(tmp_path):
    """Kill a real multi-megabyte ingest at random times; every outcome is whole."""
    src = tmp_path / "big.csv"
    with open(src, "w") as f, open(SAMPLE / "adult.csv") as a:
        body = a.read()
        f.write(body)
        rows = body.split("\n", 1)[1]
        for _ in range(5):
            f.write(rows)
    args = [
        mlstage_exe(),
        "ingest",
        str(src),
        "--null",
        "?",
        "--split",
        "train=8",
        "--split",
        "eval=2",
        "-o",
        "ds",
    ]
    subprocess.run(args, cwd=tmp_path, check=True, capture_output=True)
    first = read_manifest(tmp_path / "ds")["id"]
    rng = random.Random(7)
    for seed in range(6):
        proc = subprocess.Popen(
            [*args, "--seed", str(seed + 1)],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.05, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        m = read_manifest(tmp_path / "ds")
        assert m["id"] == first or m["params"]["seed"] >= 1
        assert run_mlstage("verify", "ds", cwd=tmp_path).returncode == 0
    subprocess.run(args, cwd=tmp_path, check=True, capture_output=True)
    assert read_manifest(tmp_path / "ds")["id"] == first
    assert _leftovers(tmp_path) == []
    assert run_mlstage("verify", cwd=tmp_path).returncode == 0


def test_six_concurrent_writers_of_one_path_and_store(tmp_path):
    sources = []
    for i in range(6):
        sources.append(
            write(
                tmp_path / f"src{i}.csv", "a,b\n" + "".join(f"{j},{i}\n" for j in range(2000 + i))
            )
        )
    env = {**os.environ, "MLSTAGE_STORE": str(tmp_path / "store")}
    procs = [
        subprocess.Popen(
            [mlstage_exe(), "ingest", str(s), "-o", "shared", "--json"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for s in sources
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
        results.append(json.loads(out))
    ids = {r["id"] for r in results}
    assert len(ids) == 6
    final = read_manifest(tmp_path / "shared")
    assert final["id"] in ids
    assert pl.read_parquet(tmp_path / "shared" / "data.parquet").height == final["summary"]["rows"]
    store = Store.open(tmp_path / "store")
    logged = [w["id"] for w in store.writes(tmp_path / "shared")]
    assert sorted(logged) == sorted(ids)
    assert logged[0] == final["id"]  # the newest log entry is what the path holds
    assert store.verify()[1] == []
    before = store.index_dump()
    store.reindex()
    assert store.index_dump() == before
    assert _leftovers(tmp_path) == []


def test_a_partitioned_dataset_through_the_chain_as_make_runs_it(tmp_path):
    """The real command on 6,000 rows in partitions of 1,000: every stage exits 0, the
    partitions are on disk, a rerun is up to date, and the predictions equal the ones
    made from the same rows in one file."""
    pl.read_csv(SAMPLE / "adult.csv", infer_schema_length=None).head(6_000).write_csv(
        tmp_path / "a.csv"
    )
    examples = Path(__file__).resolve().parents[2] / "examples"
    chain = [
        ("ingest", "a.csv", "--split", "train=8", "--split", "eval=2", "--partition-rows", "1000",
         "-o", "ds"),
        ("ingest", "a.csv", "--split", "train=8", "--split", "eval=2", "-o", "one"),
        ("stats", "ds", "-o", "st"),
        ("schema", "st", "--label", "income", "-o", "sc"),
        ("validate", "ds", "--schema", "sc", "--baseline", "st", "-o", "v"),
        ("featurize", "ds", "--spec", str(examples / "adult_features.json"), "-o", "f"),
        ("train", "f", "--config", str(examples / "adult_train.json"), "-o", "m"),
        ("predict", "m", "ds", "-o", "p"),
        ("predict", "m", "one", "-o", "p1"),
    ]  # fmt: skip
    for args in chain:
        run_mlstage(*args, "--quiet", cwd=tmp_path, check=0)
    assert sorted(p.name for p in (tmp_path / "ds").glob("train.part-*.parquet")) == [
        f"train.part-{i:05d}.parquet" for i in range(5)
    ]
    assert sorted(p.name for p in (tmp_path / "f").glob("train.part-*.parquet"))[-1].endswith(
        "00004.parquet"
    )
    again = run_mlstage(*chain[2], cwd=tmp_path, check=0)
    assert b"up to date" in again.stderr
    a = pl.read_parquet(tmp_path / "p" / "predictions.parquet")
    assert a.height == 6_000 and a.equals(pl.read_parquet(tmp_path / "p1" / "predictions.parquet"))
    doc = json.loads((tmp_path / "v" / "anomalies.json").read_text())
    assert not [x for x in doc["anomalies"] if x["severity"] == "error"], doc["anomalies"]


@pytest.mark.parametrize(
    ("shell", "marker"),
    [("bash", "_mlstage_completion()"), ("zsh", "#compdef mlstage"),
     ("fish", "complete --command mlstage")],
)  # fmt: skip
def test_shell_completion_scripts_and_answers(tmp_path, shell, marker):
    # the script a shell sources (what --show-completion prints for the current shell)
    script = run_mlstage(cwd=tmp_path, env={"_MLSTAGE_COMPLETE": f"source_{shell}"}, check=0)
    assert marker in script.stdout.decode()
    # and what the script asks mlstage for: commands, then a command's options
    env = {"_MLSTAGE_COMPLETE": "complete_bash", "COMP_WORDS": "mlstage st", "COMP_CWORD": "1"}
    assert run_mlstage(cwd=tmp_path, env=env, check=0).stdout.decode().split() == ["stats"]
    env |= {"COMP_WORDS": "mlstage stats --sp", "COMP_CWORD": "2"}
    assert run_mlstage(cwd=tmp_path, env=env, check=0).stdout.decode().split() == ["--split"]


def test_show_completion_prints_the_current_shells_script(tmp_path):
    out = run_mlstage("--show-completion", cwd=tmp_path, check=0).stdout.decode()
    assert "mlstage" in out and "_MLSTAGE_COMPLETE" in out
