"""The stable hashes of mlstage: the text hash (hashed features, crosses, `--split-key`,
and the splits of datasets ingested before the row hash) and the typed row hash (splits
by the whole row).


    stable_hash(value) = xxHash64(seed 0) of the UTF-8 bytes of canonical_text(value)

canonical_text:
    string    the string itself
    bool      "true" / "false"
    int       decimal digits, "-" for negatives
    float     the shortest text that reads back to the same double, as Python's
              repr but with the exponent's leading zeros dropped ("1e-7"), and
              "NaN", "inf", "-inf"
    date      "YYYY-MM-DD"
    datetime  "YYYY-MM-DDTHH:MM:SS.ffffff" (microseconds, no zone)
    missing   not hashed: callers give missing values their own bucket

Several values (a row, a cross) are hashed as their canonical texts joined by
U+001F (the unit separator), a missing value written as U+0000.

xxHash64 is a published, fixed algorithm (the `xxhash` C library): the same
value hashes the same in every process, on every machine, in every version of
Python, polars and mlstage. The vectorised path (`hash_expr`, over polars
columns through the `polars-hash` plugin) and the per-row path (`stable_hash`,
through the `xxhash` package) are tested equal by property tests.

The row hash splits rows by the whole row (`ingest --split` without `--split-key`) from
the typed values, without writing them as text (7x cheaper than the text hash of a row):

    row_hash(v_0..v_n-1, seed) = fmix64( S + sum_i K_i * word(v_i)  mod 2^64 )
    S   = xxHash64 of the UTF-8 bytes of "<seed>" (so that no row, all zeros included,
          hashes alike under every seed)
    K_i = xxHash64 of the UTF-8 bytes of "<seed>" U+001F "<i>", with bit 0 set
    word: string    xxHash64 (seed 0) of its UTF-8 bytes (the text hash of a string)
          bool      1 / 0
          int       the 64-bit two's complement
          float     the IEEE 754 double's bits; every NaN as 0x7FF8000000000000
          date      days since 1970-01-01, two's complement
          datetime  microseconds since 1970-01-01T00:00 (wall clock, no zone), likewise
          missing   0x9E3779B97F4A7C15
    fmix64: MurmurHash3's 64-bit finaliser (a bijection in which every input bit flips
          each output bit with probability about 1/2)

Every operation is defined on 64-bit words, so the hash is the same everywhere; the
vectorised path (`with_row_hash`, polars' wrapping UInt64 arithmetic) and the per-row
path (`row_hash`) are tested equal by property tests.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
import struct

import xxhash

SEPARATOR = "\x1f"
MISSING = "\x00"
_EXP = re.compile(r"e([+-])0*(\d)")


def canonical_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return _EXP.sub(r"e\1\2", repr(value))
    if isinstance(value, _dt.datetime):
        return value.replace(tzinfo=None).isoformat(timespec="microseconds")
    if isinstance(value, _dt.date):
        return value.isoformat()
    return str(value)


def stable_hash(value: object) -> int | None:
    text = canonical_text(value)
    return None if text is None else xxhash.xxh64_intdigest(text.encode("utf-8"))


def stable_hash_many(values: list[object], prefix: str | None = None) -> int:
    parts = [MISSING if (t := canonical_text(v)) is None else t for v in values]
    if prefix is not None:
        parts.insert(0, prefix)
    return xxhash.xxh64_intdigest(SEPARATOR.join(parts).encode("utf-8"))


def unit_interval(h: int) -> float:
    """Map a 64-bit hash to [0, 1) using its top 53 bits (exact in a double)."""
    return (h >> 11) / float(1 << 53)


# -- vectorised (polars) ---------------------------------------------------------------


def text_expr(name: str, dtype):
    """A polars expression for canonical_text of a column (null stays null)."""
    import polars as pl

    col = pl.col(name)
    if dtype == pl.String:
        return col
    if dtype == pl.Boolean:
        return col.cast(pl.String)
    if dtype.is_integer():
        return col.cast(pl.String)
    if dtype.is_float():
        return _float_text(col.cast(pl.Float64))
    if dtype == pl.Date:
        return col.dt.to_string("%Y-%m-%d")
    if isinstance(dtype, pl.Datetime):
        return col.dt.replace_time_zone(None).dt.to_string("%Y-%m-%dT%H:%M:%S%.6f")
    return col.cast(pl.String)


def _float_text(x):
    """canonical_text of a Float64 expression.

    polars prints the shortest round-trip digits as Python's repr does, and in the same
    notation from 1e-4 up ("1e-7", "1e+16", "NaN", "inf"), but positionally below 1e-4
    down to some length ("0.000015", where repr says "1.5e-05"): those are rewritten in
    exponent notation here, so the batch and per-value hashes agree on every double."""
    import polars as pl

    text = x.cast(pl.String)
    # The rewrite runs on those values only (null elsewhere, which string kernels skip):
    # a when/then would compute it for every value, 9x the cost of the cast itself. The
    # text is looked at only where the number is small: a string test on every value
    # cost 2.7x the cast.
    tiny = pl.when((x.abs() < 1e-4) & (x != 0)).then(text)
    small = pl.when(tiny.str.strip_prefix("-").str.starts_with("0.0")).then(tiny)
    body = small.str.strip_prefix("-")
    digits = body.str.strip_prefix("0.").str.strip_chars_start("0")
    zeros = body.str.len_chars() - 2 - digits.str.len_chars()
    mantissa = digits.str.slice(0, 1) + pl.when(digits.str.len_chars() > 1).then(
        pl.lit(".") + digits.str.slice(1)
    ).otherwise(pl.lit(""))
    sign = pl.when(small.str.starts_with("-")).then(pl.lit("-")).otherwise(pl.lit(""))
    exponent = sign + mantissa + pl.lit("e-") + (zeros + 1).cast(pl.String)
    return pl.coalesce(exponent, text)


def hash_expr(names: list[str], schema, prefix: str | None = None):
    """A UInt64 polars expression: stable_hash (one column) or stable_hash_many (several/prefix).

    With one column and no prefix, a missing value hashes to null.
    """
    import polars as pl
    import polars_hash  # noqa: F401

    if len(names) == 1 and prefix is None:
        text = text_expr(names[0], schema[names[0]])
    else:
        parts = [text_expr(n, schema[n]).fill_null(MISSING) for n in names]
        if prefix is not None:
            parts.insert(0, pl.lit(prefix))
        text = pl.concat_str(parts, separator=SEPARATOR)
    # Importing polars_hash registers the `nchash` namespace on every expression.
    return text.nchash.xxhash64()


def unit_interval_expr(hash_expression):
    import polars as pl

    return (hash_expression // (1 << 11)).cast(pl.Float64) / float(1 << 53)


# -- the typed row hash (splits) -------------------------------------------------------

MASK64 = (1 << 64) - 1
MISSING_WORD = 0x9E3779B97F4A7C15
NAN_WORD = 0x7FF8000000000000
_FMIX = (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53)
_EPOCH = _dt.datetime(1970, 1, 1)
_MICRO = _dt.timedelta(microseconds=1)


def row_multipliers(n: int, seed: int) -> list[int]:
    """K_0..K_{n-1} of the row hash: odd, so that each term keeps every bit of its word."""
    return [xxhash.xxh64_intdigest(f"{seed}{SEPARATOR}{i}".encode()) | 1 for i in range(n)]


def fmix64(k: int) -> int:
    k = ((k ^ (k >> 33)) * _FMIX[0]) & MASK64
    k = ((k ^ (k >> 33)) * _FMIX[1]) & MASK64
    return k ^ (k >> 33)


def value_word(value: object) -> int:
    """The 64-bit word of one typed value in the row hash."""
    if value is None:
        return MISSING_WORD
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value & MASK64
    if isinstance(value, float):
        return NAN_WORD if math.isnan(value) else struct.unpack("<Q", struct.pack("<d", value))[0]
    if isinstance(value, _dt.datetime):
        return ((value.replace(tzinfo=None) - _EPOCH) // _MICRO) & MASK64
    if isinstance(value, _dt.date):
        return (value - _EPOCH.date()).days & MASK64
    if isinstance(value, str):
        return xxhash.xxh64_intdigest(value.encode("utf-8"))
    raise TypeError(f"no row-hash word for {type(value).__name__}")


def row_offset(seed: int) -> int:
    return xxhash.xxh64_intdigest(str(seed).encode())


def row_hash(values: list[object], seed: int) -> int:
    ks = row_multipliers(len(values), seed)
    total = row_offset(seed) + sum(k * value_word(v) for k, v in zip(ks, values, strict=True))
    return fmix64(total & MASK64)


def _word_expr(name: str, dtype):
    import polars as pl
    import polars_hash  # noqa: F401  (registers the `nchash` namespace)

    col = pl.col(name)
    if dtype == pl.String:
        word = col.nchash.xxhash64()  # type: ignore[attr-defined]
    elif dtype == pl.Boolean:
        word = col.cast(pl.UInt64)
    elif dtype.is_float():
        word = col.cast(pl.Float64).fill_nan(math.nan).reinterpret(dtype=pl.UInt64)
    elif dtype.is_integer():
        word = col.cast(pl.Int64).reinterpret(dtype=pl.UInt64)
    elif dtype == pl.Date:
        word = col.cast(pl.Int32).cast(pl.Int64).reinterpret(dtype=pl.UInt64)
    elif isinstance(dtype, pl.Datetime):
        wall = col.dt.replace_time_zone(None).dt.cast_time_unit("us")
        word = wall.cast(pl.Int64).reinterpret(dtype=pl.UInt64)
    else:
        raise TypeError(f"column {name!r}: no row-hash word for {dtype}")
    return word.fill_null(pl.lit(MISSING_WORD, dtype=pl.UInt64))


def with_row_hash(frame, names: list[str], schema, seed: int, alias: str):
    """`frame` (lazy or not) with a UInt64 column `alias`: the row hash of `names`."""
    import polars as pl

    def u64(x: int):
        return pl.lit(x, dtype=pl.UInt64)

    ks = row_multipliers(len(names), seed)
    terms = [_word_expr(n, schema[n]) * u64(k) for n, k in zip(names, ks, strict=True)]
    frame = frame.with_columns(pl.sum_horizontal(u64(row_offset(seed)), *terms).alias(alias))
    # fmix64 a step at a time: each step reads its input twice, and as one expression
    # the sum would be computed 8 times (measured: 4x the whole hash's cost)
    h = pl.col(alias)
    for c in _FMIX:
        frame = frame.with_columns((h.xor(h // (1 << 33)) * u64(c)).alias(alias))
    return frame.with_columns(h.xor(h // (1 << 33)).alias(alias))
