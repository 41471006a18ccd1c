"""Each feature transform, defined once: fit, batch expressions, per-row function.

A transform sees one input column (or several, for `cross`) after imputation,
and produces named float outputs. Its fitted state is plain JSON. The batch path
builds polars expressions; the row path is a closure over the same state in
plain Python (the model server calls it per request). Property tests hold the
two equal for every transform.

Conventions for a missing value that was not imputed: numeric outputs are NaN;
one-hot outputs are all 0 except `col=<missing>` (one_hot only); bucket/hash
one-hots are all 0; text counts are 0.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..core.hashing import canonical_text, stable_hash, stable_hash_many
from ..errors import BadInput
from . import names

NUMERIC = ("int", "float")
CATEGORICAL = ("string", "int", "bool")
TEMPORAL = ("date", "datetime")
TOKEN_PATTERN = r"\b\w\w+\b"
_TOKENS = re.compile(TOKEN_PATTERN)
NAN = float("nan")
DATETIME_PARTS = ("year", "month", "day", "dayofweek", "hour", "minute")
# Period and offset of each part for the cyclic (sin/cos) encoding: angle = 2*pi*(v - offset)/period.
CYCLE = {"month": (12, 1), "day": (31, 1), "dayofweek": (7, 0), "hour": (24, 0), "minute": (60, 0)}


def tokens(text: str | None) -> list[str]:
    return _TOKENS.findall(text.lower()) if text else []


class Transform:
    """Base: subclasses set `name`, `accepts`, `options`, and implement the four methods."""

    name = ""
    accepts: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    multi = False  # takes `columns` (several) instead of `column`
    text_input = False  # reads the canonical text of its column (categorical transforms)

    def nan_on_missing(self, entry: dict) -> bool:
        """Whether a missing input gives NaN outputs (rather than all-zero or a slot of its own).

        Such a transform gets a fitted fill value when training saw no missing value, so
        an estimator that rejects NaN never meets one it was not trained with."""
        return True

    def fit(self, entry: dict, series) -> dict[str, Any]:
        return {}

    def outputs(self, entry: dict, state: dict) -> list[str]:
        return [entry["column"]]

    def exprs(self, entry: dict, state: dict, x) -> list:
        raise NotImplementedError

    def row(self, entry: dict, state: dict) -> Callable[[Any], list[float]]:
        raise NotImplementedError


def _f(x) -> float:
    return NAN if x is None else float(x)


class Standardize(Transform):
    name, accepts = "standardize", NUMERIC

    def fit(self, entry, series):
        x = series.cast(float).drop_nulls().drop_nans()
        mean = float(x.mean()) if x.len() else 0.0
        std = float(x.std(ddof=0)) if x.len() else 1.0
        return {"mean": mean, "std": std if std > 0 else 1.0}

    def exprs(self, entry, state, x):
        return [(x.cast(float) - state["mean"]) / state["std"]]

    def row(self, entry, state):
        mean, std = state["mean"], state["std"]
        return lambda v: [NAN if v is None else (float(v) - mean) / std]


class MinMax(Transform):
    name, accepts = "minmax", NUMERIC

    def fit(self, entry, series):
        x = series.cast(float).drop_nulls().drop_nans()
        lo, hi = (float(x.min()), float(x.max())) if x.len() else (0.0, 1.0)
        return {"min": lo, "max": hi}

    def exprs(self, entry, state, x):
        span = state["max"] - state["min"]
        return [(x.cast(float) - state["min"]) / span if span > 0 else x.cast(float) * 0.0]

    def row(self, entry, state):
        lo, span = state["min"], state["max"] - state["min"]
        if span > 0:
            return lambda v: [NAN if v is None else (float(v) - lo) / span]
        return lambda v: [NAN if v is None else 0.0 * float(v)]


class Log(Transform):
    name, accepts = "log", NUMERIC

    def fit(self, entry, series):
        low = series.cast(float).drop_nulls().drop_nans().min()
        if low is not None and low < 0:
            raise negative(entry["column"], low, "training data")
        return {}

    def exprs(self, entry, state, x):
        return [x.cast(float).log1p()]

    def row(self, entry, state):
        column = entry["column"]

        def apply(v):
            if v is None:
                return [NAN]
            if v < 0:
                raise negative(column, v, "the row")
            return [math.log1p(float(v))]

        return apply


def negative(column: str, value, where: str) -> BadInput:
    return BadInput(
        f"log: {value!r} in {where} is negative; log1p needs values >= 0 (clip the column first)",
        column=column,
    )


class Clip(Transform):
    name, accepts, options = "clip", NUMERIC, ("min", "max")

    def fit(self, entry, series):
        if "min" not in entry and "max" not in entry:
            raise BadInput("clip needs min, max or both", column=entry["column"])
        if "min" in entry and "max" in entry and entry["min"] > entry["max"]:
            raise BadInput(
                f"clip needs min <= max; got min {entry['min']} and max {entry['max']}",
                column=entry["column"],
            )
        return {"min": entry.get("min"), "max": entry.get("max")}

    def exprs(self, entry, state, x):
        return [x.cast(float).clip(state["min"], state["max"])]

    def row(self, entry, state):
        lo = -math.inf if state["min"] is None else state["min"]
        hi = math.inf if state["max"] is None else state["max"]
        return lambda v: [NAN if v is None else min(max(float(v), lo), hi)]


class Bucketize(Transform):
    name, accepts, options = "bucketize", NUMERIC, ("buckets", "output")

    def nan_on_missing(self, entry):
        return entry.get("output", "onehot") == "ordinal"

    def fit(self, entry, series):
        import numpy as np

        n = entry.get("buckets", 10)
        x = series.cast(float).drop_nulls().drop_nans().to_numpy()
        if x.size == 0:
            return {"boundaries": []}
        # Quantile boundaries (numpy's linear method), duplicates dropped: equal to
        # scikit-learn's KBinsDiscretizer(strategy="quantile", quantile_method="linear").
        inner = np.quantile(x, np.linspace(0, 1, n + 1))[1:-1]
        return {"boundaries": [float(b) for b in np.unique(inner)]}

    def outputs(self, entry, state):
        if entry.get("output", "onehot") == "ordinal":
            return [entry["column"]]
        return [names.bucket(entry["column"], k) for k in range(len(state["boundaries"]) + 1)]

    def exprs(self, entry, state, x):
        import polars as pl

        xf = x.cast(float)
        index = pl.sum_horizontal(
            [(xf >= b).cast(pl.Int32) for b in state["boundaries"]] or [pl.lit(0, pl.Int32)]
        )
        index = pl.when(xf.is_null()).then(None).otherwise(index)
        if entry.get("output", "onehot") == "ordinal":
            return [index.cast(float)]
        return [
            (index == k).fill_null(False).cast(float) for k in range(len(state["boundaries"]) + 1)
        ]

    def row(self, entry, state):
        bounds = state["boundaries"]
        if entry.get("output", "onehot") == "ordinal":
            return lambda v: [NAN if v is None else float(bisect.bisect_right(bounds, float(v)))]
        width = len(bounds) + 1

        def apply(v):
            out = [0.0] * width
            if v is not None:
                out[bisect.bisect_right(bounds, float(v))] = 1.0
            return out

        return apply


def value_counts(series) -> list[tuple[Any, int]]:
    """(value, count) of the non-missing values, counted by polars (not row by row)."""
    counts = series.drop_nulls().value_counts(name="__n")
    return list(zip(counts[series.name].to_list(), counts["__n"].to_list(), strict=True))


def _vocabulary(series, top_k: int | None, min_count: int) -> list[str]:
    """Values seen at least min_count times, the top_k most frequent (ties by value), sorted."""
    counts = [(canonical_text(v), c) for v, c in value_counts(series)]
    ranked = sorted(((c, v) for v, c in counts if c >= min_count), key=lambda cv: (-cv[0], cv[1]))
    return sorted(v for _, v in ranked[:top_k])


def _text_expr(x, dtype):
    """Canonical text of a categorical column, as the row path's canonical_text."""
    import polars as pl

    return x if dtype == pl.String else x.cast(pl.String)


