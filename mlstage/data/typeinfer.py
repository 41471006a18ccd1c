"""Type inference for text sources: which of the six types a column of strings holds.

A column is the narrowest type that every non-missing value of the sample
parses as, tried in this order: bool, int, float, date, datetime, string.
Dates and datetimes are recognised in the formats below; the format found is
kept so the whole file is parsed with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BOOL_TEXT = {"true": True, "false": False}

DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d.%m.%Y", "%m/%d/%Y", "%d/%m/%Y")
DATETIME_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    # a UTC offset: Z, +02:00, +0200 or -05, mixed in one column (%#z takes each)
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S%.f",
    "%Y/%m/%d %H:%M",
    "%m/%d/%Y %H:%M:%S%.f",
    "%m/%d/%Y %H:%M",
)


@dataclass(frozen=True)
class ColumnType:
    name: str  # one of types.TYPE_NAMES
    format: str | None = None  # strptime format for date/datetime read from text

    def as_json(self) -> dict:
        return {"type": self.name, **({"format": self.format} if self.format else {})}


def has_offset(fmt: str) -> bool:
    """Whether a strptime format reads a UTC offset (%z, %:z or %#z)."""
    return re.search(r"%[:#]?z", fmt) is not None


def parse_expr(column: str, ctype: ColumnType, *, strict: bool):
    """A polars expression turning a string column into `ctype` (null stays null)."""
    import polars as pl

    col = pl.col(column)
    match ctype.name:
        case "string":
            return col
        case "int":
            return col.str.to_integer(strict=strict)
        case "float":
            return col.cast(pl.Float64, strict=strict)
        case "bool":
            lowered = col.str.to_lowercase()
            if strict:
                return lowered.replace_strict(BOOL_TEXT, return_dtype=pl.Boolean)
            return lowered.replace_strict(BOOL_TEXT, default=None, return_dtype=pl.Boolean)
        case "date":
            return col.str.to_date(ctype.format, strict=strict, cache=False)
        case "datetime":
            # cache=False: the cache only pays off for repeated values and costs on unique ones.
            e = col.str.to_datetime(ctype.format, strict=strict, time_unit="us", cache=False)
            if ctype.format and has_offset(ctype.format):  # an instant: its UTC wall time
                from ..core.coltypes import utc_wall_expr

                e = utc_wall_expr(e)
            return e
    raise ValueError(ctype.name)


CANDIDATES = (
    ColumnType("int"),
    ColumnType("float"),
    *(ColumnType("date", f) for f in DATE_FORMATS),
    *(ColumnType("datetime", f) for f in DATETIME_FORMATS),
)


def infer_columns(sample) -> dict[str, ColumnType | None]:
    """Infer the type of every String column of a sample frame (missing values already null).

    None for a column with no value in the sample (its type is unknown). The
    candidates are first tried on the first rows, then only the survivors on
    the whole sample: two polars queries however many columns there are.
    """
    import polars as pl

    names = [c for c, t in sample.schema.items() if t == pl.String]
    survivors = _fitting(sample.head(64), {c: list(CANDIDATES) for c in names})
    fits = _fitting(sample, survivors)
    present = sample.select(pl.col(c).drop_nulls().len() for c in names).row(0) if names else ()
    return {
        c: None if n == 0 else (fits[c][0] if fits[c] else ColumnType("string"))
        for c, n in zip(names, present, strict=True)
    }


def _fitting(frame, candidates: dict[str, list[ColumnType]]) -> dict[str, list[ColumnType]]:
    """For each column, the candidate types that every non-missing value parses as."""
    import polars as pl

    bools = [
        c
        for c in candidates
        if ColumnType("bool") in candidates[c] or candidates[c] == list(CANDIDATES)
    ]
    checks = [
        pl.col(c)
        .str.to_lowercase()
        .is_in(list(BOOL_TEXT))
        .or_(pl.col(c).is_null())
        .all()
        .alias(f"{c}\x00b")
        for c in bools
    ]
    for c, cands in candidates.items():
        for k, cand in enumerate(cands):
            if cand.name == "bool":
                continue
            bad = pl.col(c).is_not_null() & parse_expr(c, cand, strict=False).is_null()
            if cand.name == "float":  # a whole number past int64 (a 20-digit id): as a float
                # it would lose its last digits without a word, so the column stays text
                bad = bad | (
                    pl.col(c).str.contains(r"^[+-]?\d+$")
                    & pl.col(c).str.to_integer(strict=False).is_null()
                )
            checks.append(bad.any().alias(f"{c}\x00{k}"))
    if not checks:
        return {c: [] for c in candidates}
    row = frame.select(checks).row(0, named=True)
    out = {}
    for c, cands in candidates.items():
        ok = [ColumnType("bool")] if row.get(f"{c}\x00b") else []
        out[c] = ok + [
            cand for k, cand in enumerate(cands) if cand.name != "bool" and not row[f"{c}\x00{k}"]
        ]
    return out


def widen(a: ColumnType, b: ColumnType) -> ColumnType | None:
    """The type that holds both, for columns matched across files; None on a conflict."""
    if a == b:
        return a
    if {a.name, b.name} == {"int", "float"}:
        return ColumnType("float")
    if a.name == b.name and not _conflict(a.format or "", b.format or ""):
        return a  # dates or datetimes written two ways: each file reads its own
    return None


def _conflict(f: str, g: str) -> bool:
    """Whether two files' formats disagree on what a text means: month/day against
    day/month (01/02/2020 reads both ways: one file holds the other's proof)."""
    order = lambda x: "md" if x.startswith("%m/%d") else "dm" if x.startswith("%d/%m") else x  # noqa: E731
    return {order(f), order(g)} == {"md", "dm"}
