"""Issue 8/9 timings: monitor over 1M logged requests against validate on the same rows,
and the HTML report of the 10M-row statistics (size and time).

    python bench/loop_bench.py [--rows 1000000] [--runs 5] [--stats-10m DIR]

monitor reads a folder of request logs as the server writes them (20 files of 50k
rows: request_id, ts, model, version, row, the inputs, prediction, proba_*); validate
reads the same input rows as a dataset artifact. Both in the serving environment,
against the same baseline statistics and schema; runs interleaved, medians reported.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "loop"
MLSTAGE = str(Path(sys.executable).parent / "mlstage")


def run(*args: str) -> float:
    t = time.perf_counter()
    p = subprocess.run([MLSTAGE, *args, "--force", "-q"], cwd=WORK, capture_output=True, text=True)
    if p.returncode not in (0, 1):
        raise SystemExit(p.stderr)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--stats-10m", default=str(HERE / "work" / "stats-base"))
    a = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    src = HERE / "data" / f"synth_{a.rows}.csv"
    if not (WORK / "data").exists():
        subprocess.run([MLSTAGE, "ingest", str(src), "--split", "train=8", "--split", "eval=2", "-o", "data", "-q"],
                       cwd=WORK, check=True)  # fmt: skip
        subprocess.run([MLSTAGE, "stats", "data", "-o", "stats", "-q"], cwd=WORK, check=True)
        subprocess.run(
            [MLSTAGE, "schema", "stats", "--label", "label", "-o", "schema", "-q"],
            cwd=WORK,
            check=True,
        )
        rows = pl.read_parquet(WORK / "data" / "*.parquet").drop("label")
        n = rows.height
        logs = WORK / "logs"
        logs.mkdir()
        logged = rows.with_columns(
            request_id=pl.format("r-{}", pl.int_range(n)), ts=pl.lit(dt.datetime(2026, 11, 26)),
            model=pl.lit("m"), version=pl.lit(1), row=pl.lit(0),
            prediction=pl.lit("yes"), **{"proba_no": pl.lit(0.3), "proba_yes": pl.lit(0.7)})  # fmt: skip
        per = 50_000
        for i in range(0, n, per):
            logged.slice(i, per).write_parquet(logs / f"requests-bench-{i // per:04d}.parquet")
        rows.write_parquet(WORK / "requests.parquet")
        subprocess.run(
            [MLSTAGE, "ingest", "requests.parquet", "-o", "requests", "-q"], cwd=WORK, check=True
        )
    times = {"validate": [], "monitor": []}
    for _ in range(a.runs):
        times["validate"].append(run("validate", "requests", "--schema", "schema", "--baseline", "stats",
                                     "--environment", "serving", "-o", "anomalies"))  # fmt: skip
        times["monitor"].append(run("monitor", "--requests", "logs", "--baseline", "stats", "--schema", "schema",
                                    "-o", "monitor"))  # fmt: skip
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {"rows": a.rows, "runs": a.runs, "times": times, "median": med,
           "ratio_monitor_over_validate": med["monitor"] / med["validate"]}  # fmt: skip
    stats_dir = Path(a.stats_10m)
    if (stats_dir / "manifest.json").exists():
        report_times, size = [], 0
        for _ in range(a.runs):
            t = time.perf_counter()
            subprocess.run(
                [MLSTAGE, "report", str(stats_dir), "-o", str(WORK / "stats10m.html"), "-q"],
                check=True,
            )
            report_times.append(time.perf_counter() - t)
            size = (WORK / "stats10m.html").stat().st_size
        out["report_10m_stats"] = {
            "seconds": report_times,
            "median": statistics.median(report_times),
            "bytes": size,
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
