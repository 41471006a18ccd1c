"""Combining statistics of partitions computed apart (`stats --merge`).

What is exact and what is approximate is said in `compute`'s module docstring.
"""

from __future__ import annotations

import base64
import math
from typing import Any

from ..errors import BadInput
from .compute import (
    BUCKETS,
    CATEGORICAL,
    HLL_LG_K,
    LOW_CARDINALITY,
    NUMERIC,
    QUANTILES,
    SUMMARY_POINTS,
    TOP_VALUES,
    q_key,
    summary_cdf,
)


def _mixed_cdf(parts: list[tuple[int, list[float]]]):
    """(points, cdf values) of the count-weighted mix of piecewise-linear CDFs."""
    import numpy as np

    n = sum(k for k, _ in parts)
    xs = np.unique(np.concatenate([np.asarray(s) for _, s in parts]))
    cdf = sum(k * summary_cdf(s, xs) for k, s in parts) / n
    return xs, np.maximum.accumulate(cdf)


def _quantile(xs, cdf, qs):
    """The smallest point whose CDF reaches q (the inverse of a step CDF)."""
    import numpy as np

    i = np.searchsorted(cdf, np.asarray(qs, dtype=float) - 1e-12, side="left")
    return xs[np.clip(i, 0, len(xs) - 1)]


def _counts(xs, cdf, edges, n: int) -> list[int]:
    """Whole counts per bucket from the CDF, summing to n (largest remainder)."""
    import numpy as np

    # Bucket j is [e_j, e_j+1): its count is F just below e_j+1 minus F just below e_j.
    below = np.searchsorted(xs, np.asarray(edges), side="left")
    at = np.where(below > 0, cdf[np.clip(below - 1, 0, len(xs) - 1)], 0.0)
    at[0], at[-1] = 0.0, 1.0
    raw = np.diff(at) * n
    counts = np.floor(raw).astype(int)
    for j in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[j] += 1
    return [int(c) for c in counts]


def _merge_numeric(parts, type_name) -> tuple[dict, dict]:
    import numpy as np

    stats = {"type": type_name}
    for key in ("count", "missing", "nan", "inf", "zeros"):
        stats[key] = sum(p[0].get(key) or 0 for p in parts)
    live = [(s, k) for s, k in parts if k.get("n")]
    n = sum(k["n"] for _, k in live)
    if n == 0:
        stats.update(
            min=None,
            max=None,
            mean=None,
            std=None,
            quantiles={q_key(q): None for q in QUANTILES},
            histogram={"edges": [], "counts": []},
            quantile_histogram={"edges": [], "counts": []},
        )
        return stats, {"n": 0, "m2": 0.0, "summary": []}
    mean = sum(k["n"] * s["mean"] for s, k in live) / n
    m2 = sum(k["m2"] + k["n"] * (s["mean"] - mean) ** 2 for s, k in live)
    lo, hi = min(s["min"] for s, _ in live), max(s["max"] for s, _ in live)
    xs, cdf = _mixed_cdf([(k["n"], k["summary"]) for _, k in live])
    edges = np.linspace(lo, hi, BUCKETS + 1)
    qedges = _quantile(xs, cdf, np.linspace(0, 1, BUCKETS + 1))
    stats.update(
        min=lo,
        max=hi,
        mean=mean,
        std=math.sqrt(m2 / (n - 1)) if n > 1 else None,
        quantiles={
            q_key(q): float(v)
            for q, v in zip(QUANTILES, _quantile(xs, cdf, QUANTILES), strict=True)
        },
        histogram={"edges": [float(e) for e in edges], "counts": _counts(xs, cdf, edges, n)},
        quantile_histogram={
            "edges": [float(e) for e in qedges],
            "counts": _counts(xs, cdf, qedges, n),
        },
    )
    if type_name == "int" and all("values" in s or not s.get("count") for s, _ in parts):
        totals: dict[str, int] = {}
        for s, _ in parts:
            for value, count in s.get("values", []):
                totals[value] = totals.get(value, 0) + count
        if len(totals) <= LOW_CARDINALITY:
            stats["values"] = [
                [v, c] for v, c in sorted(totals.items(), key=lambda vc: (-vc[1], int(vc[0])))
            ]
    summary = [float(v) for v in _quantile(xs, cdf, np.linspace(0, 1, SUMMARY_POINTS))]
    return stats, {"n": n, "m2": m2, "summary": summary}


def _merge_categorical(parts, type_name) -> tuple[dict, dict]:
    import datasketches

    totals: dict[str, int] = {}
    for s, _ in parts:
        for value, count in s.get("values", []):
            totals[value] = totals.get(value, 0) + count
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    count = sum(s["count"] for s, _ in parts)
    union = datasketches.hll_union(HLL_LG_K)
    for _, k in parts:
        if k.get("hll"):
            union.update(datasketches.hll_sketch.deserialize(base64.b64decode(k["hll"])))
    complete = all(s.get("other", 0) == 0 for s, _ in parts)
    lengths = [s["length"] for s, _ in parts if s.get("count")]
    length_sum = sum(k.get("length_sum", 0) for _, k in parts)
    listed = ranked[:TOP_VALUES]
    stats = {
        "type": type_name,
        "count": count,
        "missing": sum(s["missing"] for s, _ in parts),
        "unique": len(totals) if complete else int(round(union.get_result().get_estimate())),
        "values": [[v, c] for v, c in listed],
        "other": count - sum(c for _, c in listed),
        "length": {
            "min": min((x["min"] for x in lengths), default=None),
            "max": max((x["max"] for x in lengths), default=None),
            "mean": length_sum / count if count else None,
        },
    }
    return stats, {
        "hll": base64.b64encode(union.get_result().serialize_compact()).decode(),
        "length_sum": length_sum,
    }


