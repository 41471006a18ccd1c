"""A bare polars (+numpy) pass computing the same per-column numbers as `mlstage stats`
writes, with no artifact machinery: one parallel collect_all over the file, then numpy
on the sorted arrays. A fair reference for `stats`: the fastest plain way to compute the same numbers.

numeric: count, missing, nan, inf, min, max, mean, std (ddof=1), zeros, quantiles
         .01 .05 .25 .5 .75 .95 .99, 10-bucket equal-width histogram, 10-bucket quantile
         histogram, 501-point quantile summary (all from one sorted copy of the finite values)
string:  count, missing, unique, ranked value counts (top 1000, ties by value), other,
         length min/max/mean
temporal: count, missing, min, max

    python bench/matched_stats_pass.py DATASET_DIR | DATA.parquet ...

The reference of `stats` and `validate` in bench/run.py (issue 20), from
../shared/bench/matched_stats_pass.py; adapted only to read a dataset artifact's
Parquet files (all partitions of its one split) as one table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import polars as pl

Q = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def qs_sorted(f, qs):
    pos = np.asarray(qs, dtype=float) * (f.size - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, f.size - 1)
    return f[lo] + (f[hi] - f[lo]) * (pos - lo)


def bucket_counts(f, edges):
    cut = np.searchsorted(f, edges[1:-1], side="left")
    return np.diff(np.concatenate([[0], cut, [f.size]])).tolist()


def main(paths: list[str]) -> None:
    files = sorted(
        str(f) for p in map(Path, paths) for f in (p.glob("*.parquet") if p.is_dir() else [p])
    )
    schema = pl.read_parquet_schema(files[0])
    lf = pl.scan_parquet(files)
    num = [c for c, t in schema.items() if t.is_numeric()]
    cat = [c for c, t in schema.items() if t in (pl.String, pl.Boolean)]
    tmp = [c for c, t in schema.items() if t.is_temporal()]
    flt = [c for c in num if schema[c].is_float()]
    scalars = lf.select(
        [pl.len().alias("rows")]
        + [pl.col(c).null_count().alias(f"{c}|missing") for c in schema]
        + [pl.col(c).is_nan().sum().alias(f"{c}|nan") for c in flt]
        + [pl.col(c).is_infinite().sum().alias(f"{c}|inf") for c in flt]
        + [pl.col(c).cast(pl.String).str.len_chars().min().alias(f"{c}|len_min") for c in cat]
        + [pl.col(c).cast(pl.String).str.len_chars().max().alias(f"{c}|len_max") for c in cat]
        + [pl.col(c).cast(pl.String).str.len_chars().mean().alias(f"{c}|len_mean") for c in cat]
        + [pl.col(c).min().alias(f"{c}|min") for c in tmp]
        + [pl.col(c).max().alias(f"{c}|max") for c in tmp]
    )
    sorted_q = []
    for c in num:
        x = pl.col(c).cast(pl.Float64)
        sorted_q.append(lf.select(x.filter(x.is_finite()).sort().alias(c)))
    vc_q = [
        lf.select(pl.col(c).cast(pl.String))
        .drop_nulls()
        .group_by(c)
        .len()
        .sort(["len", c], descending=[True, False])
        for c in cat
    ]
    res = pl.collect_all([scalars, *sorted_q, *vc_q])
    row = res[0].row(0, named=True)
    out: dict = {"rows": row["rows"], "columns": {}}
    for c, frame in zip(num, res[1 : 1 + len(num)], strict=True):
        f = frame.to_series().to_numpy()
        st = {"count": int(row["rows"] - row[f"{c}|missing"]), "missing": row[f"{c}|missing"],
              "nan": row.get(f"{c}|nan", 0), "inf": row.get(f"{c}|inf", 0)}  # fmt: skip
        if f.size:
            mean = float(f.mean())
            lo, hi = float(f[0]), float(f[-1])
            edges = np.linspace(lo, hi, 11)
            qedges = qs_sorted(f, np.linspace(0, 1, 11))
            st.update(
                min=lo, max=hi, mean=mean,
                std=float(np.sqrt(((f - mean) ** 2).sum() / (f.size - 1))) if f.size > 1 else None,
                zeros=int(np.count_nonzero(f == 0)),
                quantiles=dict(zip(map(str, Q), qs_sorted(f, Q).tolist(), strict=True)),
                histogram={"edges": edges.tolist(), "counts": bucket_counts(f, edges)},
                quantile_histogram={"edges": qedges.tolist(), "counts": bucket_counts(f, qedges)},
                summary=qs_sorted(f, np.linspace(0, 1, 501)).tolist(),
            )  # fmt: skip
        out["columns"][c] = st
    for c, vc in zip(cat, res[1 + len(num) :], strict=True):
        top = vc.head(1000)
        present = int(row["rows"] - row[f"{c}|missing"])
        out["columns"][c] = {
            "count": present, "missing": row[f"{c}|missing"], "unique": vc.height,
            "values": top.rows(), "other": present - int(top["len"].sum()),
            "length": {k: row[f"{c}|len_{k}"] for k in ("min", "max", "mean")},
        }  # fmt: skip
    for c in tmp:
        out["columns"][c] = {
            "missing": row[f"{c}|missing"],
            "min": row[f"{c}|min"],
            "max": row[f"{c}|max"],
        }
    s = json.dumps(out, default=str)
    print(len(out["columns"]), "columns,", len(s), "bytes of JSON")


if __name__ == "__main__":
    main(sys.argv[1:])
