"""featurize's fit reads a column in blocks and keeps summaries (`training_column`): its
quantiles must equal numpy's on the whole column bit for bit, its moments numpy's to
rounding, whatever the block size and however the split is partitioned."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlstage.features import training_column as tc
from mlstage.features.training_column import Column, Needs, blocks_of

FAST = settings(max_examples=60, deadline=None)

values = st.lists(
    st.one_of(
        st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
        st.sampled_from([0.0, 1.0, -2.5, 7.0]),  # ties
        st.none(),
        st.just(math.nan),
        st.sampled_from([math.inf, -math.inf]),
    ),
    min_size=1,
    max_size=300,
)
ALL = Needs(counts=True, quantiles=True, distinct=5)


def _column(
    tmp_path, xs, *, parts: int, block: int, needs: Needs = ALL, hold: bool = False
) -> Column:
    """xs written as `parts` Parquet files, read back in blocks of `block` rows; `hold`:
    its values held whole (one pass), else summarised in grids (two passes)."""
    frame = pl.DataFrame({"x": pl.Series(xs, dtype=pl.Float64)})
    files = []
    for i, chunk in enumerate(np.array_split(np.arange(len(xs)), parts)):
        if chunk.size or i == 0:
            path = tmp_path / f"p{i}.parquet"
            frame[int(chunk[0]) if chunk.size else 0 :][: chunk.size].write_parquet(path)
            files.append(path)
    blocks = blocks_of(files, "x", len(xs), block)
    return Column.read("x", "float", blocks, needs, hold_rows=len(xs) if hold else 0)


@FAST
@given(xs=values, parts=st.integers(1, 4), block=st.integers(1, 50), grid=st.integers(2, 9),
       qs=st.lists(st.floats(0, 1), min_size=1, max_size=6), hold=st.booleans())  # fmt: skip
def test_quantiles_equal_numpy_bit_for_bit(tmp_path_factory, xs, parts, block, grid, qs, hold):
    # a tiny grid and tiny blocks make every rank's window narrow: the second pass and
    # the windows' bounds are what is tested, not a sort of the whole column
    tmp = tmp_path_factory.mktemp("q")
    old, tc.GRID = tc.GRID, grid
    try:
        col = _column(tmp, xs, parts=parts, block=block, hold=hold)
        assert (col.grids == []) == (hold or col.held is not None or col.finite_count() == 0)
        finite = np.array([x for x in xs if x is not None and math.isfinite(x)])
        if finite.size == 0:
            assert col.finite_count() == 0
            return
        assert col.quantiles(qs) == np.quantile(finite, qs).tolist()
        present = np.array([x for x in xs if x is not None and not math.isnan(x)])
        expected = float(np.quantile(present, 0.5))
        if np.isinf(present).any():  # numpy's lerp can give NaN (inf - inf); a fill cannot
            assert not math.isnan(col.median())
        else:
            assert col.median() == expected
    finally:
        tc.GRID = old


@FAST
@given(xs=values, block=st.integers(1, 50), fill=st.floats(-10, 10), hold=st.booleans())
def test_a_filled_column_is_the_column_with_its_missing_values_replaced(
    tmp_path_factory, xs, block, fill, hold
):
    tmp = tmp_path_factory.mktemp("f")
    old, tc.GRID = tc.GRID, 3
    try:
        col = _column(tmp, xs, parts=2, block=block, hold=hold).filled(fill)
        full = np.array([fill if x is None or math.isnan(x) else x for x in xs])
        assert col.missing == 0 and col.rows == len(xs)
        finite = full[np.isfinite(full)]
        if finite.size == 0:
            assert col.finite_count() == 0
            return
        assert col.quantiles([0, 0.3, 0.5, 1]) == np.quantile(finite, [0, 0.3, 0.5, 1]).tolist()
        assert col.n_distinct() == min(np.unique(finite).size, 6)
        assert col.low == full.min() and col.high == full.max()
        if np.isfinite(full).all():
            assert col.moments.mean == pytest.approx(full.mean(), rel=1e-9, abs=1e-9)
            assert col.moments.std == pytest.approx(full.std(), rel=1e-7, abs=1e-6)
        counts = dict(col.value_counts())
        assert counts.get(fill, 0) >= len(xs) - sum(
            1 for x in xs if x is not None and not math.isnan(x)
        )
    finally:
        tc.GRID = old


@FAST
@given(xs=st.lists(st.floats(-1e9, 1e9), min_size=1, max_size=200), block=st.integers(1, 40))
def test_the_summary_does_not_depend_on_the_partitions(tmp_path_factory, xs, block):
    tmp = tmp_path_factory.mktemp("p")
    one = _column(tmp / "a" if (tmp / "a").mkdir() is None else tmp, xs, parts=1, block=block)
    three = _column(tmp / "b" if (tmp / "b").mkdir() is None else tmp, xs, parts=3, block=block)
    for attr in ("rows", "missing", "low", "high", "infinite", "distinct"):
        assert getattr(one, attr) == getattr(three, attr)
    assert (one.moments.n, one.moments.total, one.moments.m2) == (
        three.moments.n, three.moments.total, three.moments.m2)  # fmt: skip
    if one.finite_count():
        assert one.quantiles([0.1, 0.5, 0.9]) == three.quantiles([0.1, 0.5, 0.9])


@FAST
@given(xs=st.lists(st.floats(-1e9, 1e9), min_size=1, max_size=200), block=st.integers(1, 40))
def test_held_and_summarised_columns_agree(tmp_path_factory, xs, block):
    """The one-pass path (values held) and the two-pass path (grids) give the same
    summary, quantiles asked twice included (the held values are partitioned in place)."""
    tmp = tmp_path_factory.mktemp("h")
    held = _column(tmp, xs, parts=2, block=block, hold=True)
    grids = _column(tmp, xs, parts=2, block=block, hold=False)
    assert held.grids == [] and held.held_n == grids.finite_count()
    for attr in ("rows", "missing", "low", "high", "infinite", "distinct"):
        assert getattr(held, attr) == getattr(grids, attr)
    if held.finite_count():
        for qs in ([0.1, 0.5, 0.9], [0.0, 0.25, 1.0], [0.5]):
            assert held.quantiles(qs) == grids.quantiles(qs)


@FAST
@given(
    xs=st.lists(st.sampled_from([-0.0, 0.0, 1.0, -1.0, None]), min_size=1, max_size=120),
    block=st.integers(1, 40),
    qs=st.lists(st.floats(0, 1), min_size=1, max_size=5),
)
def test_a_quantile_that_is_a_zero_is_positive_on_every_path(tmp_path_factory, xs, block, qs):
    """-0.0 and 0.0 are equal to numpy, so which one a rank found depended on the values'
    order (the path, the calls before): every zero quantile is 0.0, asked in any order."""
    tmp = tmp_path_factory.mktemp("z")
    cols = [_column(tmp, xs, parts=2, block=block, hold=h) for h in (True, False)]
    if not cols[0].finite_count():
        return
    for col in cols:
        for ask in (qs, [0.5], list(reversed(qs))):
            got = col.quantiles(ask)
            assert all(math.copysign(1, v) == 1 for v in got if v == 0), got
    assert [str(v) for v in cols[0].quantiles(qs)] == [str(v) for v in cols[1].quantiles(qs)]


def test_a_column_of_one_value_repeated_keeps_a_small_window(tmp_path):
    # 200,000 copies of one value and a few others: the window holding the median is
    # counted as (value, count) pairs, not held value by value
    xs = [5.0] * 200_000 + [1.0, 2.0, 9.0]
    col = _column(tmp_path, xs, parts=3, block=10_000)
    assert col.quantiles([0, 0.5, 1]) == [1.0, 5.0, 9.0]
    assert col.n_distinct() == 4
