"""The examples/ loop run by real `make` processes, as cron would run it: idempotent
reruns, gates that stop later runs, SIGKILL at random moments, overlapping runs, and
gc across runs. On the first 6,000 rows of Adult, with the example's features but an
untuned model and a lighter evaluation (make demo runs the example's own configs), so
a chain takes seconds."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mlstage.model.artifact import Model
from mlstage.store.store import Store

from ..conftest import ROOT, SAMPLE, mlstage_exe, run_mlstage, write_json

EXAMPLES = ROOT / "examples"
ARTIFACTS = ("data", "stats", "schema", "anomalies", "features", "models", "evaluations")


@pytest.fixture
def loop_dir(tmp_path) -> Path:
    lines = (SAMPLE / "adult.csv").read_text().splitlines(keepends=True)
    (tmp_path / "adult.csv").write_text("".join(lines[:6001]))
    (tmp_path / "more.csv").write_text(lines[0] + "".join(lines[6001:9001]))
    train = json.loads((EXAMPLES / "adult_train.json").read_text())
    train.pop("tune")
    write_json(tmp_path / "train.json", train)
    evaluate = json.loads((EXAMPLES / "adult_evaluate.json").read_text())
    evaluate["importance"] = {"sample": 300, "repeats": 1}
    evaluate["partial_dependence"] = {"top": 1, "sample": 100, "grid": 5}
    write_json(tmp_path / "evaluate.json", evaluate)
    work = tmp_path / "loop"
    work.mkdir()
    return work


def make_cmd(work: Path, *targets: str, **variables: str) -> list[str]:
    variables = {"DATA": str(work.parent / "adult.csv"), "MLSTAGE": mlstage_exe(),
                 "TRAIN_CONFIG": str(work.parent / "train.json"),
                 "EVALUATE_CONFIG": str(work.parent / "evaluate.json"), **variables}  # fmt: skip
    return ["make", "--no-print-directory", "-f", str(EXAMPLES / "Makefile"),
            *(f"{k}={v}" for k, v in variables.items()), *targets]  # fmt: skip


def env_for(work: Path) -> dict[str, str]:
    return {**os.environ, **store_env(work)}


def store_env(work: Path) -> dict[str, str]:
    """The loop's own store, as the crontab sets it."""
    return {"MLSTAGE_STORE": str(work / ".mlstage")}


def make(work: Path, *targets: str, **variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        make_cmd(work, *targets, **variables), cwd=work, env=env_for(work), capture_output=True,
        text=True,
    )  # fmt: skip


def outputs(work: Path) -> dict[str, int]:
    """mtime of every manifest, stamp and serving.json the loop writes."""
    files = [*work.glob("*/adult/manifest.json"), *work.glob("stamps/*"),
             *work.glob("registry/income/serving.json")]  # fmt: skip
    return {str(f.relative_to(work)): f.stat().st_mtime_ns for f in files}


def assert_consistent(work: Path) -> None:
    """verify passes on every artifact, reindex gives the same index, no temp files,
    every registry version whole."""
    assert run_mlstage("verify", cwd=work, env=store_env(work)).returncode == 0
    store = Store.open(work / ".mlstage")
    before = store.index_dump()
    store.reindex()
    assert store.index_dump() == before
    store.close()
    leftovers = [
        p for p in work.rglob("*") if ".tmp-" in p.name or p.name.endswith((".swap.json", ".tmp"))
    ]
    leftovers = [p for p in leftovers if ".mlstage" not in p.parts]
    assert not leftovers, leftovers
    for version in (work / "registry" / "income").glob("[0-9]*"):
        Model.load(version)  # checks every file against the manifest's sha256


def test_reruns_rewrite_nothing_and_a_spec_change_rebuilds_from_features(loop_dir):
    work = loop_dir
    first = make(work)
    assert first.returncode == 0, first.stderr
    assert json.loads((work / "registry/income/serving.json").read_text())["version"] == 1
    before = outputs(work)
    assert len(before) == 11  # 7 manifests, 3 stamps, serving.json
    t = time.perf_counter()
    again = make(work)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout
    assert time.perf_counter() - t < 5
    # A touched but unchanged input: ingest runs, finds its output up to date, and stops there.
    os.utime(work.parent / "adult.csv")
    touched = make(work)
    assert touched.returncode == 0 and "up to date" in touched.stderr
    assert outputs(work) == before and not (work / "registry/income/2").exists()
    # Every stage run anyway (make -B) finds itself up to date without importing polars,
    # pyarrow or scikit-learn: a wrapper in place of mlstage records what each loaded.
    log = work.parent / "imports.log"
    wrapper = work.parent / "wrap.py"
    wrapper.write_text(
        "import atexit, sys\n"
        "def report():\n"
        "    heavy = [m for m in ('polars', 'pyarrow', 'sklearn') if m in sys.modules]\n"
        f"    with open({str(log)!r}, 'a') as f: f.write(sys.argv[1] + ' ' + ','.join(heavy) + '\\n')\n"
        "atexit.register(report)\n"
        "from mlstage.cli import main\n"
        "main()\n"
    )
    python = str(Path(mlstage_exe()).parent / "python")
    forced = make(work, "-B", MLSTAGE=f"{python} {wrapper}")
    assert forced.returncode == 0, forced.stderr
    stages = dict(line.split(" ", 1) for line in log.read_text().splitlines())
    assert len(stages) == 8 and all(v == "" for v in stages.values()), stages
    assert outputs(work).keys() == before.keys()
    assert not (work / "registry/income/2").exists()
    # A spec change rebuilds features and model (and what follows), nothing before them.
    spec = json.loads((EXAMPLES / "adult_features.json").read_text())
    spec["features"][2]["buckets"] = 4  # hours-per-week
    changed = write_json(work.parent / "spec.json", spec)
    r = make(work, FEATURES_SPEC=str(changed))
    after = outputs(work)
    same = [k for k in before if before[k] == after[k]]
    moved = [k for k in before if before[k] != after[k]]
    assert {"data/adult/manifest.json", "stats/adult/manifest.json", "schema/adult/manifest.json",
            "anomalies/adult/manifest.json"} <= set(same)  # fmt: skip
    assert {"features/adult/manifest.json", "models/adult/manifest.json"} <= set(moved), r.stderr


