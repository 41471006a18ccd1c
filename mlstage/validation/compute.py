"""Statistics of a table, per column: the numbers `stats` writes and `merge` combines.

Numeric columns are summarised from one sorted copy of their finite values
(exact quantiles and histograms). Categorical columns (strings and booleans)
from exact value counts. Each column also gets a small mergeable summary
(`sketches.json`), so statistics of partitions computed apart combine:

- counts, missing, NaN, inf, zeros, min, max, sums: exactly;
- mean and std: exactly up to floating-point rounding (Chan's parallel formula);
- quantiles and histograms: from each partition's quantile summary, the values at
  SUMMARY_POINTS evenly spaced ranks. The merged CDF is the count-weighted mix of
  the partitions' piecewise-linear CDFs, so a merged quantile is off by at most
  1/(SUMMARY_POINTS-1) = 0.2% in rank (plus, for a partition of fewer rows than
  SUMMARY_POINTS, the step between two of its values: at most 1/rows of the whole
  per such partition), and a histogram bucket's count (the difference of two CDF
  values) by at most twice that. (DataSketches' KLL sketch would do this too,
  but its compaction is random: the same data would give a different artifact id
  each run, and mlstage's artifacts are reproducible.)
- unique counts: HyperLogLog (Apache DataSketches, lg_k=12: about 1.6% standard
  error) over each partition's distinct values; exact for one partition;
- ranked values: counts summed, exact when every partition listed all its values
  (at most TOP_VALUES distinct); otherwise a value's count is a lower bound.
"""

from __future__ import annotations

import base64
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
BUCKETS = 10
TOP_VALUES = 1000
LOW_CARDINALITY = 20  # integer columns with at most this many values keep their counts
SUMMARY_POINTS = 501
HLL_LG_K = 12
MAX_SLICE_VALUES = 1000
NUMERIC = ("int", "float")
CATEGORICAL = ("string", "bool")


def q_key(q: float) -> str:
    return f"{q:g}"


def _quantiles_of_sorted(f, qs):
    """Linear-interpolated quantiles of a sorted array (numpy's default method)."""
    import numpy as np

    pos = np.asarray(qs, dtype=float) * (f.size - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, f.size - 1)
    return f[lo] + (f[hi] - f[lo]) * (pos - lo)


def summary_cdf(summary, x):
    """The CDF a quantile summary describes, at x, as a right-continuous step function.

    F(x) is the rank of the last summary point <= x: within 1/(SUMMARY_POINTS-1) of
    the true CDF, and exact on the values of a discrete column (a column that is 91%
    zeros has F(0) = 0.91).
    """
    import numpy as np

    s = np.asarray(summary, dtype=float)
    k = np.searchsorted(s, np.asarray(x, dtype=float), side="right")  # summary points <= x
    return np.where(k == 0, 0.0, (k - 1) / (s.size - 1))


def _bucket_counts(sorted_values, edges) -> list[int]:
    """Counts in [e0,e1), [e1,e2), ..., [e(k-1), ek] of a sorted array."""
    import numpy as np

    cut = np.searchsorted(sorted_values, edges[1:-1], side="left")
    bounds = np.concatenate([[0], cut, [sorted_values.size]])
    return [int(c) for c in np.diff(bounds)]


def _floats(values) -> list[float]:
    return [float(v) for v in values]


