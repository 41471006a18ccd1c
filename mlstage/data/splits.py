"""A dataset's splits: their files, and which split a stage reads — one rule each.

- `training_split`: `train` (or the name asked for), else the only split;
- `eval_split`: the split asked for, else `eval`, else the only split;
- `choose_splits`: the split asked for, else every split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import BadInput, opt


def splits_of(path: Path, manifest: dict[str, Any]) -> dict[str, Path]:
    """Split name -> Parquet file of a dataset (or features) artifact, in manifest order."""
    names = manifest["summary"].get("splits") or {}
    files = {
        f["path"][: -len(".parquet")]: path / f["path"]
        for f in manifest["files"]
        if f["path"].endswith(".parquet")
    }
    ordered = [n for n in names if n in files] + [n for n in files if n not in names]
    return {n: files[n] for n in ordered}


def choose_splits(available: dict[str, Path], wanted: str | None, ref: str) -> dict[str, Path]:
    if wanted is None:
        return available
    if wanted not in available:
        raise BadInput(
            f"no split {wanted!r}; the dataset has: {', '.join(available)}", file=str(ref)
        )
    return {wanted: available[wanted]}


def training_split(available: dict[str, Path], ref: str, name: str = "train") -> str:
    """The `train` split, else the only split, else bad input."""
    if name in available:
        return name
    if len(available) == 1:
        return next(iter(available))
    raise BadInput(
        f"no {name!r} split and more than one split ({', '.join(available)}); say which",
        file=str(ref),
    )


def eval_split(splits: dict[str, Path], wanted: str | None, ref: str) -> str:
    if wanted is not None:
        if wanted not in splits:
            raise BadInput(f"no split {wanted!r}; the dataset has: {', '.join(splits)}", file=ref)
        return wanted
    if "eval" in splits:
        return "eval"
    if len(splits) == 1:
        return next(iter(splits))
    raise BadInput(
        f"no 'eval' split and more than one split ({', '.join(splits)}); say which with {opt('split')}",
        file=ref,
    )
