"""The polars reference for `featurize`: the spec's arithmetic as bare polars expressions.

    python bench/featurize_polars.py SPEC DATASET_DIR OUT_DIR

Fits on DATASET_DIR/train.parquet (the medians, modes, means, stds, quantiles, min/max
and vocabularies that mlstage fits) and writes OUT_DIR/<split>.parquet for every split:
Float32 features with mlstage's names and values, the label as class indices. It reads
the same spec, but handles only the transforms and options of bench/features_spec.json,
and none of mlstage's checks, NaN handling, manifests or store.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl
import polars_hash  # noqa: F401  (registers .nchash: the xxHash64 mlstage hashes with)

SEPARATOR, MISSING = "\x1f", "\x00"  # how mlstage joins the values of a cross
PARTS = {"month": lambda x: x.dt.month(), "dayofweek": lambda x: x.dt.weekday() - 1,
         "hour": lambda x: x.dt.hour(), "day": lambda x: x.dt.day(), "year": lambda x: x.dt.year()}  # fmt: skip


def fit(spec: dict, train: Path) -> dict[int, dict]:
    """Fitted state per entry index: the impute value and what the transform needs."""
    lf = pl.scan_parquet(train)
    entries = list(enumerate(spec["features"]))
    state: dict[int, dict] = {i: {} for i, _ in entries}
    # Pass 1: medians, and value counts of the columns that need a mode or a vocabulary.
    medians = [
        pl.col(e["column"]).median().alias(str(i))
        for i, e in entries
        if e.get("impute") == "median"
    ]
    counted = [
        (i, e) for i, e in entries if e["transform"] == "one_hot" or e.get("impute") == "mode"
    ]
    queries = [lf.select(medians)] + [lf.group_by(e["column"]).len() for _, e in counted]
    queries.append(lf.select(pl.col(spec["label"]).drop_nulls().unique().sort()))
    med, *counts, label = pl.collect_all(queries)
    for key, value in med.row(0, named=True).items():
        state[int(key)]["impute"] = value
    for (i, e), vc in zip(counted, counts, strict=True):
        c = e["column"]
        nulls = vc.filter(pl.col(c).is_null())["len"].sum()
        vc = vc.drop_nulls(c).sort(["len", c], descending=[True, False])
        if e.get("impute") == "mode":
            state[i]["impute"] = mode = vc[c][0]
            vc = vc.with_columns(
                pl.when(pl.col(c) == mode).then(pl.col("len") + nulls).otherwise("len")
            )
            vc = vc.sort(["len", c], descending=[True, False])
        if e["transform"] == "one_hot":
            state[i]["vocabulary"] = sorted(vc[c].head(e.get("top_k", vc.height)).to_list())
    state["classes"] = label.to_series().to_list()

    # Pass 2: the numeric statistics, of the imputed columns.
    stats = []
    for i, e in entries:
        if e["transform"] not in ("standardize", "minmax", "bucketize"):
            continue
        x = filled(e, state[i]).cast(pl.Float64)
        if e["transform"] == "standardize":
            stats += [x.mean().alias(f"{i}.mean"), x.std(ddof=0).alias(f"{i}.std")]
        elif e["transform"] == "minmax":
            stats += [x.min().alias(f"{i}.min"), x.max().alias(f"{i}.max")]
        elif e["transform"] == "bucketize":
            n = e.get("buckets", 10)
            # k * (1/n), as numpy's linspace: 3 * 0.2 is 0.6000000000000001, not 0.6.
            stats += [x.quantile(k * (1 / n), "linear").alias(f"{i}.q{k}") for k in range(1, n)]
    for key, value in lf.select(stats).collect().row(0, named=True).items():
        i, name = key.split(".")
        state[int(i)][name] = value
    for i, e in entries:
        s = state[i]
        if e["transform"] == "bucketize":
            s["boundaries"] = sorted({s.pop(f"q{k}") for k in range(1, e.get("buckets", 10))})
        if e["transform"] == "standardize" and s["std"] == 0:
            s["std"] = 1.0
    return state


def filled(e: dict, s: dict) -> pl.Expr:
    x = pl.col(e["column"])
    return x.fill_null(s["impute"]) if "impute" in s else x


def features(spec: dict, state: dict) -> list[pl.Expr]:
    out = []
    for i, e in enumerate(spec["features"]):
        s, t = state[i], e["transform"]
        if t == "cross":
            cols = [pl.col(c).fill_null(MISSING) for c in e["columns"]]
            h = pl.concat_str(cols, separator=SEPARATOR).nchash.xxhash64() % e["buckets"]
            out += [(h == k).alias(f"{'*'.join(e['columns'])}#{k}") for k in range(e["buckets"])]
            continue
        c, x = e["column"], filled(e, s)
        if t == "standardize":
            out.append(((x - s["mean"]) / s["std"]).alias(c))
        elif t == "minmax":
            out.append(((x - s["min"]) / (s["max"] - s["min"])).alias(c))
        elif t == "log":
            out.append(x.cast(pl.Float64).log1p().alias(c))
        elif t == "bucketize":
            index = pl.sum_horizontal([(x >= b).cast(pl.Int32) for b in s["boundaries"]])
            out += [(index == k).alias(f"{c}#{k}") for k in range(len(s["boundaries"]) + 1)]
        elif t == "one_hot":
            vocab = s["vocabulary"]
            out += [(x == v).fill_null(False).alias(f"{c}={v}") for v in vocab]
            out.append((x.is_not_null() & ~x.is_in(vocab)).alias(f"{c}=<oov>"))
            if "impute" not in s:
                out.append(x.is_null().alias(f"{c}=<missing>"))
        elif t == "hash":
            h = x.nchash.xxhash64() % e["buckets"]
            out += [(h == k).fill_null(False).alias(f"{c}#{k}") for k in range(e["buckets"])]
        elif t == "datetime":
            out += [PARTS[p](x).alias(f"{c}@{p}") for p in e["parts"]]
        else:
            raise SystemExit(f"featurize_polars.py: no {t!r} here; see its docstring")
    return [o.cast(pl.Float32) for o in out]


def main(spec_path: str, dataset: str, out: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    # the training split: one file, or its partitions (NAME.part-00000.parquet, ...)
    train = sorted(Path(dataset).glob("train.parquet")) + sorted(
        Path(dataset).glob("train.part-*.parquet")
    )
    state = fit(spec, [str(p) for p in train])
    label = {c: i for i, c in enumerate(state["classes"])}
    exprs = features(spec, state) + [
        pl.col(spec["label"]).replace_strict(label, return_dtype=pl.Int32)
    ]
    Path(out).mkdir(parents=True, exist_ok=True)
    for split in sorted(Path(dataset).glob("*.parquet")):  # each file (partition) on its own
        pl.scan_parquet(split).select(exprs).sink_parquet(Path(out) / split.name)


if __name__ == "__main__":
    main(*sys.argv[1:])