class OneHot(Transform):
    name, accepts, options = "one_hot", CATEGORICAL, ("top_k", "min_count")
    text_input = True

    def nan_on_missing(self, entry):
        return False

    def fit(self, entry, series):
        return {
            "vocabulary": _vocabulary(series, entry.get("top_k"), entry.get("min_count", 1)),
            "missing": "impute" not in entry,
        }

    def outputs(self, entry, state):
        c = entry["column"]
        out = [names.one_hot(c, v) for v in state["vocabulary"]] + [names.one_hot(c, names.OOV)]
        return out + ([names.one_hot(c, names.MISSING)] if state["missing"] else [])

    def exprs(self, entry, state, x):
        import polars as pl

        vocab = state["vocabulary"]
        out = [(x == v).fill_null(False).cast(float) for v in vocab]
        out.append((x.is_not_null() & ~x.is_in(vocab)).cast(float))
        if state["missing"]:
            out.append(x.is_null().cast(float))
        return [o.cast(pl.Float64) for o in out]

    def row(self, entry, state):
        index = {v: i for i, v in enumerate(state["vocabulary"])}
        oov, width = len(index), len(index) + 1 + (1 if state["missing"] else 0)

        def apply(v):
            out = [0.0] * width
            if v is None:
                if state["missing"]:
                    out[oov + 1] = 1.0
            else:
                out[index.get(canonical_text(v), oov)] = 1.0
            return out

        return apply


