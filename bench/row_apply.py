"""Micro-benchmark: a fitted transform applied to one row at a time, as the model server does.

    python bench/row_apply.py TRANSFORM_JSON SPLIT_PARQUET [--rows 1000] [--frame-rows 200] [--json]

Takes the first --rows rows of the split as dicts and times each call, after a warm-up:
- `row_function`: FittedTransform.row_function(), the plain-Python path;
- `polars one-row frame`: the same dict as a one-row polars frame through apply_lazy
  (building the frame included: that is what a server would do with a request), on the
  first --frame-rows rows only, as each call takes milliseconds.
Before timing, row_function's results are checked equal to the batch path's on all the
rows. Prints median and p99 in ms, or with --json one JSON list of
{name, calls, median_ms, p99_ms} (what bench/run.py reads).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import polars as pl

from mlstage.features.fitted import FittedTransform


def timed(fn, rows: list[dict]) -> list[float]:
    """Milliseconds per call, after an untimed warm-up (lazy imports, caches)."""
    for row in rows[:50]:
        fn(row)
    out = []
    for row in rows:
        t0 = time.perf_counter_ns()
        fn(row)
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def same(a: list[float], b: tuple) -> bool:
    """The row path is float64, the batch path Float32: equal once rounded to float32."""
    return len(a) == len(b) and all(
        (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-6)
        for x, y in zip(a, b, strict=True)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("transform", type=Path)
    ap.add_argument("split", type=Path)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--frame-rows", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    ft = FittedTransform(json.loads(args.transform.read_text()))
    frame = pl.read_parquet(args.split, n_rows=args.rows)
    rows, schema = frame.to_dicts(), frame.schema
    row_fn = ft.row_function()

    def one_row_frame(row: dict) -> tuple:
        df = pl.DataFrame([row], schema=schema)
        return ft.apply_lazy(df.lazy(), with_label=False).collect().row(0)

    batch = ft.apply_lazy(frame.lazy(), with_label=False).collect().rows()
    for i, (row, expected) in enumerate(zip(rows, batch, strict=True)):
        if not same(row_fn(row), expected):
            raise SystemExit(f"row {i}: row_function and the batch path disagree")

    results = []
    for name, fn, n in [
        ("row_function", row_fn, args.rows),
        ("polars one-row frame", one_row_frame, args.frame_rows),
    ]:
        ms = timed(fn, rows[:n])
        p99 = statistics.quantiles(ms, n=100)[98]
        results.append(
            {"name": name, "calls": len(ms), "median_ms": statistics.median(ms), "p99_ms": p99}
        )
    if args.json:
        print(json.dumps(results))
    else:
        for r in results:
            print(
                f"{r['name']:22} {r['calls']} calls  median {r['median_ms']:.4f} ms  p99 {r['p99_ms']:.4f} ms"
            )


if __name__ == "__main__":
    main()
