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


# Every datetime mlstage holds is naive and means UTC: an instant with an offset or a
# zone is taken to its UTC wall time, wherever it comes in.
def utc_wall_time(value):
    """An ISO date-time (with Z, an offset, or none) or a datetime, as naive UTC."""
    import datetime as dt

    t = (
        value
        if isinstance(value, dt.datetime)
        else dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    )
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo else t


def utc_wall_expr(expr):
    """A polars expression of an aware datetime column, as naive UTC."""
    return expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
