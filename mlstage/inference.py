"""Type inference for text sources: which of the six types a column of strings holds.

A column is the narrowest type that every non-missing value of the sample
parses as, tried in this order: bool, int, float, date, datetime, string.
Dates and datetimes are recognised in the formats below; the format found is
kept so the whole file is parsed with it.
"""

from __future__ import annotations

from dataclasses import dataclass

BOOL_TEXT = {"true": True, "false": False}

DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d.%m.%Y", "%m/%d/%Y", "%d/%m/%Y")
DATETIME_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%Y-%m-%dT%H:%M:%S%.f%:z",
    "%Y-%m-%d %H:%M:%S%.f%:z",
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
            return col.str.to_date(ctype.format, strict=strict)
        case "datetime":
            e = col.str.to_datetime(ctype.format, strict=strict, time_unit="us")
            if ctype.format and "%z" in ctype.format:
                e = e.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            return e
    raise ValueError(ctype.name)


def infer_column(values) -> ColumnType | None:
    """Infer the type of a polars String Series (missing values already null).

    None when the sample has no value at all (the type is unknown).
    """
    import polars as pl

    s = values.drop_nulls()
    if s.len() == 0:
        return None
    frame = s.to_frame("v")

    def all_parse(ctype: ColumnType) -> bool:
        try:
            parsed = frame.select(parse_expr("v", ctype, strict=False)).to_series()
        except pl.exceptions.PolarsError:
            return False
        return parsed.null_count() == 0

    if s.str.to_lowercase().is_in(list(BOOL_TEXT)).all():
        return ColumnType("bool")
    for name in ("int", "float"):
        if all_parse(ColumnType(name)):
            return ColumnType(name)
    for fmt in DATE_FORMATS:
        if all_parse(ColumnType("date", fmt)):
            return ColumnType("date", fmt)
    for fmt in DATETIME_FORMATS:
        if all_parse(ColumnType("datetime", fmt)):
            return ColumnType("datetime", fmt)
    return ColumnType("string")


def widen(a: ColumnType, b: ColumnType) -> ColumnType | None:
    """The type that holds both, for columns matched across files; None on a conflict."""
    if a == b:
        return a
    if {a.name, b.name} == {"int", "float"}:
        return ColumnType("float")
    return None