class Ordinal(Transform):
    name, accepts, options = "ordinal", CATEGORICAL, ("top_k", "min_count")
    text_input = True

    def fit(self, entry, series):
        return {"vocabulary": _vocabulary(series, entry.get("top_k"), entry.get("min_count", 1))}

    def exprs(self, entry, state, x):
        import polars as pl

        vocab = state["vocabulary"]
        mapping = {v: float(i) for i, v in enumerate(vocab)}
        coded = x.replace_strict(mapping, default=float(len(vocab)), return_dtype=pl.Float64)
        return [pl.when(x.is_null()).then(None).otherwise(coded)]

    def row(self, entry, state):
        index = {v: float(i) for i, v in enumerate(state["vocabulary"])}
        oov = float(len(index))
        return lambda v: [NAN if v is None else index.get(canonical_text(v), oov)]


class Hash(Transform):
    name, accepts, options = "hash", CATEGORICAL, ("buckets",)
    text_input = True

    def nan_on_missing(self, entry):
        return False

    def fit(self, entry, series):
        return {"buckets": entry.get("buckets", 32)}

    def outputs(self, entry, state):
        return [names.bucket(entry["column"], k) for k in range(state["buckets"])]

    def exprs(self, entry, state, x):
        import polars_hash  # noqa: F401  (registers .nchash)

        h = x.nchash.xxhash64() % state["buckets"]
        return [(h == k).fill_null(False).cast(float) for k in range(state["buckets"])]

    def row(self, entry, state):
        n = state["buckets"]

        def apply(v):
            out = [0.0] * n
            if v is not None:
                out[stable_hash(canonical_text(v)) % n] = 1.0
            return out

        return apply


class Cross(Transform):
    name, accepts, options, multi = "cross", CATEGORICAL, ("buckets",), True
    text_input = True

    def nan_on_missing(self, entry):
        return False

    def fit(self, entry, series):
        return {"buckets": entry.get("buckets", 32)}

    def outputs(self, entry, state):
        return [names.cross(entry["columns"], k) for k in range(state["buckets"])]

    def exprs(self, entry, state, xs):
        import polars as pl
        import polars_hash  # noqa: F401

        from ..core.hashing import MISSING, SEPARATOR

        joined = pl.concat_str([x.fill_null(MISSING) for x in xs], separator=SEPARATOR)
        h = joined.nchash.xxhash64() % state["buckets"]
        return [(h == k).cast(float) for k in range(state["buckets"])]

    def row(self, entry, state):
        n = state["buckets"]

        def apply(values):
            out = [0.0] * n
            out[
                stable_hash_many([None if v is None else canonical_text(v) for v in values]) % n
            ] = 1.0
            return out

        return apply


