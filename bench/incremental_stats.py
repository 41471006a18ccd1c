"""An incremental daily `stats` run (issue 17): one new partition onto many seen before.

    .venv/bin/python bench/incremental_stats.py --old 30 --rounds 5

A dataset of OLD partitions of 1M rows (the 24-column table of bench/gen_data.py, no
split) is profiled once, so the store caches each partition's statistics; then a day of
1M rows is appended (`ingest --append`), and two whole processes are timed, interleaved:
`stats` of the appended dataset (OLD cached partitions merged, the new one profiled) and
`stats` of a dataset holding only the new day (the reference: profiling that partition
alone). Target: the incremental run ≤ 1.2× the reference.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work" / "incremental"
MLSTAGE = str(ROOT / ".venv" / "bin" / "mlstage")
ROWS = 1_000_000


def sh(*cmd: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [MLSTAGE, *cmd, "--quiet"],
        check=True,
        env={**os.environ, "MLSTAGE_STORE": str(WORK / "store")},
    )
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    src = WORK / "src"
    src.mkdir(exist_ok=True)
    need = [src / f"day-{k:03d}.parquet" for k in range(args.old + 1)]
    missing = [f for f in need if not f.exists()]
    if missing:
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); import polars as pl; from gen_data import make_table\n"
            "for a in sys.argv[3:]:\n"
            "    k = int(a.rsplit('-', 1)[1].split('.')[0])\n"
            "    make_table(int(sys.argv[2]), seed=k).with_columns(pl.col('id') + k * int(sys.argv[2])).write_parquet(a)\n"
        )
        subprocess.run(
            [sys.executable, "-c", code, str(ROOT / "bench"), str(ROWS), *map(str, missing)],
            check=True,
        )
    old, day = need[:-1], need[-1]
    for d in ("old", "new", "day", "s-old", "s-new", "s-day"):
        shutil.rmtree(WORK / d, ignore_errors=True)
    shutil.rmtree(WORK / "store", ignore_errors=True)
    t_ingest = sh("ingest", *map(str, old), "-o", str(WORK / "old"))
    t_first = sh("stats", str(WORK / "old"), "-o", str(WORK / "s-old"))
    t_append = sh("ingest", str(day), "--append", str(WORK / "old"), "-o", str(WORK / "new"))
    sh("ingest", str(day), "-o", str(WORK / "day"))
    cache = WORK / "store" / "cache" / "stats"
    seen = set(cache.rglob("*.json"))  # the old partitions' entries
    inc, ref = [], []
    for _ in range(args.rounds):
        inc.append(sh("stats", str(WORK / "new"), "-o", str(WORK / "s-new"), "--force"))
        for entry in set(cache.rglob("*.json")) - seen:  # the same bytes: not a cache hit
            entry.unlink()
        ref.append(sh("stats", str(WORK / "day"), "-o", str(WORK / "s-day"), "--force"))
        # the new day's own entry is cached by each run: drop it, so every round
        # profiles the new partition as a daily run does
        for entry in set(cache.rglob("*.json")) - seen:
            entry.unlink()
    mi, mr = statistics.median(inc), statistics.median(ref)
    print(
        f"old partitions: {args.old} x {ROWS:,} rows; ingest {t_ingest:.1f} s, first stats {t_first:.1f} s, append {t_append:.1f} s"
    )
    print(
        f"incremental stats (median of {args.rounds}): {mi:.2f} s  [{', '.join(f'{x:.2f}' for x in inc)}]"
    )
    print(
        f"the new partition alone (median):        {mr:.2f} s  [{', '.join(f'{x:.2f}' for x in ref)}]"
    )
    print(f"ratio: {mi / mr:.2f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()
