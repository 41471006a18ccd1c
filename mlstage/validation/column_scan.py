"""One column of a split read a partition at a time, reduced to what `validate`'s checks
need: counts, moments and the counts at the baseline's bucket edges and summary points.
Memory holds one partition's column, whatever the rows; each figure is a sum over the
partitions (the moments merged by Chan's formula), so the checks give the same result
however the split is partitioned (the mean and sd up to floating-point rounding)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_INT_VALUES = 1_000  # an int column with more values is compared as a number


@dataclass
class ColumnScan:
    dtype: str
    base: dict[str, Any] | None = None  # the baseline's stats of the column (epoch for dates)
    summary: list[float] = field(default_factory=list)  # the baseline's quantile summary
    track_ints: bool = False  # count an int column's values (the baseline has its mix)
    rows: int = 0
    present: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # strings and bools
    int_counts: dict[int, int] | None = None  # None: past MAX_INT_VALUES
    nan: int = 0
    inf: int = 0
    n: int = 0  # finite values
    mean: float = 0.0
    m2: float = 0.0
    buckets: Any = None  # counts in the baseline's quantile buckets
    le: Any = None  # finite values <= each grid point (the baseline summary's points)
    lt: Any = None  # ... < each grid point

    def __post_init__(self) -> None:
        import numpy as np

        self.grid = np.asarray([], dtype=float)
        if self.track_ints:
            self.int_counts = {}
        if self.base is not None and self.dtype in ("int", "float", "date", "datetime"):
            edges = self.base.get("quantile_histogram", {}).get("edges") or []
            self.buckets = np.zeros(max(len(edges) - 1, 1), dtype=np.int64)
            self.grid = np.unique(np.asarray(self.summary, dtype=float))
            self.le = np.zeros(self.grid.size, dtype=np.int64)
            self.lt = np.zeros(self.grid.size, dtype=np.int64)

    # -- reading -------------------------------------------------------------------------
    def add(self, series) -> None:
        """Fold one partition's values of the column in."""
        import polars as pl

        self.rows += series.len()
        self.present += series.len() - series.null_count()
        if self.dtype in ("string", "bool"):
            vc = series.drop_nulls().cast(pl.String).value_counts(name="__n")
            for v, c in zip(vc[series.name].to_list(), vc["__n"].to_list(), strict=True):
                self.counts[v] = self.counts.get(v, 0) + c
        elif self.dtype in ("int", "float"):
            self._numbers(series.drop_nulls().cast(pl.Float64).to_numpy())
        elif self.dtype in ("date", "datetime") and self.base is not None:
            from .compute import epoch_seconds

            self._numbers(epoch_seconds(series).drop_nulls().to_numpy())

    def _numbers(self, v) -> None:
        import numpy as np

        nan = int(np.isnan(v).sum())
        finite = np.sort(v[np.isfinite(v)])
        self.nan += nan
        self.inf += int(v.size - finite.size - nan)
        if self.int_counts is not None:
            for value, c in zip(*np.unique(finite, return_counts=True), strict=True):
                self.int_counts[int(value)] = self.int_counts.get(int(value), 0) + int(c)
            if len(self.int_counts) > MAX_INT_VALUES:
                self.int_counts = None
        if finite.size:
            m, k = float(finite.mean()), int(finite.size)
            m2 = float(((finite - m) ** 2).sum())
            total = self.n + k
            delta = m - self.mean
            self.m2 += m2 + delta * delta * self.n * k / total
            self.mean += delta * k / total
            self.n = total
        if self.buckets is not None and self.base is not None:
            edges = self.base["quantile_histogram"]["edges"]
            if len(edges) >= 2:
                idx = np.searchsorted(np.asarray(edges[1:-1]), finite, side="right")
                self.buckets += np.bincount(idx, minlength=self.buckets.size)
            else:
                self.buckets[0] += finite.size
            self.le += np.searchsorted(finite, self.grid, side="right")
            self.lt += np.searchsorted(finite, self.grid, side="left")

    # -- figures -------------------------------------------------------------------------
    @property
    def missing(self) -> int:
        """Null, NaN and infinite values: the drift buckets' missing bucket."""
        return self.rows - self.present + self.nan + self.inf

    @property
    def variance(self) -> float | None:
        return self.m2 / (self.n - 1) if self.n > 1 else None

    def bucket_counts(self) -> tuple[list[int], list[int]]:
        """(baseline counts, current counts): the baseline's quantile buckets (open at both
        ends), then missing values; a baseline with no finite value has one value bucket."""
        from .drift import baseline_buckets

        base = self.base or {}
        if len(base.get("quantile_histogram", {}).get("edges") or []) < 2:
            return [0, base.get("missing", 0) + base.get("nan", 0)], [self.n, self.missing]
        return baseline_buckets(base), [int(c) for c in self.buckets] + [self.missing]

    def ks(self) -> float | None:
        """sup |F_current - F_baseline| over finite values, F_baseline the step function of
        the baseline's quantile summary: exact for it, from counts at its points (between
        two points F_baseline is flat, so the sup is at a point or just below the next)."""
        import numpy as np

        from .compute import summary_cdf

        if self.grid.size == 0 or self.n == 0:
            return None
        f_base = summary_cdf(self.summary, self.grid)
        before = np.concatenate([[0.0], f_base[:-1]])
        return float(max(np.abs(self.le / self.n - f_base).max(),
                         np.abs(self.lt / self.n - before).max()))  # fmt: skip
