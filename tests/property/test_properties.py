"""Property tests (hypothesis): the stable hash, the CSV -> Parquet round trip, split determinism."""

from __future__ import annotations

import datetime as dt
import itertools

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlstage import ingest
from mlstage.core.hashing import (
    canonical_text,
    fmix64,
    hash_expr,
    row_hash,
    stable_hash,
    stable_hash_many,
    unit_interval,
    unit_interval_expr,
    with_row_hash,
)

_counter = itertools.count()
FAST = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def test_stable_hash_known_values():
    # xxHash64, seed 0, of the UTF-8 bytes: fixed forever (splits and hashed features depend on it).
    assert stable_hash("x") == 6665539201184043299
    assert stable_hash(1) == stable_hash("1")
    assert stable_hash(True) == stable_hash("true")
    assert canonical_text(1e-7) == "1e-7" and canonical_text(float("nan")) == "NaN"
    assert canonical_text(dt.datetime(2012, 1, 2, 3, 4, 5)) == "2012-01-02T03:04:05.000000"
    assert stable_hash(None) is None


def test_row_hash_known_values():
    # The split rule of every dataset ingested with it: fixed forever (appends rely on it).
    # fmix64 and whole rows, pinned: a change of either moves rows between splits.
    assert fmix64(1) == 0xB456BCFC34C2CB2C
    assert fmix64(0) == 0
    assert row_hash(["x", 1, 2.5, True, dt.date(2024, 1, 31), None], 0) == 9417775672792346105
    assert row_hash(["x"], 0) != row_hash(["x"], 1)  # the seed picks the multipliers
    assert row_hash([1, 2], 0) != row_hash([2, 1], 0)  # the order of the columns counts
    assert row_hash([None], 0) != row_hash([0], 0) != row_hash([0], 3)  # all zeros too
    assert row_hash([False], 0) == row_hash([0], 0)  # a column has one type: no clash
    assert row_hash([-0.0], 0) != row_hash([0.0], 0)  # as their texts differ ("-0.0")
    assert row_hash([float("nan")], 0) == row_hash([-float("nan")], 0)


def test_float_text_equals_repr_rule_across_every_magnitude():
    """The vectorised canonical text of floats against the per-value one, on a sweep of
    magnitudes from subnormals to 1e20 (where polars' printing changes notation)."""
    from mlstage.core.hashing import text_expr

    values = [0.0, -0.0, 5e-324, -5e-324, 1e-4, -1e-4, float("inf"), float("-inf")]
    for exponent in range(-325, 21):
        for mantissa in (1.0, 1.5, 9.99, 1.2345678901234567, 3.0):
            for sign in (1, -1):
                values.append(sign * mantissa * 10.0**exponent)
    df = pl.DataFrame({"v": values}, schema={"v": pl.Float64})
    got = df.lazy().select(text_expr("v", pl.Float64)).collect().to_series().to_list()
    assert got == [canonical_text(v) for v in values]


scalars = st.one_of(
    st.text(max_size=20),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.dates(),
    st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1)),
)


@FAST
@given(st.data())
def test_vectorised_hash_equals_per_value_hash(data):
    kind = data.draw(st.sampled_from(["text", "int", "float", "bool", "date", "datetime"]))
    strategy = {
        "text": st.text(max_size=20),
        "int": st.integers(min_value=-(2**63), max_value=2**63 - 1),
        "float": st.floats(allow_nan=True, allow_infinity=True),
        "bool": st.booleans(),
        "date": st.dates(),
        "datetime": st.datetimes(
            min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1)
        ),
    }[kind]
    values = data.draw(st.lists(st.one_of(st.none(), strategy), min_size=1, max_size=20))
    df = pl.DataFrame({"v": values, "w": list(range(len(values)))})
    single = df.select(hash_expr(["v"], df.schema)).to_series().to_list()
    assert single == [stable_hash(v) for v in values]
    many = df.select(hash_expr(["v", "w"], df.schema, prefix="7")).to_series().to_list()
    assert many == [
        stable_hash_many([v, w], prefix="7") for v, w in zip(values, df["w"], strict=True)
    ]
    fractions = (
        df.select(unit_interval_expr(hash_expr(["v", "w"], df.schema, prefix="7")))
        .to_series()
        .to_list()
    )
    assert fractions == [unit_interval(h) for h in many]


@st.composite
def typed_frames(draw):
    n = draw(st.integers(min_value=1, max_value=30))

    def column(strategy):
        values = draw(st.lists(st.one_of(st.none(), strategy), min_size=n, max_size=n))
        if all(v is None for v in values):
            values[0] = draw(strategy)
        return values

    safe_text = st.text(
        alphabet=st.characters(codec="utf-8", exclude_characters="\r\x00"), min_size=1, max_size=12
    )
    return pl.DataFrame(
        {
            "i": column(st.integers(min_value=-(2**62), max_value=2**62)),
            "f": column(
                st.floats(allow_nan=False, allow_infinity=False, width=64).map(
                    lambda x: x + 0.5 if x == int(x) else x
                )
            ),
            "b": column(st.booleans()),
            "s": column(safe_text.map(lambda t: "s" + t)),
            "d": column(st.dates(min_value=dt.date(1000, 1, 1))),
            "t": column(
                st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1))
            ),
        },
        schema={
            "i": pl.Int64,
            "f": pl.Float64,
            "b": pl.Boolean,
            "s": pl.String,
            "d": pl.Date,
            "t": pl.Datetime("us"),
        },
    )


