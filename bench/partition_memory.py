"""Peak memory of each stage on partitioned datasets of growing size (issue 17).

    .venv/bin/python bench/partition_memory.py --rows 1000000 10000000 30000000

For each size: the synthetic 24-column table of bench/gen_data.py, written as Parquet
sources of 1M rows each (so generating it needs little memory), is ingested with the
default partition size (1M rows) and an 80/20 split; then `stats`, `schema`,
`validate` (drift against those stats), `featurize` (bench/features_spec.json) and
`predict` (a model trained once, on the 1M-row features, applied to the raw data),
each as its own process. Peak RSS is that process's ru_maxrss (os.wait4), wall time
its own. The claim to check: peak RSS does not grow with the rows.

Output: a Markdown table on stdout and bench/work/partition_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work" / "partitions"
MLSTAGE = str(ROOT / ".venv" / "bin" / "mlstage")
SPEC = ROOT / "bench" / "features_spec.json"
CHUNK = 1_000_000
TRAIN_CONFIG = {"format": "mlstage-train/1", "task": "classification",
                "estimator": "LogisticRegression", "params": {"max_iter": 200}, "seed": 0}  # fmt: skip


def run(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one child process; exits loudly if it fails."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 1):  # 1: validate found drift/anomalies, which is not a failure here
            err.seek(0)
            sys.exit(f"FAILED ({code}): {' '.join(cmd)}\n{err.read().decode()[-3000:]}")
    return wall, ru.ru_maxrss / 1024


def sources(rows: int, folder: Path) -> list[str]:
    """The table as Parquet files of 1M rows, written by a child process: a child's
    ru_maxrss starts at its parent's RSS when forked, so this process stays small."""
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / f"chunk-{k:03d}.parquet" for k in range(-(-rows // CHUNK))]
    if not all(f.exists() for f in files):
        code = (
            "import sys, polars as pl; sys.path.insert(0, sys.argv[1]); from gen_data import make_table\n"
            "rows, chunk = int(sys.argv[2]), int(sys.argv[3])\n"
            "for k, start in enumerate(range(0, rows, chunk)):\n"
            "    n = min(chunk, rows - start)\n"
            "    make_table(n, seed=k).with_columns(pl.col('id') + start).write_parquet(\n"
            "        f'{sys.argv[4]}/chunk-{k:03d}.parquet')\n"
        )
        subprocess.run([sys.executable, "-c", code, str(ROOT / "bench"), str(rows), str(CHUNK),
                        str(folder)], check=True)  # fmt: skip
    return [str(f) for f in files]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000, 30_000_000])
    ap.add_argument("--keep", action="store_true", help="keep the generated sources")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    store = WORK / "store"
    common = ["--store", str(store), "--force", "--quiet"]
    results: dict[str, dict] = {}

    # the model predict applies: trained once, on 1M rows
    model = WORK / "model"
    if not (model / "manifest.json").exists():
        src = sources(CHUNK, WORK / "src-1000000")
        (WORK / "train.json").write_text(json.dumps(TRAIN_CONFIG))
        for cmd in (
            ["ingest", *src, "--split", "train=8", "--split", "eval=2", "-o", str(WORK / "m-ds")],
            ["featurize", str(WORK / "m-ds"), "--spec", str(SPEC), "-o", str(WORK / "m-f")],
            ["train", str(WORK / "m-f"), "--config", str(WORK / "train.json"), "-o", str(model)],
        ):
            run([MLSTAGE, *cmd, *common])

    for rows in args.rows:
        src = sources(rows, WORK / f"src-{rows}")
        ds, st, sc = WORK / f"ds-{rows}", WORK / f"st-{rows}", WORK / f"sc-{rows}"
        steps = {
            "ingest": ["ingest", *src, "--split", "train=8", "--split", "eval=2", "-o", str(ds)],
            "stats": ["stats", str(ds), "-o", str(st)],
            "schema": ["schema", str(st), "--label", "label", "-o", str(sc)],
            "validate": [
                "validate",
                str(ds),
                "--schema",
                str(sc),
                "--baseline",
                str(st),
                "-o",
                str(WORK / f"v-{rows}"),
            ],  # fmt: skip
            "featurize": ["featurize", str(ds), "--spec", str(SPEC), "-o", str(WORK / f"f-{rows}")],
            "predict": ["predict", str(model), str(ds), "-o", str(WORK / f"p-{rows}")],
        }
        results[str(rows)] = {}
        for name, cmd in steps.items():
            wall, rss = run([MLSTAGE, *cmd, *common])
            results[str(rows)][name] = {"seconds": round(wall, 2), "peak_rss_mb": round(rss)}
            print(f"{rows:>11,} {name:<10} {wall:8.1f} s {rss:8.0f} MB", flush=True)
        parts = len(list(ds.glob("train.part-*.parquet")))
        results[str(rows)]["train_partitions"] = parts
        for p in ("f", "p", "v", "ds", "st", "sc"):
            shutil.rmtree(WORK / f"{p}-{rows}", ignore_errors=True)
        if not args.keep and rows != CHUNK:
            shutil.rmtree(WORK / f"src-{rows}")
        shutil.rmtree(store, ignore_errors=True)

    (WORK.parent / "partition_memory.json").write_text(json.dumps(results, indent=1))
    stages = ["ingest", "stats", "schema", "validate", "featurize", "predict"]
    print("\n| rows | " + " | ".join(f"{s} MB (s)" for s in stages) + " |")
    print("|---:|" + "---:|" * len(stages))
    for rows, r in results.items():
        print(f"| {int(rows):,} | "
              + " | ".join(f"{r[s]['peak_rss_mb']} ({r[s]['seconds']:.0f})" for s in stages) + " |")  # fmt: skip


if __name__ == "__main__":
    main()