def test_a_failed_gate_stops_every_later_run(loop_dir):
    work = loop_dir
    strict = write_json(work.parent / "strict.json",
                        {"format": "mlstage-evaluate/1", "thresholds": {"accuracy": {"min": 0.99}}})  # fmt: skip
    for _ in range(2):
        r = make(work, EVALUATE_CONFIG=str(strict))
        assert r.returncode != 0 and "blessed=false" in r.stderr
        assert not (work / "stamps/evaluated").exists() and not (work / "registry").exists()
    # Once the config changes, the chain goes on to deploy.
    assert make(work).returncode == 0 and (work / "registry/income/1").is_dir()


def test_sigkill_at_random_moments_then_a_rerun_completes(loop_dir):
    work = loop_dir
    rng = random.Random(7)
    # The first chain takes several seconds: kill it at random points along the way,
    # each time where the previous run left off.
    for _ in range(4):
        proc = subprocess.Popen(make_cmd(work), cwd=work, env=env_for(work),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)  # fmt: skip
        time.sleep(rng.uniform(0.3, 4.0))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert run_mlstage("verify", cwd=work, env=store_env(work)).returncode == 0
    done = make(work)
    assert done.returncode == 0, done.stderr
    assert_consistent(work)
    assert sorted(p.name for p in (work / "registry/income").glob("[0-9]*")) == ["1"]
    assert "Nothing to be done" in make(work).stdout


def test_overlapping_runs_all_finish_with_one_consistent_result(loop_dir):
    work = loop_dir
    procs = [
        subprocess.Popen(make_cmd(work), cwd=work, env=env_for(work), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]  # fmt: skip
    results = [(p.wait(), p.stderr.read()) for p in procs]
    assert all(rc == 0 for rc, _ in results), [err[-2000:] for _, err in results]
    assert_consistent(work)
    serving = json.loads((work / "registry/income/serving.json").read_text())
    assert serving["version"] == 1 and [h["action"] for h in serving["history"]] == ["deploy"]
    # The store logged every write of every run, and every run's artifacts are the same.
    log = run_mlstage("log", "models/adult", "--json", cwd=work, env=store_env(work))
    assert len({w["id"] for w in json.loads(log.stdout)}) == 1


def test_new_data_retrains_and_gc_keeps_what_the_registry_needs(loop_dir):
    work = loop_dir
    env = store_env(work)
    assert make(work).returncode == 0
    (work / "incoming").mkdir()
    os.link(work.parent / "more.csv", work / "incoming" / "batch-2.csv")
    loose = write_json(work.parent / "loose.json", {"format": "mlstage-evaluate/1",
                       "thresholds": {"accuracy": {"min": 0.7}}})  # fmt: skip
    r = make(work, EVALUATE_CONFIG=str(loose))
    assert r.returncode == 0, r.stderr
    assert json.loads((work / "registry/income/serving.json").read_text())["version"] == 2
    runs = json.loads(run_mlstage("runs", "--json", cwd=work, env=env).stdout)
    assert len(runs) == 2  # the nightly history: both trained models
    assert run_mlstage("gc", "--grace", "0", cwd=work, env=env).returncode == 0
    assert_consistent(work)
    for v in ("1", "2"):
        assert run_mlstage("lineage", f"registry/income/{v}", cwd=work, env=env).returncode == 0
    # Both versions' evaluations survive gc: monitor can compare with the served one.
    r = run_mlstage("deploy", "--rollback", "--registry", "registry", cwd=work, env=env)
    assert r.returncode == 0
    logs = work / "requests"
    logs.mkdir()
    m = run_mlstage("monitor", "--requests", "requests", "--baseline", "stats/adult",
                    "--evaluation", "registry/income", "-o", "monitor/adult", "--allow-empty",
                    cwd=work, env=env)  # fmt: skip
    assert m.returncode == 0, m.stderr  # (without --allow-empty, no traffic is exit 4)
