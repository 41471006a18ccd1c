"""One column of the training split as the fits see it: summaries, not the column.

The fit reads a column in blocks of BLOCK_ROWS rows (whatever the split's partitions)
and keeps what the transforms need of it — counts, moments, minimum and maximum,
value counts, token counts, a few distinct values — so memory holds a block, not the
column (issue 17: featurize at 30M rows held 3 GB). Quantiles (bucket boundaries,
medians) are exact. A column whose values fit the fit's budget (HOLD_BYTES, shared by
its threads) keeps its finite values, and `numpy.partition` finds the order statistics
in one pass. A larger one takes two passes: the first keeps GRID evenly ranked values of
each sorted block, which bound every rank to a narrow window of values; the second
counts the values below the window and collects the window's values, whose order
statistics are then exact. Either way the result equals
`numpy.quantile(method="linear")` on the whole column bit for bit (tested), but for
the sign of a zero (below).

Blocks are cut from the split's rows in order, not from its files, and sums are added
block by block: a fitted state is the same however the split is partitioned. Quantiles
read -0.0 as 0.0: numpy orders the two as equal, so which sign a quantile took
depended on how the values were ordered (one path or the other, earlier partitions).

A fill value (imputation) is `filled(value)`: the summary of the column with its
missing values replaced, computed from the summary (the value counted `missing` times),
as `series.fill_null(value)` would give.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

BLOCK_ROWS = 1_000_000
# Types whose values are summarised as numbers: dates and datetimes by their physical
# value (days, or units since the epoch), for a median fill value
ORDERED = ("int", "float", "date", "datetime")
GRID = 1_025  # ranked values kept per block: a rank is known to within a block's 1/1024
# The finite values the fitting threads hold at once, all together: a column of more than
# a block and at most HOLD_BYTES / 8 / k rows is held whole for its quantiles, k the
# columns that may be held at once (its threads, or fewer columns needing quantiles;
# `fitted` decides), e.g. up to 16M rows on 2 cores; a larger one is read twice.
HOLD_BYTES = 256 * 2**20
MERGE_EVERY = 8  # blocks' value counts held before they are merged


@dataclass(frozen=True)
class Needs:
    """Which summaries an entry group needs of its column (the others cost nothing)."""

    counts: bool = False  # value counts (categories, mode)
    quantiles: bool = False  # the ranked grid (bucket boundaries, median)
    tokens: bool = False  # token and document counts (text)
    distinct: int = 0  # distinct finite values, counted up to this cap


@dataclass
class Moments:
    """Count, sum and sum of squared deviations, merged in row order (Chan et al.)."""

    n: int = 0
    total: float = 0.0
    m2: float = 0.0

    def add(self, n: int, total: float, m2: float) -> None:
        if n == 0:
            return
        if self.n == 0:
            self.n, self.total, self.m2 = n, total, m2
            return
        delta = total / n - self.total / self.n
        self.m2 += m2 + delta * delta * self.n * n / (self.n + n)
        self.total += total
        self.n += n

    @property
    def mean(self) -> float:
        return self.total / self.n

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.n) if self.m2 == self.m2 and self.m2 >= 0 else math.nan


@dataclass
class Column:
    """What the fits know of one training column (see the module's docstring)."""

    name: str
    ctype: str  # mlstage's column type: int, float, string, bool, date, datetime
    dtype: Any  # its polars dtype
    rows: int = 0
    missing: int = 0  # null, or NaN in a float column
    moments: Moments = field(default_factory=Moments)  # present values, as floats
    low: float | None = None  # present values' minimum and maximum, as floats
    high: float | None = None
    pending: list[Any] = field(default_factory=list)  # blocks' value counts, not yet merged
    grids: list[tuple[int, Any]] = field(default_factory=list)  # (finite count, ranked values)
    infinite: tuple[int, int] = (0, 0)  # -inf and +inf values (not in the grids)
    distinct: set[float] | None = None  # finite values, up to the cap (None: not counted)
    distinct_cap: int = 0
    tokens: tuple[Counter[str], Counter[str]] | None = None  # (term counts, document counts)
    extra: tuple[Any, int] | None = None  # a fill value and how often it was filled in
    blocks: Any = None  # () -> iterator of the column's blocks, for the quantiles' 2nd pass
    # the finite values so far (a numpy array, its first `held_n`), while they may be held:
    # the whole column's when `hold_rows` allows, else the first block's only
    held: Any = None
    held_n: int = 0
    hold_rows: int = 0

    # -- reading ------------------------------------------------------------------------
    @classmethod
    def read(cls, name: str, ctype: str, blocks, needs: Needs, hold_rows: int = 0) -> Column:
        """Summarise a column from `blocks()`, an iterator of polars Series in row order;
        `hold_rows`: the column's rows, if its finite values may be held whole (else 0)."""
        col: Column | None = None
        for block in blocks():
            if col is None:
                col = cls(name, ctype, block.dtype, blocks=blocks, hold_rows=hold_rows)
                if needs.tokens:
                    col.tokens = (Counter(), Counter())
                if needs.distinct:
                    col.distinct, col.distinct_cap = set(), needs.distinct
            col._add_block(block, needs)
        if col is None:  # no rows at all: the caller refuses an empty training split
            raise ValueError(f"column {name!r} has no block")
        return col

    def _add_block(self, block, needs: Needs) -> None:
        import numpy as np
        import polars as pl

        self.rows += block.len()
        present = block.drop_nulls()
        if self.ctype == "float":
            present = present.drop_nans()
        self.missing += block.len() - present.len()
        if needs.counts:
            self._add_counts(present.value_counts(name="__n"))
        if self.tokens is not None:
            from .base import tokens

            terms, docs = self.tokens
            for text in block.to_list():
                found = tokens(text)
                terms.update(found)
                docs.update(set(found))
        if self.ctype not in ORDERED or present.len() == 0:
            return
        x = present.to_physical().cast(pl.Float64).to_numpy()
        mean = float(np.mean(x))
        self.moments.add(x.size, float(np.sum(x)), float(np.sum((x - mean) ** 2)))
        lo, hi = float(x.min()), float(x.max())
        self.low = lo if self.low is None else min(self.low, lo)
        self.high = hi if self.high is None else max(self.high, hi)
        finite = x[np.isfinite(x)]  # (a copy: its own, changed in place below)
        if finite.size < x.size:
            neg = int(np.count_nonzero(x == -math.inf))
            self.infinite = (self.infinite[0] + neg, self.infinite[1] + x.size - finite.size - neg)
        if self.distinct is not None and len(self.distinct) <= self.distinct_cap:
            # the first cap+1 distinct values of each block: the union has more than `cap`
            # values exactly when the column has (a block cut short already has cap+1)
            self.distinct.update(np.unique(finite)[: self.distinct_cap + 1].tolist())
        if needs.quantiles and finite.size:
            np.add(finite, 0.0, out=finite)  # -0.0 as 0.0 (see the docstring)
            # values held (no sort, no 2nd pass: `np.partition` finds the order statistics):
            # all of them when the column may be held whole, else the first block's until
            # a second block comes, when the grids are made
            n = self.held_n + finite.size
            if not self.grids and (self.held is None or n <= self.held.size):
                if self.held is None and self.hold_rows > finite.size:
                    self.held = np.empty(self.hold_rows, dtype=np.float64)
                if self.held is None:
                    self.held = finite
                else:
                    self.held[self.held_n : n] = finite
                self.held_n = n
                return
            for values in ([self.held[: self.held_n]] if self.held is not None else []) + [finite]:
                ranked = np.sort(values)
                self.grids.append((ranked.size, ranked[_grid_ranks(ranked.size)]))
            self.held, self.held_n = None, 0

    def _add_counts(self, counts) -> None:
        """Add a block's value counts; merged every MERGE_EVERY blocks (a merge per block
        would group the column's distinct values again for every block)."""
        import polars as pl

        self.pending.append(counts.with_columns(pl.col("__n").cast(pl.Int64)))
        if len(self.pending) >= MERGE_EVERY:
            self.pending = [self.counts()]

    def counts(self):
        """The present values and their counts: a polars frame (NAME, "__n")."""
        import polars as pl

        assert self.pending, "value counts were not gathered"
        if len(self.pending) > 1:
            merged = pl.concat(self.pending).group_by(self.name).agg(pl.col("__n").sum())
            self.pending = [merged]
        return self.pending[0]

    # -- imputation -------------------------------------------------------------------
    def filled(self, value) -> Column:
        """This column with its missing values replaced by `value`."""
        if value is None or self.missing == 0:
            return self
        import polars as pl

        k = self.missing
        out = replace(self, missing=0, extra=(value, k))
        # the fill as polars' fill_null makes it: an int column filled with 2.5 becomes a
        # float column, a bool one filled with "yes" a string column (apply does the same)
        fill = pl.Series(self.name, [None], dtype=self.dtype).fill_null(value)
        if self.pending:
            counts = self.counts().with_columns(pl.col(self.name).cast(fill.dtype))
            out.pending = [counts, pl.DataFrame({self.name: fill, "__n": [k]})]
        if self.tokens is not None:
            from .base import tokens

            terms, docs = Counter(self.tokens[0]), Counter(self.tokens[1])
            text = fill.cast(pl.String)[0]
            found = tokens(text)
            for t in found:
                terms[t] += k
            for t in set(found):
                docs[t] += k
            out.tokens = (terms, docs)
        if self.ctype in ("int", "float") and isinstance(value, int | float):
            v = float(value)
            out.moments = Moments(self.moments.n, self.moments.total, self.moments.m2)
            out.moments.add(k, v * k, 0.0)
            out.low = v if self.low is None else min(self.low, v)
            out.high = v if self.high is None else max(self.high, v)
            if self.distinct is not None and math.isfinite(v):
                out.distinct = self.distinct | {v}
            if not math.isfinite(v):
                neg, pos = self.infinite
                out.infinite = (neg + k, pos) if v < 0 else (neg, pos + k)
        return out

    # -- what the fits ask -------------------------------------------------------------
    @property
    def present(self) -> int:
        return self.rows - self.missing

    def value_counts(self) -> list[tuple[Any, int]]:
        """(value, count) of the present values."""
        c = self.counts()
        return list(zip(c[self.name].to_list(), c["__n"].to_list(), strict=True))

    def n_distinct(self) -> int:
        """Distinct finite values, exact up to the cap given when reading (cap+1 above)."""
        assert self.distinct is not None, "distinct values were not counted"
        return min(len(self.distinct), self.distinct_cap + 1)

    def finite_count(self) -> int:
        extra = self._extra_finite()
        return self.held_n + sum(n for n, _ in self.grids) + (extra[1] if extra else 0)

    def _extra_finite(self) -> tuple[float, int] | None:
        if self.extra is None or not isinstance(self.extra[0], int | float):
            return None
        v = float(self.extra[0]) + 0.0  # -0.0 as 0.0, as the values
        return (v, self.extra[1]) if math.isfinite(v) else None

    def quantiles(self, qs: Sequence[float], *, finite_only: bool = True) -> list[float]:
        """`numpy.quantile(x, qs)` (linear) of the present values — the finite ones, or
        all with infinities at the ends — exactly."""
        neg, pos = (0, 0) if finite_only else self.infinite
        n = self.finite_count() + neg + pos
        if n == 0:
            raise ValueError("no value to take a quantile of")
        wanted = []
        for q in qs:
            virtual = (n - 1) * q  # numpy's linear method, in its own float arithmetic
            below = math.floor(virtual)
            wanted.append((virtual, min(max(below, 0), n - 1), min(max(below + 1, 0), n - 1)))
        ranks = sorted({r for _, a, b in wanted for r in (a, b)})
        found = self._order_statistics([r - neg for r in ranks if neg <= r < n - pos])
        value = {r: found[r - neg] for r in ranks if neg <= r < n - pos}
        value.update({r: -math.inf for r in ranks if r < neg})
        value.update({r: math.inf for r in ranks if r >= n - pos})
        return [
            _lerp(value[a], value[b], virtual - math.floor(virtual)) for virtual, a, b in wanted
        ]

    def median(self) -> float:
        return self.quantiles([0.5], finite_only=False)[0]

    def temporal_median(self):
        """The median date or datetime (to the nearest unit of the column's type)."""
        import polars as pl

        return pl.Series([round(self.median())], dtype=pl.Int64).cast(self.dtype)[0]

    def _order_statistics(self, ranks: list[int]) -> dict[int, float]:
        """The finite values of these ranks (0-based, in sorted order), exactly: windows of
        values bounded by the grids, then one pass to count below and collect within."""
        import numpy as np
        import polars as pl

        if not ranks:
            return {}
        extra = self._extra_finite()
        if self.held is not None:
            return _ranked(self.held[: self.held_n], extra, ranks)
        grids = [(n, g, _grid_ranks(n)) for n, g in self.grids]
        windows = [_window(grids, extra, r) for r in ranks]
        below = [0] * len(ranks)
        inside: list[list[Any]] = [[] for _ in ranks]  # (values, counts) of each block

        def take(a) -> None:  # a block's finite values, sorted
            for i, (lo, hi) in enumerate(windows):
                start, stop = np.searchsorted(a, lo, "left"), np.searchsorted(a, hi, "right")
                below[i] += int(start)
                inside[i].append(_runs(a[start:stop]))

        for block in self.blocks():
            x = block.drop_nulls()
            if self.ctype == "float":
                x = x.drop_nans()
            a = x.to_physical().cast(pl.Float64).to_numpy()
            finite = a[np.isfinite(a)]
            take(np.sort(np.add(finite, 0.0, out=finite)))  # -0.0 as 0.0, as held
        out = {}
        for i, r in enumerate(ranks):
            lo, hi = windows[i]
            if extra is not None:
                if extra[0] < lo:
                    below[i] += extra[1]
                elif extra[0] <= hi:
                    inside[i].append((np.array([extra[0]]), np.array([extra[1]])))
            vals = np.concatenate([v for v, _ in inside[i]])
            cnts = np.concatenate([c for _, c in inside[i]])
            order = np.argsort(vals, kind="stable")
            cum = np.cumsum(cnts[order])
            at = int(np.searchsorted(cum, r - below[i], "right"))
            if not 0 <= r - below[i] < (cum[-1] if cum.size else 0):
                raise AssertionError(f"rank {r} is not in its window [{lo}, {hi}]")
            out[r] = float(vals[order][at])
        return out


def _ranked(values, extra, ranks: list[int]) -> dict[int, float]:
    """The order statistics of these ranks of `values` and `extra` (a value, a count);
    `values` (the column's own copy) is partitioned in place."""
    import numpy as np

    if extra is None:
        below, k, v = values.size, 0, 0.0  # every rank is a rank of `values`
    else:
        v, k = extra
        below = int(np.count_nonzero(values < v))  # the fill's copies come after these
    own = {r: r if r < below else r - k for r in ranks if not below <= r < below + k}
    at = sorted(set(own.values()))
    stats: dict[int, float] = {}
    # In place (no second copy). One rank, or two in a row (a median): a partition, then
    # the next one is the least value above it. More: numpy's sort is faster than a
    # partition at 3 or more ranks (measured on 8M doubles: 56 ms against 110-165 ms).
    if len(at) == 1 or (len(at) == 2 and at[1] == at[0] + 1):
        values.partition(at[0])
        stats[at[0]] = float(values[at[0]])
        if len(at) == 2:
            stats[at[1]] = float(values[at[1] :].min())
    elif at:
        values.sort()
        stats = {i: float(values[i]) for i in at}
    return {r: stats[own[r]] if r in own else float(v) for r in ranks}


def _runs(a):
    """(values, counts) of a sorted array's runs of equal values."""
    import numpy as np

    if a.size == 0:
        return a, np.zeros(0, dtype=np.int64)
    starts = np.concatenate(([0], np.flatnonzero(a[1:] != a[:-1]) + 1))
    return a[starts], np.diff(np.append(starts, a.size))


def _grid_ranks(n: int):
    import numpy as np

    return np.unique(np.linspace(0, n - 1, min(GRID, n)).round().astype(np.int64))


def _window(grids, extra, r: int) -> tuple[float, float]:
    """Values (lo, hi) with certainly at most r values below lo and more than r at or below
    hi, from each block's ranked grid (values[j] has rank ranks[j] in its block)."""
    import numpy as np

    lo, hi = -math.inf, math.inf
    candidates = np.concatenate([g for _, g, _ in grids]).tolist() if grids else []

    # at most this many values < t: in each block, the rank of its first grid value >= t
    def most_below(t: float) -> int:
        total = 0
        for n, g, ranks in grids:
            j = int(np.searchsorted(g, t, side="left"))
            total += int(ranks[j]) if j < len(g) else n
        if extra is not None and extra[0] < t:
            total += extra[1]
        return total

    # at least this many values <= t: in each block, 1 + the rank of its last grid value <= t
    def least_upto(t: float) -> int:
        total = 0
        for _, g, ranks in grids:
            j = int(np.searchsorted(g, t, side="right"))
            total += int(ranks[j - 1]) + 1 if j > 0 else 0
        if extra is not None and extra[0] <= t:
            total += extra[1]
        return total

    cands = sorted(set(candidates + ([extra[0]] if extra is not None else [])))
    # binary searches: most_below and least_upto both grow with t
    a, b = 0, len(cands)
    while a < b:
        m = (a + b) // 2
        if most_below(cands[m]) <= r:
            a = m + 1
        else:
            b = m
    if a > 0:
        lo = float(cands[a - 1])
    a, b = 0, len(cands)
    while a < b:
        m = (a + b) // 2
        if least_upto(cands[m]) > r:
            b = m
        else:
            a = m + 1
    if a < len(cands):
        hi = float(cands[a])
    return lo, hi


def _lerp(a: float, b: float, t: float) -> float:
    """numpy's `_lerp` (the linear quantile's interpolation), in the same order of operations."""
    if math.isinf(a) or math.isinf(b):  # numpy's arithmetic would give NaN (inf - inf)
        return a if a == b or t < 0.5 else b
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def blocks_of(parts, column: str, rows: int, block_rows: int = BLOCK_ROWS):
    """() -> iterator over a column of Parquet files (a file or a list of them, in row
    order) in blocks of `block_rows` rows."""
    import polars as pl

    def blocks() -> Iterator[Any]:
        lf = pl.scan_parquet(parts).select(column)
        for start in range(0, max(rows, 1), block_rows):
            yield lf.slice(start, block_rows).collect().to_series()

    return blocks
