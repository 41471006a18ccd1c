"""A dataset's splits: their files, and which split a stage reads — one rule each.

- `training_split`: `train` (or the name asked for), else the only split;
- `eval_split`: the split asked for, else `eval`, else the only split;
- `choose_splits`: the split asked for, else every split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadInput, CorruptArtifact, opt

# A split of more rows than a partition holds is several files, `NAME.part-00000.parquet`,
# `NAME.part-00001.parquet`, ... in row order (5 digits or more); a smaller one stays
# `NAME.parquet`. Partitions hold at least MIN_PARTITION_ROWS rows (but the last): the
# statistics of a partition are a summary of 501 points, which fewer rows would make
# coarser than the merge's documented error.
MIN_PARTITION_ROWS = 1_000
MAX_PARTITION_ROWS = 2**32 - 1  # polars counts a file's rows in 32 bits
DEFAULT_PARTITION_ROWS = 1_000_000
PART = re.compile(r"^(?P<split>.+)\.part-(?P<n>\d{5,})\.parquet$")


def part_name(split: str, n: int) -> str:
    return f"{split}.part-{n:05d}.parquet"


def file_names(split: str, parts: int) -> list[str]:
    """The payload files of a split of `parts` partitions: `NAME.parquet` for one."""
    return [f"{split}.parquet"] if parts == 1 else [part_name(split, i) for i in range(parts)]


def is_part_name(name: str) -> bool:
    """Whether `name` (a split name) would read as a partition of another split."""
    return PART.match(f"{name}.parquet") is not None


@dataclass(frozen=True)
class Split:
    """One split's Parquet files, in row order (one, unless it is partitioned)."""

    name: str
    parts: list[Path]

    def __str__(self) -> str:  # for messages: the file, or the pattern of its parts
        if len(self.parts) == 1:
            return str(self.parts[0])
        return str(self.parts[0].parent / f"{self.name}.part-*.parquet")


def splits_of(path: Path, manifest: dict[str, Any]) -> dict[str, Split]:
    """Split name -> its files, of a dataset (or features) artifact, in manifest order."""
    names = manifest["summary"].get("splits") or {}
    parts: dict[str, list[tuple[int, Path]]] = {}
    whole: set[str] = set()
    for f in manifest["files"]:
        name = f["path"]
        if not name.endswith(".parquet"):
            continue
        m = PART.match(name)
        key, n = (m["split"], int(m["n"])) if m else (name[: -len(".parquet")], -1)
        if m is None:
            whole.add(key)
        parts.setdefault(key, []).append((n, path / name))
    mixed = [k for k in whole if len(parts[k]) > 1]
    if mixed:
        raise CorruptArtifact(
            f"{path}: split {mixed[0]!r} is both {mixed[0]}.parquet and partitions; mlstage"
            " never writes both"
        )
    files = {k: Split(k, [p for _, p in sorted(v)]) for k, v in parts.items()}
    ordered = [n for n in names if n in files] + [n for n in files if n not in names]
    return {n: files[n] for n in ordered}


def choose_splits(available: dict[str, Split], wanted: str | None, ref: str) -> dict[str, Split]:
    if wanted is None:
        return available
    if wanted not in available:
        raise BadInput(
            f"no split {wanted!r}; the dataset has: {', '.join(available)}", file=str(ref)
        )
    return {wanted: available[wanted]}


def training_split(available: dict[str, Split], ref: str, name: str = "train") -> str:
    """The `train` split, else the only split, else bad input."""
    if name in available:
        return name
    if len(available) == 1:
        return next(iter(available))
    raise BadInput(
        f"no {name!r} split and more than one split ({', '.join(available)}); say which",
        file=str(ref),
    )


def eval_split(splits: dict[str, Split], wanted: str | None, ref: str) -> str:
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
