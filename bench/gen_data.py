"""Deterministic synthetic table for the benchmarks.

24 columns: 8 floats (some with nulls), 5 ints, 8 categoricals of cardinality
3 to 1000 (some with nulls), a timestamp, an id and a binary label (last, never
missing). Same --rows and --seed give the same bytes.

    python bench/gen_data.py --rows 1000000 -o bench/data/synth_1m.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import polars as pl

CARDINALITIES = [3, 5, 10, 30, 100, 300, 700, 1000]


def make_table(rows: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {"id": np.arange(rows, dtype=np.int64)}
    for i in range(8):
        x = rng.normal(loc=i * 10, scale=1 + i, size=rows)
        s = pl.Series(f"f{i}", x)
        if i % 2 == 0:  # every other float column has ~5% nulls
            s = pl.Series(f"f{i}", np.where(rng.random(rows) < 0.05, np.nan, x)).fill_nan(None)
        cols[f"f{i}"] = s
    for i in range(5):
        cols[f"i{i}"] = rng.integers(0, 10 ** (i + 1), size=rows)
    for i, card in enumerate(CARDINALITIES):
        # Zipf-like frequencies: a few values are common, many are rare.
        p = 1.0 / np.arange(1, card + 1)
        codes = rng.choice(card, size=rows, p=p / p.sum())
        vals = pl.Series(f"c{i}", [f"v{j}" for j in range(card)], dtype=pl.String)[codes]
        if i % 3 == 0:  # ~3% missing
            missing = pl.Series(rng.random(rows) < 0.03)
            vals = (
                pl.select(pl.when(missing).then(None).otherwise(vals)).to_series().rename(f"c{i}")
            )
        cols[f"c{i}"] = vals
    start = np.datetime64("2024-01-01T00:00:00")
    cols["ts"] = (
        start + rng.integers(0, 365 * 24 * 3600, size=rows).astype("timedelta64[s]")
    ).astype("datetime64[us]")
    logits = (np.asarray(cols["f1"]) - 10) * 0.5 + (np.asarray(cols["i0"]) > 5) - 0.5
    cols["label"] = np.where(rng.random(rows) < 1 / (1 + np.exp(-logits)), "yes", "no")
    return pl.DataFrame(cols)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # Written in chunks so 10M rows need little memory.
    chunk = 1_000_000
    with open(args.out, "wb") as f:
        for k, start in enumerate(range(0, args.rows, chunk)):
            n = min(chunk, args.rows - start)
            df = make_table(n, seed=args.seed * 1000 + k).with_columns(pl.col("id") + start)
            df.write_csv(f, include_header=(k == 0))


if __name__ == "__main__":
    main()
