"""One definition of a missing value, used by every stage and both prediction paths:
null, or NaN in a float column (a NaN is never a value to learn from or to compare)."""

from __future__ import annotations

import math

from ..errors import BadInput

# Text that stands for a missing value wherever text is read: files (ingest adds --null
# markers), CSV and JSON request bodies, --row and --vary values.
DEFAULT_NULLS = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None")


def missing_as_null(column: str, dtype):
    """The column with NaN made null when it is a float column; a datetime column with a
    time zone (a dataset ingested before offsets were read as UTC wall time, as every
    datetime now is) as its UTC wall time, so it meets the naive datetimes of a model."""
    import polars as pl

    x = pl.col(column)
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        from .coltypes import utc_wall_expr

        return utc_wall_expr(x)
    return x.fill_nan(None) if dtype is not None and dtype.is_float() else x


def is_missing(value) -> bool:
    """The one-value form (serving, what-if): None or a float NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def none_if_missing(value):
    return None if is_missing(value) else value


def drop_unlabelled(frame, label: str, where: str):
    """(rows with a label, how many rows had none): a missing label (null, or NaN in a
    float column) cannot be scored or learnt from, so such rows are left out and counted."""
    import sys

    keep = missing_as_null(label, frame.schema[label]).is_not_null()
    labelled = frame.filter(keep)
    dropped = frame.height - labelled.height
    if labelled.height == 0:
        raise BadInput(
            f"no row has a label ({frame.height} rows, all missing)", file=where, column=label
        )
    if dropped:
        sys.stderr.write(f"warning: {where}: {dropped} rows without a label ({label!r}) left out\n")
    return labelled, dropped
