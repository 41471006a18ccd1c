"""The reference for `stats` and `validate`: a bare polars pass over a Parquet file that
computes, column by column, what the issue names: counts, nulls, mean, std, min, max,
the 7 quantiles, a 10-bucket histogram, unique counts and the top-20 value counts.

    python bench/polars_stats_pass.py DATA.parquet
"""

from __future__ import annotations

import sys

import polars as pl

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def main(path: str) -> None:
    schema = pl.read_parquet_schema(path)
    out = {}
    for col, dtype in schema.items():
        c = pl.col(col)
        exprs = [c.len().alias("len"), c.null_count().alias("nulls"), c.n_unique().alias("unique")]
        if dtype.is_numeric():
            exprs += [
                c.mean().alias("mean"),
                c.std().alias("std"),
                c.min().alias("min"),
                c.max().alias("max"),
            ]
            exprs += [c.quantile(q, "linear").alias(f"q{q}") for q in QUANTILES]
        row = pl.scan_parquet(path).select(exprs).collect().row(0, named=True)
        series = pl.read_parquet(path, columns=[col]).to_series()
        if dtype.is_numeric():
            row["hist"] = series.hist(bin_count=10)["count"].to_list()
        else:
            row["top"] = series.value_counts(sort=True).head(20).rows()
        out[col] = row
    print(len(out), "columns")


if __name__ == "__main__":
    main(sys.argv[1])
