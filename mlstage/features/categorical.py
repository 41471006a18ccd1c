"""Categorical and text transforms: one_hot, ordinal, hash, cross (of categorical columns)
and counts, tfidf (of text). See `transforms` for the conventions every transform keeps."""

from __future__ import annotations

import math
from typing import Any

from ..core.hashing import canonical_text, stable_hash, stable_hash_many
from . import names
from .base import CATEGORICAL, NAN, TOKEN_PATTERN, Transform, tokens


def _vocabulary(col, top_k: int | None, min_count: int) -> list[str]:
    """Values seen at least min_count times, the top_k most frequent (ties by value), sorted."""
    counts = [(str(canonical_text(v)), c) for v, c in col.value_counts()]
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

    def fit(self, entry, col):
        return {
            "vocabulary": _vocabulary(col, entry.get("top_k"), entry.get("min_count", 1)),
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

    def fit(self, entry, col):
        return {"vocabulary": _vocabulary(col, entry.get("top_k"), entry.get("min_count", 1))}

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

    def fit(self, entry, col):
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

    def fit(self, entry, col):
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

    def fit(self, entry, col):
        total, df = col.tokens
        ranked = sorted(total.items(), key=lambda tc: (-tc[1], tc[0]))[: entry.get("max_features")]
        vocab = sorted(t for t, _ in ranked)
        state: dict[str, Any] = {"vocabulary": vocab}
        if self.name == "tfidf":
            n = col.rows
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
