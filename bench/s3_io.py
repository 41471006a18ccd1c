"""Object storage against local disk: `ingest` and `stats` at 1M rows with the data and
the store in a bucket of moto's S3 server on loopback, and on local disk.

    .venv/bin/python bench/s3_io.py --rows 1000000 --rounds 5

Each command is its own process (the `mlstage` entry point); the rounds interleave the
two setups so that noise from the shared machine lands on both. Per round, each setup
starts afresh: a new local folder and store, or a new prefix and an empty local cache.
`stats (cold cache)` reads the dataset as another machine would: its cache is emptied
first, so the whole dataset is downloaded from the bucket. moto keeps objects in memory
and runs single-threaded (tests/s3/moto_server.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from tests.s3.conftest import AWS_ENV, make_bucket, start_moto  # noqa: E402

MLSTAGE = [sys.executable, "-m", "mlstage"]


def timed(args: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run([*MLSTAGE, *args], env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"mlstage {' '.join(args)} failed: {done.stderr}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    from bench.gen_data import make_table

    work = Path(tempfile.mkdtemp(prefix="mlstage-s3bench-"))
    proc, endpoint = start_moto()
    try:
        csv = work / f"synth_{args.rows}.csv"
        make_table(args.rows).write_csv(csv)
        env = {**os.environ, **AWS_ENV, "AWS_ENDPOINT_URL": endpoint, "MLSTAGE_NO_SHORTCUT": "1"}
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        make_bucket(endpoint, "bench")
        src = f"s3://bench/raw/{csv.name}"
        os.environ.update(AWS_ENV, AWS_ENDPOINT_URL=endpoint)
        from mlstage.core import objstore as client
        from mlstage.core.s3url import S3Url

        client.put(S3Url.parse(src), csv)
        times: dict[str, list[float]] = {}
        for r in range(args.rounds):
            local = work / f"local{r}"
            local.mkdir()
            times.setdefault("ingest local", []).append(timed(
                ["ingest", str(csv), "--split", "train=8", "--split", "eval=2", "-o", "data",
                 "--store", ".mlstage"], env, local))  # fmt: skip
            times.setdefault("stats local", []).append(
                timed(["stats", "data", "-o", "stats", "--store", ".mlstage"], env, local)
            )
            cache = work / f"cache{r}"
            s3env = {**env, "MLSTAGE_S3_CACHE": str(cache)}
            at, store = f"s3://bench/r{r}", f"s3://bench/r{r}/store"
            times.setdefault("ingest s3", []).append(timed(
                ["ingest", src, "--split", "train=8", "--split", "eval=2", "-o", f"{at}/data",
                 "--store", store], s3env, work))  # fmt: skip
            times.setdefault("stats s3", []).append(timed(
                ["stats", f"{at}/data", "-o", f"{at}/stats", "--store", store], s3env, work))  # fmt: skip
            shutil.rmtree(cache)
            times.setdefault("stats s3 (cold cache)", []).append(timed(
                ["stats", f"{at}/data", "-o", f"{at}/stats2", "--store", store], s3env, work))  # fmt: skip
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()),
                  flush=True)  # fmt: skip
            shutil.rmtree(local)
            shutil.rmtree(cache)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(
            "\n| stage | local disk (s) | S3 on loopback (s) | ratio | ≤ 1.5× |\n|---|---:|---:|---:|:---:|"
        )
        for stage, s3key in (("ingest", "ingest s3"), ("stats", "stats s3"),
                             ("stats, cold cache", "stats s3 (cold cache)")):  # fmt: skip
            base = med[f"{stage.split(',')[0]} local"]
            ratio = med[s3key] / base
            print(
                f"| {stage} | {base:.2f} | {med[s3key]:.2f} | {ratio:.2f} | {'yes' if ratio <= 1.5 else 'no'} |"
            )
        print(
            f"\nCSV: {csv.stat().st_size / 1e6:.0f} MB, {args.rows:,} rows; medians of {args.rounds} rounds"
        )
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