def _merge_temporal(parts, type_name) -> tuple[dict, dict]:
    present = [s for s, _ in parts if s.get("min") is not None]
    stats = {
        "type": type_name,
        "count": sum(s["count"] for s, _ in parts),
        "missing": sum(s["missing"] for s, _ in parts),
        "min": min((s["min"] for s in present), default=None),
        "max": max((s["max"] for s in present), default=None),
    }
    sketch: dict = {}
    if all("epoch" in s or not s.get("count") for s, _ in parts):  # stats algorithm 3 on
        epochs = [(s["epoch"], k["epoch"]) for s, k in parts if "epoch" in s]
        if epochs:
            stats["epoch"], sketch["epoch"] = _merge_numeric(epochs, "float")
    return stats, sketch


def _absent(type_name: str, rows: int) -> tuple[dict, dict]:
    """A column a partition does not have: all of its rows are missing there."""
    base = {"type": type_name, "count": 0, "missing": rows}
    if type_name in NUMERIC:
        return {**base, "nan": 0, "inf": 0, "zeros": 0}, {"n": 0}
    if type_name in CATEGORICAL:
        return {**base, "values": [], "other": 0, "length": {}}, {}
    return base, {}


def merge_table(parts: list[tuple[dict, dict]], where: str) -> tuple[dict, dict]:
    """Merge {rows, columns} blocks (with their sketch blocks) of several partitions."""
    types: dict[str, str] = {}
    for s, _ in parts:
        for col, cs in s["columns"].items():
            t = types.get(col)
            if t is None or t == cs["type"]:
                types[col] = cs["type"]
            elif {t, cs["type"]} == {"int", "float"}:
                types[col] = "float"
            else:
                raise BadInput(
                    f'{where}: column "{col}" is {t} in one part and {cs["type"]} in another'
                )
    columns, sketches = {}, {}
    for col, t in types.items():
        col_parts = [
            (s["columns"][col], k["columns"].get(col, {}))
            if col in s["columns"]
            else _absent(t, s["rows"])
            for s, k in parts
        ]
        merge = (
            _merge_numeric
            if t in NUMERIC
            else _merge_categorical
            if t in CATEGORICAL
            else _merge_temporal
        )
        columns[col], sketches[col] = merge(col_parts, t)
    return {"rows": sum(s["rows"] for s, _ in parts), "columns": columns}, {"columns": sketches}


def merge_stats(docs: list[tuple[dict, dict]]) -> tuple[dict, dict]:
    """Merge whole stats.json documents (with their sketches.json)."""
    split_names = list(dict.fromkeys(name for s, _ in docs for name in s["splits"]))
    stats: dict[str, Any] = {"format": "mlstage-stats/1", "splits": {}}
    sketches: dict[str, Any] = {"format": "mlstage-sketches/1", "splits": {}}
    for name in split_names:
        parts = [(s["splits"][name], k["splits"][name]) for s, k in docs if name in s["splits"]]
        block, sk = merge_table(parts, f"split {name}")
        slice_names = list(dict.fromkeys(n for p, _ in parts for n in p.get("slices", {})))
        if slice_names:
            block["slices"], sk["slices"] = {}, {}
            for sl in sorted(slice_names):
                sp = [
                    (p["slices"][sl], k["slices"][sl])
                    for p, k in parts
                    if sl in p.get("slices", {})
                ]
                block["slices"][sl], sk["slices"][sl] = merge_table(sp, f"split {name}, slice {sl}")
        stats["splits"][name], sketches["splits"][name] = block, sk
    return stats, sketches


def split_stats_of(
    split, types: dict[str, str], slices: list[list[str]], engine=None, cache=None
) -> tuple[dict, dict]:
    """Statistics of one split (a `data.splits.Split`): of its file, or of each of its
    partitions in turn, merged as `stats --merge` does (memory holds one partition's
    column at a time; what the merge keeps exact and what approximately is said above).

    With a `partition_cache.PartitionStatsCache`, partitions seen before are not read.
    With a cluster `engine` (`core.engine`), the other partitions' statistics are
    computed on its workers; all are merged here in partition order. Each partition's
    statistics pass through JSON as a cached entry does, so the result is the same, byte
    for byte, computed, cached or from a cluster."""
    import functools
    import json

    from ..core.progress import task
    from .compute import split_stats

    found: dict[Any, Any] = {p: cache.get(p) if cache is not None else None for p in split.parts}
    todo = [p for p in split.parts if found[p] is None]
    with task(f"stats: split {split.name}", total=len(split.parts)) as step:
        step.advance(len(split.parts) - len(todo))
        if engine is not None and not engine.local and todo:
            computed = engine.map(
                functools.partial(split_stats, types=types, slices=slices),
                [p.absolute() for p in todo],  # a worker's folder is not ours
            )
        else:  # one partition at a time: memory holds one partition's column
            computed = (split_stats(p, types, slices) for p in todo)
        for part, got in zip(todo, computed, strict=True):
            if cache is not None:
                cache.put(part, got)
            found[part] = json.loads(json.dumps(got))
            step.advance()
    blocks = [found[p] for p in split.parts]
    if len(blocks) == 1:
        return blocks[0]
    docs = [({"splits": {"s": b}}, {"splits": {"s": k}}) for b, k in blocks]
    stats, sketches = merge_stats(docs)
    return stats["splits"]["s"], sketches["splits"]["s"]
