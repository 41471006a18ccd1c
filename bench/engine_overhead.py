"""The Dask engine's overhead (issue 17, item 2): `stats` over 8+ partitions, local
threads against a LocalCluster of 2 worker processes on the same machine.

    .venv/bin/python bench/engine_overhead.py --rows 8000000 --rounds 5 --append

The machine has 2 cores: 2 workers cannot be faster than the local threads, which
already keep both cores busy; this measures what the engine costs (pickling the tasks
and results, the scheduler's round trips, the merge on the client). The target: the
median run on the cluster within 1.3x of the local one. Cluster start-up is not part
of a run; it is timed on its own.

Data: the 24-column table of `bench/gen_data.py`, as Parquet sources of 1M rows,
ingested once (untimed) with the default `--partition-rows` (1,000,000): ROWS/1M
partitions in one split. Each round runs, interleaved (a slow spell on the shared
machine hits every variant): the library call `stats(..., force=True)` locally and on
the engine (its connection made once, as in a long-lived Python session), then the
command `mlstage stats --force` as a child process locally and with `--engine` (each
child imports Dask, connects and checks the workers' versions: that is part of its
time). Every run's artifact id is checked equal to the local one's.
`--check-ingest` also ingests the sources on the cluster once and checks the dataset
is the same (its id and bytes) at this size.

Output: a Markdown section (stdout; with --append, added to bench/results.md) and the
raw timings in bench/work/engine/engine_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work" / "engine"
CHUNK = 1_000_000
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
ENV.pop("MLSTAGE_ENGINE", None)


def sources(rows: int, folder: Path) -> list[Path]:
    """The table as Parquet files of 1M rows (each chunk its own seed), made once."""
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / f"chunk-{k:03d}.parquet" for k in range(-(-rows // CHUNK))]
    if not all(f.exists() for f in files):
        sys.path.insert(0, str(ROOT / "bench"))
        import polars as pl
        from gen_data import make_table

        for k, start in enumerate(range(0, rows, CHUNK)):
            n = min(CHUNK, rows - start)
            make_table(n, seed=k).with_columns(pl.col("id") + start).write_parquet(files[k])
    return files


def cli(args: list[str]) -> float:
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "mlstage", *args], env=ENV, capture_output=True)
    if run.returncode != 0:
        sys.exit(f"FAILED: mlstage {' '.join(args)}\n{run.stderr.decode()[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=8_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--append", action="store_true", help="add the section to bench/results.md")
    ap.add_argument("--check-ingest", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.pop("MLSTAGE_ENGINE", None)
    import dask
    import polars as pl
    from distributed import Client, LocalCluster

    from mlstage import ingest, stats
    from mlstage.core import engine as engine_mod

    WORK.mkdir(parents=True, exist_ok=True)
    store = WORK / "store"
    files = sources(args.rows, WORK / f"sources-{args.rows}")
    t0 = time.perf_counter()
    data = ingest(files, WORK / "data", store=store)
    print(f"ingest (local): {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    parts = len(list((WORK / "data").glob("data.part-*.parquet")))
    assert parts >= 8, f"{parts} partitions: give --rows of 8,000,000 or more"

    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)  # fmt: skip
    started = time.perf_counter() - t0
    address = cluster.scheduler_address
    t0 = time.perf_counter()
    engine = engine_mod.engine_for(address)  # connect, wait for a worker, check versions
    connected = time.perf_counter() - t0
    with Client(address) as c:  # the workers' first task imports mlstage and polars
        t0 = time.perf_counter()
        c.run(lambda: __import__("mlstage.validation.compute") and None)
        warm = time.perf_counter() - t0

    ingest_check = None
    if args.check_ingest:
        t0 = time.perf_counter()
        on = ingest(files, WORK / "data-dask", store=store, engine=engine, force=True)
        took = time.perf_counter() - t0
        same = on.manifest["id"] == data.manifest["id"] and all(
            (WORK / "data-dask" / f["path"]).read_bytes()
            == (WORK / "data" / f["path"]).read_bytes()
            for f in data.manifest["files"]
        )
        ingest_check = {"seconds": took, "same": same}
        print(f"ingest on the cluster: {took:.1f} s, same dataset: {same}", file=sys.stderr)

    variants = ["library, local", "library, 2 workers", "command, local", "command, 2 workers"]
    times: dict[str, list[float]] = {v: [] for v in variants}
    ids: set[str] = set()
    base = ["stats", str(WORK / "data"), "--store", str(store), "--force", "--quiet"]
    for r in range(args.rounds):
        for v in variants:
            out = WORK / f"stats-{variants.index(v)}"
            subprocess.run(["sync"], check=False)
            if v.startswith("library"):
                t0 = time.perf_counter()
                res = stats(WORK / "data", out, store=store, force=True,
                            engine=None if v.endswith("local") else engine)  # fmt: skip
                times[v].append(time.perf_counter() - t0)
                ids.add(res.manifest["id"])
            else:
                extra = [] if v.endswith("local") else ["--engine", address]
                times[v].append(cli([*base, "-o", str(out), *extra]))
                ids.add(json.loads((out / "manifest.json").read_text())["id"])
            print(f"round {r + 1} {v}: {times[v][-1]:.2f} s", file=sys.stderr)
    assert len(ids) == 1, f"the runs gave different artifacts: {ids}"
    engine_mod.close_all()
    cluster.close()

    med = {v: statistics.median(t) for v, t in times.items()}
    lib = med["library, 2 workers"] / med["library, local"]
    cmd = med["command, 2 workers"] / med["command, local"]
    command = "bench/engine_overhead.py " + " ".join(sys.argv[1:])
    lines = [
        f"## The Dask engine's overhead: stats over {parts} partitions (issue 17) — "
        f"{time.strftime('%Y-%m-%d')}",
        "",
        f"- command: `.venv/bin/python {command}`",
        f"- data: {args.rows:,} rows × 24 columns (`bench/gen_data.py`, Parquet sources of 1M"
        f" rows), ingested with the default `--partition-rows` 1,000,000: {parts} partitions"
        " of one split.",
        f"- machine: {os.cpu_count()} cores, {platform.python_version()}, polars"
        f" {pl.__version__}, dask {dask.__version__}; shared with other work (noisy): load"
        f" average {os.getloadavg()[0]:.1f} at the end.",
        f"- cluster: `LocalCluster(n_workers=2, threads_per_worker=1)`, worker processes."
        f" Start-up (not in any run): {started:.2f} s to start, {connected:.2f} s for the"
        f" first `engine_for` (connect, the version check, which imports mlstage and polars on"
        f" the workers), {warm:.2f} s more for the workers to import the statistics' module.",
        f"- {args.rounds} interleaved rounds; every run wrote the same artifact"
        f" ({next(iter(ids))[:12]}).",
        "",
        "| variant | median s | runs (s) | vs local |",
        "|---|---:|---|---:|",
    ]
    for v in variants:
        local = med[v.replace("2 workers", "local")]
        runs = " ".join(f"{t:.2f}" for t in times[v])
        lines.append(f"| {v} | {med[v]:.2f} | {runs} | {med[v] / local:.2f}× |")
    verdict = "met" if max(lib, cmd) <= 1.3 else "not met"
    lines += [
        "",
        f"- target (≤ 1.3× the local threaded run): **{verdict}** — library {lib:.2f}×,"
        f" command {cmd:.2f}× (the command's figure includes importing Dask and connecting"
        " in each child process).",
    ]
    if ingest_check is not None:
        lines.append(
            f"- `ingest` of the same sources on the cluster (untimed check, one run"
            f" {ingest_check['seconds']:.1f} s): the same dataset, byte for byte:"
            f" {ingest_check['same']}."
        )
    section = "\n".join(lines) + "\n"
    print(section)
    (WORK / "engine_overhead.json").write_text(json.dumps(
        {"rows": args.rows, "partitions": parts, "startup": started, "connect": connected,
         "warm": warm, "times": times, "ingest": ingest_check}, indent=1))  # fmt: skip
    if args.append:
        results = ROOT / "bench" / "results.md"
        results.write_text(results.read_text().rstrip("\n") + "\n\n" + section)


if __name__ == "__main__":
    main()
