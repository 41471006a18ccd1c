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

from ..errors import BadInput
from . import names
from .base import NAN, NUMERIC, TEMPORAL, Transform
from .categorical import Counts, Cross, Hash, OneHot, Ordinal, TfIdf

DATETIME_PARTS = ("year", "month", "day", "dayofweek", "hour", "minute")
# Period and offset of each part for the cyclic (sin/cos) encoding: angle = 2*pi*(v - offset)/period.
CYCLE = {"month": (12, 1), "day": (31, 1), "dayofweek": (7, 0), "hour": (24, 0), "minute": (60, 0)}


class Standardize(Transform):
    name, accepts = "standardize", NUMERIC

    def fit(self, entry, col):
        _finite_only(self.name, entry, col)
        m = col.moments
        mean, std = (m.mean, m.std) if m.n else (0.0, 1.0)
        return {"mean": mean, "std": std if std > 0 else 1.0}

    def exprs(self, entry, state, x):
        return [(x.cast(float) - state["mean"]) / state["std"]]

    def row(self, entry, state):
        mean, std = state["mean"], state["std"]
        return lambda v: [NAN if v is None else (float(v) - mean) / std]


class MinMax(Transform):
    name, accepts = "minmax", NUMERIC

    def fit(self, entry, col):
        _finite_only(self.name, entry, col)
        lo, hi = (col.low, col.high) if col.low is not None else (0.0, 1.0)
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

    def fit(self, entry, col):
        low = col.low
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


def _finite_only(name: str, entry, col) -> None:
    """standardize and minmax scale by moments or a range, which an infinite value makes
    infinite or NaN (and the fitted state then cannot be written as JSON)."""
    neg, pos = col.infinite
    if neg or pos:
        raise BadInput(
            f"{name}: the training data holds {neg} -inf and {pos} inf, which leave no finite"
            f" {'mean and sd' if name == 'standardize' else 'range'}; replace them upstream,"
            " or use clip or bucketize, which take infinite values",
            column=entry["column"],
        )


def negative(column: str, value, where: str) -> BadInput:
    return BadInput(
        f"log: {value!r} in {where} is negative; log1p needs values >= 0 (clip the column first)",
        column=column,
    )


class Clip(Transform):
    name, accepts, options = "clip", NUMERIC, ("min", "max")

    def fit(self, entry, col):
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

    def fit(self, entry, col):
        import numpy as np

        n = entry.get("buckets", 10)
        # the finite values: an infinity would make the interpolated quantiles NaN
        if col.finite_count() == 0:
            return {"boundaries": []}
        # Quantile boundaries (numpy's linear method, exact: `training_column`), duplicates
        # dropped: equal to scikit-learn's KBinsDiscretizer(strategy="quantile",
        # quantile_method="linear"). More buckets than distinct values cannot be told
        # apart: capped there.
        n = min(n, col.n_distinct())
        inner = col.quantiles(np.linspace(0, 1, n + 1).tolist())[1:-1]
        return {"boundaries": [float(b) for b in np.unique(inner)]}

    def outputs(self, entry, state):
        if entry.get("output", "onehot") == "ordinal":
            return [entry["column"]]
        return [names.bucket(entry["column"], k) for k in range(len(state["boundaries"]) + 1)]

    def exprs(self, entry, state, x):
        import polars as pl

        xf = x.cast(float)
        bounds = state["boundaries"]
        # the number of boundaries <= x (bisect_right, as the row path): cut's interval index
        index = (
            xf.cut(bounds, left_closed=True).to_physical().cast(pl.Int32)
            if bounds
            else pl.when(xf.is_null()).then(None).otherwise(pl.lit(0, pl.Int32))
        )
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


class DateTime(Transform):
    name, accepts, options = "datetime", TEMPORAL, ("parts", "cyclic")

    def fit(self, entry, col):
        import polars as pl

        # The time of day is a default part of a datetime column, not of a date.
        default = ["year", "month", "day", "dayofweek"]
        if col.dtype != pl.Date:
            default += ["hour", "minute"]
        return {
            "parts": entry.get("parts", default),
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
