"""mlstage's six column types and their polars counterparts."""

from __future__ import annotations

TYPE_NAMES = ("int", "float", "bool", "string", "date", "datetime")


def polars_type(name: str):
    import polars as pl

    return {
        "int": pl.Int64,
        "float": pl.Float64,
        "bool": pl.Boolean,
        "string": pl.String,
        "date": pl.Date,
        "datetime": pl.Datetime("us"),
    }[name]


def type_name(dtype) -> str | None:
    """The mlstage type of a polars dtype, or None when it has none."""
    import polars as pl

    if dtype == pl.Boolean:
        return "bool"
    if dtype.is_integer():
        return "int"
    if dtype.is_float() or isinstance(dtype, pl.Decimal):
        return "float"
    if dtype in (pl.String, pl.Categorical, pl.Null) or isinstance(dtype, pl.Enum | pl.Categorical):
        return "string"
    if dtype == pl.Date:
        return "date"
    if isinstance(dtype, pl.Datetime):
        return "datetime"
    return None
