"""`ingest`: raw files to a versioned Parquet dataset, typed, optionally split.

Splits are deterministic and stable as data grows:
- `split_key`: by the text hash of the seed and the key columns, so a key
  always lands in the same split whatever other rows arrive (and whatever type its
  column is read as: int 1 and string "1" hash alike);
- `split_order`: by rank of a column (oldest rows to the first split), ties
  kept together, rows with no value in the last split;
- otherwise by the row hash of the seed and the whole row's typed values (identical
  rows land together, so duplicates never leak across splits).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.engine import Engine, engine_for
from ..core.missing import DEFAULT_NULLS
from ..data.conversion import ALGORITHM, SPLIT_HASH, source_inputs, write_dataset
from ..data.options import parse_splits, parse_types
from ..data.sources import (
    FORMATS,
    expand_sources,
)
from ..data.splits import DEFAULT_PARTITION_ROWS, MAX_PARTITION_ROWS, MIN_PARTITION_ROWS
from ..errors import BadInput, opt
from ..store.store import Store, store_for
from .base import StagePlan, StageResult, run_stage


def ingest(
    sources: list[str | Path],
    out: str | Path | None,
    *,
    format: str = "auto",
    null: list[str] | tuple[str, ...] = (),
    types: dict[str, str] | list[str] | None = None,
    split: dict[str, float] | list[str] | None = None,
    split_key: list[str] | str | None = None,
    split_order: str | None = None,
    seed: int = 0,
    infer_rows: int = 10_000,
    partition_rows: int = DEFAULT_PARTITION_ROWS,
    store: str | Path | Store | None = None,
    force: bool = False,
    dry_run: bool = False,
    engine: str | Engine | None = None,
) -> StageResult:
    """Read SOURCES into a dataset artifact at OUT (None: only into the store); `engine` (a
    Dask scheduler's address, `core.engine`) converts each source on one of its workers."""
    if format != "auto" and format not in FORMATS:
        raise BadInput(f"{opt('format')} {format!r}: choose from auto, {', '.join(FORMATS)}")
    type_overrides = parse_types(types)
    splits = parse_splits(split)
    keys = [split_key] if isinstance(split_key, str) else list(split_key or [])
    if keys and split_order:
        raise BadInput(f"{opt('split_key')} and {opt('split_order')} exclude each other")
    if (keys or split_order) and not splits:
        raise BadInput(
            f"{opt('split_key')} and {opt('split_order')} need {opt('split')} NAME=WEIGHT ..."
        )
    if infer_rows < 1:
        raise BadInput(f"{opt('infer_rows')} must be at least 1")
    if not MIN_PARTITION_ROWS <= partition_rows <= MAX_PARTITION_ROWS:
        raise BadInput(
            f"{opt('partition_rows')} {partition_rows}: a partition holds from"
            f" {MIN_PARTITION_ROWS:,} to {MAX_PARTITION_ROWS:,} rows"
        )
    nulls = list(dict.fromkeys([*DEFAULT_NULLS, *null]))
    out_path = Path(out) if out is not None else None
    st = store_for(store, out_path)

    srcs = expand_sources([str(s) for s in sources], format, st.root / "tmp")
    params: dict[str, Any] = {
        "format": format,
        "null_values": nulls,
        "types": type_overrides,
        "splits": [[n, w] for n, w in splits],
        "split_key": keys,
        "split_order": split_order,
        "seed": seed,
        "infer_rows": infer_rows,
        "partition_rows": partition_rows,
    }
    if splits and not keys and not split_order:
        # (only these: the ids of other datasets did not change). A `--split-key` keeps
        # the text hash, under which a key's value hashes alike as int 1 and string "1":
        # a key column whose inferred type changes as data grows keeps its rows in place.
        params["split_hash"] = SPLIT_HASH
    existing = out_path is not None and (out_path / "manifest.json").exists()
    inputs, hashing = source_inputs(srcs, st, in_background=not existing and not dry_run)
    plan = StagePlan(
        "ingest",
        "dataset",
        ALGORITHM,
        params,
        inputs,
        reads=[str(s.path) for s in srcs if s.name != "-"],
    )

    def produce(tmp: Path) -> dict[str, Any]:
        from ..core.progress import task

        eng = engine_for(engine)
        size = sum(s.path.stat().st_size for s in srcs)
        # polars streams the conversion in one call: a spinner with the time, not a bar
        with task(f"ingest: {len(srcs)} source(s), {size / 1e6:,.1f} MB → Parquet"):
            summary = write_dataset(
                srcs, tmp, nulls, type_overrides, splits, keys, split_order, seed, infer_rows,
                partition_rows, eng, split_hash=params.get("split_hash", "text"),
            )  # fmt: skip
        summary["sources"] = [
            {"path": s.name, "bytes": s.path.stat().st_size, "sha256": i.id}
            for s, i in zip(srcs, plan.resolved_inputs(), strict=True)
        ]
        return summary

    try:
        return run_stage(plan, produce, out_path, store=st, force=force, dry_run=dry_run)
    finally:
        if hashing is not None:
            hashing.shutdown(wait=False, cancel_futures=True)
        for s in srcs:
            if s.spooled:  # stdin or an s3:// object, copied into the store's tmp/
                s.path.unlink(missing_ok=True)
