"""A schema's range rule: the values of a column outside its [min, max]."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..core.coltypes import utc_wall_expr, utc_wall_time

EXAMPLES = 10  # the values an anomaly names as examples, at most


def out_of_range(spec: dict[str, Any], dtype: str, series, name: str) -> tuple[int, list]:
    """(values outside the schema's [min, max], the first of them, distinct, in order)
    in one partition's values of a column."""
    import polars as pl

    from ..errors import BadInput

    col = pl.col(series.name)  # (a NaN is past any bound, as polars orders it)
    if isinstance(series.dtype, pl.Datetime) and series.dtype.time_zone is not None:
        col = utc_wall_expr(col)
    lo, hi = spec.get("min"), spec.get("max")
    cannot = BadInput(
        f"the schema's min/max ({lo!r}, {hi!r}) cannot be compared with {dtype} values",
        column=name,
    )
    try:  # dates and datetimes compared as such (as text, .250 sorted before .000)
        bounds = [None if v is None else _typed_bound(v, dtype) for v in (lo, hi)]
    except (TypeError, ValueError):
        raise cannot from None
    cond = pl.lit(False)
    if bounds[0] is not None:
        cond = cond | (col < bounds[0])
    if bounds[1] is not None:
        cond = cond | (col > bounds[1])
    try:
        frame = series.to_frame().filter(cond.fill_null(False))
    except pl.exceptions.PolarsError:
        raise cannot from None
    return frame.height, frame.to_series().unique(maintain_order=True).head(EXAMPLES).to_list()


def _typed_bound(value, dtype: str):
    """A schema's min or max as a value of the column's type (dates and datetimes are
    written as ISO text; an offset is taken to UTC wall time, as ingest reads one)."""
    if dtype == "date":
        return dt.date.fromisoformat(str(value))
    if dtype == "datetime":
        return utc_wall_time(value)
    return value