def numeric_stats(series, type_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    import numpy as np
    import polars as pl

    missing = series.null_count()
    v = series.drop_nulls().cast(pl.Float64).to_numpy()
    nan = inf = 0
    if series.dtype.is_float():  # an integer is never NaN or infinite: two passes saved
        finite_mask = np.isfinite(v)
        nan = int(np.isnan(v).sum())
        inf = int(v.size - finite_mask.sum() - nan)
    f = np.sort(v[finite_mask] if nan or inf else v)
    stats: dict[str, Any] = {
        "type": type_name,
        "count": int(v.size),
        "missing": int(missing),
        "nan": nan,
        "inf": inf,
    }
    if f.size == 0:
        stats.update(
            min=None,
            max=None,
            mean=None,
            std=None,
            zeros=0,
            quantiles={q_key(q): None for q in QUANTILES},
            histogram={"edges": [], "counts": []},
            quantile_histogram={"edges": [], "counts": []},
        )
        return stats, {"n": 0, "m2": 0.0, "summary": []}
    mean = float(f.mean())
    m2 = float(((f - mean) ** 2).sum())
    lo, hi = float(f[0]), float(f[-1])
    edges = np.linspace(lo, hi, BUCKETS + 1)
    qedges = _quantiles_of_sorted(f, np.linspace(0, 1, BUCKETS + 1))
    stats.update(
        min=lo,
        max=hi,
        mean=mean,
        std=math.sqrt(m2 / (f.size - 1)) if f.size > 1 else None,
        zeros=int(np.count_nonzero(f == 0)),
        quantiles=dict(
            zip(
                (q_key(q) for q in QUANTILES),
                _floats(_quantiles_of_sorted(f, QUANTILES)),
                strict=True,
            )
        ),
        histogram={"edges": _floats(edges), "counts": _bucket_counts(f, edges)},
        quantile_histogram={"edges": _floats(qedges), "counts": _bucket_counts(f, qedges)},
    )
    if type_name == "int":
        # an integer column of few values (a 0/1 label, a rating) is compared by its mix;
        # counted on the sorted copy (np.unique would sort it again)
        new_value = f[1:] != f[:-1]
        if np.count_nonzero(new_value) < LOW_CARDINALITY:
            starts = np.concatenate([[0], np.flatnonzero(new_value) + 1])
            counts = np.diff(np.concatenate([starts, [f.size]]))
            order = sorted(
                zip(f[starts].tolist(), counts.tolist(), strict=True),
                key=lambda vc: (-vc[1], vc[0]),
            )
            stats["values"] = [[str(int(v)), int(c)] for v, c in order]
    summary = _floats(_quantiles_of_sorted(f, np.linspace(0, 1, SUMMARY_POINTS)))
    return stats, {"n": int(f.size), "m2": m2, "summary": summary}


def categorical_stats(series, type_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    import datasketches
    import polars as pl

    s = series.cast(pl.String) if type_name == "bool" else series
    present = s.drop_nulls()
    counts = present.value_counts(name="__n").sort(["__n", present.name], descending=[True, False])
    values = counts.head(TOP_VALUES)
    listed = int(values["__n"].sum()) if values.height else 0
    lengths = present.str.len_chars()
    hll = datasketches.hll_sketch(HLL_LG_K)
    for value in counts[present.name].to_list():
        hll.update(value)
    stats = {
        "type": type_name,
        "count": int(present.len()),
        "missing": int(s.null_count()),
        "unique": int(counts.height),
        "values": [[v, int(n)] for v, n in values.iter_rows()],
        "other": int(present.len()) - listed,
        "length": {
            "min": int(lengths.min()) if present.len() else None,
            "max": int(lengths.max()) if present.len() else None,
            "mean": float(lengths.mean()) if present.len() else None,
        },
    }
    return stats, {
        "hll": base64.b64encode(hll.serialize_compact()).decode(),
        "length_sum": int(lengths.sum()),
    }


def epoch_seconds(series):
    """A date or datetime column as float seconds since 1970 (null stays null): the
    numbers its drift is measured on."""
    import polars as pl

    if series.dtype == pl.Date:
        return series.cast(pl.Int64).cast(pl.Float64) * 86400.0
    return series.dt.epoch("us").cast(pl.Float64) / 1e6


def temporal_stats(series, type_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    present = series.drop_nulls()
    lo, hi = (present.min(), present.max()) if present.len() else (None, None)
    epoch, sketch = numeric_stats(epoch_seconds(series), "float")
    return {
        "type": type_name,
        "count": int(present.len()),
        "missing": int(series.null_count()),
        "min": lo.isoformat() if lo is not None else None,
        "max": hi.isoformat() if hi is not None else None,
        "epoch": epoch,  # seconds since 1970: quantiles and buckets for drift
    }, {"epoch": sketch}


def column_stats(series, type_name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if type_name in NUMERIC:
        return numeric_stats(series, type_name)
    if type_name in CATEGORICAL:
        return categorical_stats(series, type_name)
    return temporal_stats(series, type_name)


# -- a whole split ----------------------------------------------------------------------


def slice_key_expr(spec: list[str], schema):
    """The slice name of each row: 'sex=Female', or 'sex=Female,race=White' for a cross;
    a missing value (null, or NaN in a float column) is `<missing>`."""
    import polars as pl

    from ..core.missing import missing_as_null

    parts = [
        pl.concat_str(
            [pl.lit(f"{c}="), missing_as_null(c, schema[c]).cast(pl.String).fill_null("<missing>")]
        )
        for c in spec
    ]
    return pl.concat_str(parts, separator=",").alias("key")


def slice_groups(frame, spec: list[str]) -> dict[str, Any]:
    """Slice name -> row indices, sorted by name."""
    import polars as pl

    keyed = frame.select(slice_key_expr(spec, frame.schema)).with_row_index("i")
    groups = keyed.group_by("key").agg(pl.col("i")).sort("key")
    if groups.height > MAX_SLICE_VALUES:
        from ..errors import BadInput

        raise BadInput(
            f"slicing by {' x '.join(spec)} gives {groups.height} slices; at most {MAX_SLICE_VALUES} are allowed"
        )
    return dict(zip(groups["key"].to_list(), (s.to_numpy() for s in groups["i"]), strict=True))


def split_stats(
    path, types: dict[str, str], slices: list[list[str]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Statistics (and sketches) of one Parquet split, overall and per slice. (A change
    to what this returns for the same file bumps `partition_cache.VERSION`: `stats` keeps
    it per partition.)

    Columns are read one at a time and summarised in parallel threads (numpy's
    sort and polars release the GIL), so memory holds a few columns, not the table; a
    small partition is read whole, once (`held`).
    """
    import os

    # Imported here, once: a first import of numpy racing in several threads fails.
    import datasketches  # noqa: F401
    import numpy  # noqa: F401
    import polars as pl

    from .held import held

    rows = pl.scan_parquet(path).select(pl.len()).collect().item()
    whole = held([path])[0]  # a small partition read once, not once a column
    slice_cols = sorted({c for spec in slices for c in spec})
    groups: dict[str, Any] = {}
    if slices:
        frame = (
            whole.select(slice_cols)
            if isinstance(whole, pl.DataFrame)
            else pl.read_parquet(path, columns=slice_cols)
        )
        for spec in slices:
            groups.update(slice_groups(frame, spec))
        # in name order, as merged partitions give them
        groups = dict(sorted(groups.items()))

    def one(col: str):
        if isinstance(whole, pl.DataFrame):
            series = whole.get_column(col)
        else:
            series = pl.read_parquet(path, columns=[col]).to_series()
        overall = column_stats(series, types[col])
        per_slice = {k: column_stats(series.gather(idx), types[col]) for k, idx in groups.items()}
        return col, overall, per_slice

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(one, types))
    stats = {"rows": rows, "columns": {c: o[0] for c, o, _ in results}}
    sketches = {"columns": {c: o[1] for c, o, _ in results}}
    if slices:
        stats["slices"] = {
            k: {"rows": int(len(idx)), "columns": {c: ps[k][0] for c, _, ps in results}}
            for k, idx in groups.items()
        }
        sketches["slices"] = {k: {"columns": {c: ps[k][1] for c, _, ps in results}} for k in groups}
    return stats, sketches