@FAST
@given(typed_frames(), st.integers(min_value=-(2**70), max_value=2**70), st.booleans())
def test_vectorised_row_hash_equals_per_row_hash(df, seed, extremes):
    """with_row_hash (polars' UInt64 arithmetic: eager, lazy, streaming) against row_hash
    (Python integers), on every column type with missing values; with `extremes`, NaN of
    either sign, -0.0, inf, and the ints at the ends of 64 bits."""
    if extremes:
        import numpy as np

        specials = [float("nan"), -float("nan"), -0.0, 0.0, float("inf"), -float("inf")]
        payloads = np.array([0x7FF0000000000001, 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
        specials += payloads.view(np.float64).tolist()  # NaNs with other bits
        floats = [specials[i % len(specials)] for i in range(df.height)]
        ints = [[-(2**63), 2**63 - 1, -1, 0][i % 4] for i in range(df.height)]
        df = df.with_columns(
            pl.Series("f", floats, dtype=pl.Float64), pl.Series("i", ints, dtype=pl.Int64)
        )
    names = list(reversed(df.columns))  # any order: the frame's own is not assumed
    lazy = with_row_hash(df.lazy(), names, df.schema, seed, "h").collect()["h"].to_list()
    streamed = with_row_hash(df.lazy(), names, df.schema, seed, "h")
    streamed = streamed.collect(engine="streaming")["h"].to_list()
    eager = with_row_hash(df, names, df.schema, seed, "h")["h"].to_list()
    want = [row_hash([row[n] for n in names], seed) for row in df.iter_rows(named=True)]
    assert lazy == streamed == eager == want
    one = with_row_hash(df, ["s"], df.schema, seed, "h")["h"].to_list()
    assert one == [row_hash([v], seed) for v in df["s"]]


@FAST
@given(typed_frames())
def test_csv_to_parquet_round_trip(tmp_path, df):
    k = next(_counter)
    src = tmp_path / f"rt{k}.csv"
    df.write_csv(src)
    r = ingest([src], tmp_path / f"rt{k}", store=tmp_path / "st")
    back = pl.read_parquet(tmp_path / f"rt{k}" / "data.parquet")
    assert r.manifest["summary"]["schema"] == {
        "i": "int",
        "f": "float",
        "b": "bool",
        "s": "string",
        "d": "date",
        "t": "datetime",
    }
    assert back.equals(df)


@FAST
@given(
    st.lists(
        st.tuples(st.integers(0, 50), st.sampled_from(["a", "b", "c"])), min_size=2, max_size=60
    ),
    st.randoms(),
)
def test_hash_split_of_a_row_does_not_depend_on_other_rows_or_order(tmp_path, rows, rnd):
    k = next(_counter)
    lines = [f"{x},{y}" for x, y in rows]
    a = tmp_path / f"a{k}.csv"
    a.write_text("x,y\n" + "\n".join(lines) + "\n")
    shuffled = lines[:] + [f"{x + 1000},z" for x, _ in rows[:3]]
    rnd.shuffle(shuffled)
    b = tmp_path / f"b{k}.csv"
    b.write_text("x,y\n" + "\n".join(shuffled) + "\n")
    for src, out in ((a, f"sa{k}"), (b, f"sb{k}")):
        ingest([src], tmp_path / out, split={"train": 2, "eval": 1}, store=tmp_path / "st")

    def assignment(out):
        parts = []
        for split in ("train", "eval"):
            parts.append(
                pl.read_parquet(tmp_path / out / f"{split}.parquet").with_columns(
                    split=pl.lit(split)
                )
            )
        return {(r["x"], r["y"]): r["split"] for r in pl.concat(parts).iter_rows(named=True)}

    first, second = assignment(f"sa{k}"), assignment(f"sb{k}")
    assert all(second[key] == split for key, split in first.items())


def _mode_by_python(series):
    """The definition: most frequent, ties broken by least canonical text."""
    from collections import Counter

    counts = Counter(series.drop_nulls().to_list())
    return min(counts.items(), key=lambda vc: (-vc[1], canonical_text(vc[0])))[0]


_MODE_CASES = {
    pl.Int64: st.integers(-20, 20),
    pl.String: st.text(max_size=3),
    pl.Boolean: st.booleans(),
    pl.Date: st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)),
    pl.Datetime("us"): st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31)),
    pl.Float64: st.floats(allow_nan=False, allow_infinity=True, width=32),
}


@FAST
@given(data=st.data(), dtype=st.sampled_from(list(_MODE_CASES)))
def test_mode_imputation_counts_and_breaks_ties_as_its_definition(data, dtype):
    # featurize's mode is found in polars (a column of distinct timestamps made every
    # value a tie); it must stay the value of the definition, tie-break included.
    from mlstage.features.fitted import _mode

    values = data.draw(st.lists(_MODE_CASES[dtype], min_size=1, max_size=30))
    values += data.draw(st.lists(st.sampled_from(values), max_size=10))
    series = pl.Series("x", values, dtype=dtype)
    assert _mode(series) == _mode_by_python(series)


def test_mode_ties_of_integers_are_broken_by_their_text():
    from mlstage.features.fitted import _mode

    assert _mode(pl.Series("x", [9, 10])) == 10  # "10" < "9"
    assert _mode(pl.Series("x", [-2, -1, 5, 5, -1, -2])) == -1  # "-1" < "-2" < "5"
