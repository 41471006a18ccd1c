"""Small Parquet partitions read whole, once: read a column at a time, each read parses
the file's footer again, whose size grows with the columns (a 200-row table of 3,000
columns: 9 s of footers). Larger files, and small ones past the budget, stay paths, read
a column at a time (memory holds a column, not the table)."""

from __future__ import annotations

import os

HOLD_FILE_BYTES = 16 << 20  # a partition file up to this size may be read whole
HOLD_DECODED_BYTES = 256 << 20  # the decoded size of the small parts held at once, at most


def held(parts: list) -> list:
    """The parts with the small ones read whole (polars DataFrames), while their decoded
    size, as the footers give it, stays within the budget."""
    import polars as pl
    import pyarrow.parquet as pq

    budget, out = HOLD_DECODED_BYTES, []
    for p in parts:
        if isinstance(p, pl.DataFrame) or os.path.getsize(p) > HOLD_FILE_BYTES:
            out.append(p)
            continue
        meta = pq.ParquetFile(p).metadata
        size = meta.num_rows * meta.num_columns * 8  # decoded: 8 bytes a value, at least
        if size <= budget:
            budget -= size
            p = pl.read_parquet(p)
        out.append(p)
    return out
