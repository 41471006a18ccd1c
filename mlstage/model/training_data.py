"""A features artifact's split as training arrays: the feature matrix, the label, a
column (sample weights), read a column at a time."""

from __future__ import annotations

from pathlib import Path


def matrix(path: list[Path], columns: list[str]):
    """Features as one float32 C-ordered array, filled a column at a time (one copy of the data)."""
    import numpy as np
    import polars as pl

    n = pl.scan_parquet(path).select(pl.len()).collect().item()
    X = np.empty((n, len(columns)), dtype=np.float32)
    for j, col in enumerate(columns):
        X[:, j] = column(path, col).to_numpy()
    return X


def column(path: list[Path], col: str):
    """One column of the split's files, as a polars Series."""
    import polars as pl

    return pl.read_parquet(path, columns=[col]).to_series()


def labelled(path: list[Path], columns: list[str], label: str):
    """(X, y, rows left out) for the rows of a split that have a label (missing: null, or
    NaN in a float label). y keeps the label's type (numpy would make an int label with
    nulls float, and its classes 0.0 and 1.0)."""

    from ..core.missing import missing_as_null

    y = column(path, label)
    keep = y.to_frame().select(missing_as_null(label, y.dtype).is_not_null()).to_series()
    X = matrix(path, columns)
    dropped = int(keep.len() - keep.sum())
    if dropped:
        X, y = X[keep.to_numpy()], y.filter(keep)
    return X, y.to_numpy(), dropped, keep.to_numpy()
