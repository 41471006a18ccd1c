"""One column of a split read a partition at a time, reduced to what `validate`'s checks
need: counts, moments and the counts at the baseline's bucket edges and summary points.
Memory holds one partition's column, whatever the rows; each figure is a sum over the
partitions (the moments merged by Chan's formula), so the checks give the same result
however the split is partitioned (the mean and sd up to floating-point rounding)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .checks import Checker

MAX_INT_VALUES = 1_000  # an int column (not the label) with more values is a number
COMPACT_EVERY = 8  # partitions' value counts held before they are summed


@dataclass
class ColumnScan:
    dtype: str
    base: dict[str, Any] | None = None  # the baseline's stats of the column (epoch for dates)
    summary: list[float] = field(default_factory=list)  # the baseline's quantile summary
    track_ints: bool = False  # count an int column's values (the baseline has its mix)
    int_cap: int | None = MAX_INT_VALUES  # None: count every value (a label's)
    count_values: bool = False  # count a string/bool column's values (domain, drift)
    rows: int = 0
    present: int = 0
    int_counts: dict[int, int] | None = None  # None: past MAX_INT_VALUES
    nan: int = 0
    inf: int = 0
    n: int = 0  # finite values
    mean: float = 0.0
    m2: float = 0.0
    buckets: Any = None  # counts in the baseline's quantile buckets
    le: Any = None  # finite values <= each grid point (the baseline summary's points)
    lt: Any = None  # ... < each grid point
    moments: list[tuple[int, float, float]] = field(default_factory=list)  # per partition

    def __post_init__(self) -> None:
        import numpy as np

        self.grid = np.asarray([], dtype=float)
        self._value_counts: list = []  # polars frames (value, n), summed now and then
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
            if self.count_values:
                # kept as polars frames, summed every few partitions: a column of millions
                # of distinct values must not become a Python dict per partition
                vc = series.drop_nulls().cast(pl.String).value_counts(name="__n")
                self._value_counts.append(vc.rename({series.name: "value"}))
                if len(self._value_counts) >= COMPACT_EVERY:
                    self._value_counts = [self._summed()]
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
            values, counts = np.unique(finite, return_counts=True)
            if self.int_cap is not None and values.size > self.int_cap:
                self.int_counts = None
            else:
                for value, c in zip(values.tolist(), counts.tolist(), strict=True):
                    self.int_counts[int(value)] = self.int_counts.get(int(value), 0) + c
                if self.int_cap is not None and len(self.int_counts) > self.int_cap:
                    self.int_counts = None
        if finite.size:
            m, k = float(finite.mean()), int(finite.size)
            self._fold(k, m, float(((finite - m) ** 2).sum()))
        if self.buckets is not None and self.base is not None:
            edges = self.base["quantile_histogram"]["edges"]
            if len(edges) >= 2:
                idx = np.searchsorted(np.asarray(edges[1:-1]), finite, side="right")
                self.buckets += np.bincount(idx, minlength=self.buckets.size)
            else:
                self.buckets[0] += finite.size
            self.le += np.searchsorted(finite, self.grid, side="right")
            self.lt += np.searchsorted(finite, self.grid, side="left")

    def _fold(self, k: int, m: float, m2: float) -> None:
        """Fold in the moments of k more finite values (Chan's formula), kept in order so
        that `merge` folds another scan's partitions in with the same arithmetic."""
        self.moments.append((k, m, m2))
        total = self.n + k
        delta = m - self.mean
        self.m2 += m2 + delta * delta * self.n * k / total
        self.mean += delta * k / total
        self.n = total

    def merge(self, later: ColumnScan) -> None:
        """Fold in the scan of the partitions that follow this one's (an engine's worker
        scanned them): every figure as if `add` had read them here, to the last bit."""
        self.rows += later.rows
        self.present += later.present
        self.nan += later.nan
        self.inf += later.inf
        if self.int_counts is not None:
            if later.int_counts is None:
                self.int_counts = None
            else:
                for value, c in later.int_counts.items():
                    self.int_counts[value] = self.int_counts.get(value, 0) + c
                if self.int_cap is not None and len(self.int_counts) > self.int_cap:
                    self.int_counts = None
        for k, m, m2 in later.moments:
            self._fold(k, m, m2)
        if self.buckets is not None:
            self.buckets += later.buckets
            self.le += later.le
            self.lt += later.lt
        self._value_counts += later._value_counts
        if len(self._value_counts) >= COMPACT_EVERY:
            self._value_counts = [self._summed()]

    def _summed(self):
        import polars as pl

        return pl.concat(self._value_counts).group_by("value").agg(pl.col("__n").sum())

    # -- figures -------------------------------------------------------------------------
    def value_counts(self) -> dict[str, int]:
        """A string/bool column's values with their counts, most frequent first, ties by
        value (the order examples are shown in); empty unless `count_values`."""
        if not self._value_counts:
            return {}
        vc = self._summed().sort(["__n", "value"], descending=[True, False])
        return dict(zip(vc["value"].to_list(), vc["__n"].to_list(), strict=True))

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
            base_missing = base.get("missing", 0) + base.get("nan", 0) + base.get("inf", 0)
            return [0, base_missing], [self.n, self.missing]
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


@dataclass
class Scanned:
    """What reading one column found (`Checker.scan_column`), for `Checker.judge_column`."""

    scan: ColumnScan
    outside: int  # values outside the schema's [min, max]
    examples: list[Any]  # the first of them, distinct
    base: dict[str, Any] | None  # the baseline's stats of the column
    drift_base: dict[str, Any] | None  # what its drift is measured against
    is_label: bool


def column_sources(parts: list, name: str) -> list:
    """What a worker needs to read column `name` of a split: each partition's path, or
    the column itself of a partition held as a DataFrame."""
    import polars as pl

    # a path made absolute: a worker's working folder is not ours
    return [p.get_column(name) if isinstance(p, pl.DataFrame) else p.absolute() for p in parts]


def scan_on_worker(checker: Checker, job: tuple) -> Scanned:
    """`Checker.scan_column` of one column of one partition, run by an engine's worker."""
    import polars as pl

    name, spec, dtype, source = job
    if not isinstance(source, pl.Series):
        source = pl.read_parquet(source, columns=[name]).to_series()
    return checker.scan_column(name, spec, dtype, iter([source]))


def merge_scanned(parts: list[Scanned]) -> Scanned:
    """The scans of a column's partitions, in order, as one scan of the column: what
    `Checker.scan_column` gives reading them in turn (the examples the first distinct)."""
    from .checks import EXAMPLES, _same

    whole = parts[0]
    for part in parts[1:]:
        whole.scan.merge(part.scan)
        whole.outside += part.outside
        new = [x for x in part.examples if not any(_same(x, e) for e in whole.examples)]
        whole.examples += new[: EXAMPLES - len(whole.examples)]
    return whole