class Counts(Transform):
    """Token counts over a vocabulary fitted on train (scikit-learn's CountVectorizer defaults)."""

    name, accepts, options = "counts", ("string",), ("max_features",)

    def nan_on_missing(self, entry):
        return False

    def fit(self, entry, series):
        docs = [tokens(t) for t in series.to_list()]
        total = Counter(t for d in docs for t in d)
        ranked = sorted(total.items(), key=lambda tc: (-tc[1], tc[0]))[: entry.get("max_features")]
        vocab = sorted(t for t, _ in ranked)
        state: dict[str, Any] = {"vocabulary": vocab}
        if self.name == "tfidf":
            df = Counter(t for d in docs for t in set(d))
            n = len(docs)
            # Smoothed idf, as scikit-learn's TfidfVectorizer: ln((1 + n) / (1 + df)) + 1.
            state["idf"] = [math.log((1 + n) / (1 + df[t])) + 1 for t in vocab]
        return state

    def outputs(self, entry, state):
        return [names.token(entry["column"], t) for t in state["vocabulary"]]

    def _counts(self, x, state):
        import polars as pl

        toks = x.fill_null("").str.to_lowercase().str.extract_all(TOKEN_PATTERN)
        return [toks.list.count_matches(t).cast(pl.Float64) for t in state["vocabulary"]]

    def exprs(self, entry, state, x):
        return self._counts(x, state)

    def _row_counts(self, state):
        index = {t: i for i, t in enumerate(state["vocabulary"])}

        def counts(v):
            out = [0.0] * len(index)
            for t in tokens(v):
                i = index.get(t)
                if i is not None:
                    out[i] += 1.0
            return out

        return counts

    def row(self, entry, state):
        return self._row_counts(state)


class TfIdf(Counts):
    """tf-idf with l2-normalised rows (scikit-learn's TfidfVectorizer defaults)."""

    name = "tfidf"

    def exprs(self, entry, state, x):
        import polars as pl

        raw = [c * w for c, w in zip(self._counts(x, state), state["idf"], strict=True)]
        norm = pl.sum_horizontal([r * r for r in raw]).sqrt() if raw else pl.lit(0.0)
        return [pl.when(norm > 0).then(r / norm).otherwise(0.0) for r in raw]

    def row(self, entry, state):
        counts, idf = self._row_counts(state), state["idf"]

        def apply(v):
            raw = [c * w for c, w in zip(counts(v), idf, strict=True)]
            norm = math.sqrt(sum(r * r for r in raw))
            return [r / norm if norm > 0 else 0.0 for r in raw]

        return apply


class DateTime(Transform):
    name, accepts, options = "datetime", TEMPORAL, ("parts", "cyclic")

    def fit(self, entry, series):
        return {
            "parts": entry.get("parts", ["year", "month", "day", "dayofweek"]),
            "cyclic": entry.get("cyclic", False),
        }

    def outputs(self, entry, state):
        c, out = entry["column"], []
        for p in state["parts"]:
            out.append(names.part(c, p))
            if state["cyclic"] and p in CYCLE:
                out += [names.part(c, f"{p}_sin"), names.part(c, f"{p}_cos")]
        return out

    def exprs(self, entry, state, x):
        import polars as pl

        getters = {
            "year": x.dt.year(), "month": x.dt.month(), "day": x.dt.day(),
            "dayofweek": x.dt.weekday() - 1, "hour": x.dt.hour(), "minute": x.dt.minute(),
        }  # fmt: skip
        out = []
        for p in state["parts"]:
            v = getters[p].cast(pl.Float64)
            out.append(v)
            if state["cyclic"] and p in CYCLE:
                period, offset = CYCLE[p]
                angle = (v - offset) * (2 * math.pi / period)
                out += [angle.sin(), angle.cos()]
        return out

    def row(self, entry, state):
        parts, cyclic = state["parts"], state["cyclic"]

        def apply(v):
            out = []
            for p in parts:
                if v is None:
                    value = NAN
                elif p == "dayofweek":
                    value = float(v.weekday())
                else:
                    value = float(getattr(v, p, 0))
                out.append(value)
                if cyclic and p in CYCLE:
                    period, offset = CYCLE[p]
                    angle = (value - offset) * (2 * math.pi / period)
                    out += [math.sin(angle), math.cos(angle)]
            return out

        return apply


TRANSFORMS: dict[str, Transform] = {
    t.name: t
    for t in (Standardize(), MinMax(), Log(), Clip(), Bucketize(), OneHot(), Ordinal(), Hash(), Cross(),
              Counts(), TfIdf(), DateTime())
}  # fmt: skip
