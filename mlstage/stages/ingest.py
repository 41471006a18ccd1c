"""`ingest`: raw files to a versioned Parquet dataset, typed, optionally split.

Splits are deterministic and stable as data grows:
- `split_key`: by the stable hash of the seed and the key columns, so a key
  always lands in the same split whatever other rows arrive;
- `split_order`: by rank of a column (oldest rows to the first split), ties
  kept together, rows with no value in the last split;
- otherwise by the stable hash of the seed and the whole row (identical rows
  land together, so duplicates never leak across splits).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.artifact import Input
from ..core.missing import DEFAULT_NULLS
from ..data.options import parse_splits, parse_types
from ..data.sources import (
    FORMATS,
    Source,
    diagnose_structure,
    diagnose_values,
    expand_sources,
    infer_types,
    scan_typed,
)
from ..data.splits import DEFAULT_PARTITION_ROWS, MAX_PARTITION_ROWS, MIN_PARTITION_ROWS
from ..data.typeinfer import ColumnType, widen
from ..errors import BadInput, DiskFull, is_disk_full, opt
from ..store.store import Store, store_for
from .base import StagePlan, StageResult, run_stage

ALGORITHM = 3  # 2: JSON values typed as CSV; small floats hashed in exponent notation (as
# documented); 3: splits of more than `partition_rows` rows written as partitions


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
) -> StageResult:
    """Read SOURCES into a dataset artifact at OUT (None: only into the store)."""
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
    existing = out_path is not None and (out_path / "manifest.json").exists()
    inputs, hashing = _source_inputs(srcs, st, in_background=not existing and not dry_run)
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

        size = sum(s.path.stat().st_size for s in srcs)
        # polars streams the conversion in one call: a spinner with the time, not a bar
        with task(f"ingest: {len(srcs)} source(s), {size / 1e6:,.1f} MB → Parquet"):
            summary = _write_dataset(
                srcs, tmp, nulls, type_overrides, splits, keys, split_order, seed, infer_rows,
                partition_rows,
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


def place_partitions(folder: Path, tmp: Path, name: str, partition_rows: int, schema) -> int:
    """Move a split's files, written by polars into `folder`, into the payload as
    `NAME.parquet` (one file) or `NAME.part-NNNNN.parquet`; returns the split's rows.

    Every part but the last holds exactly `partition_rows` rows, so the layout (and the
    artifact id) depends on the rows alone, not on the threads that wrote them; should
    polars ever cut elsewhere, the split is cut again here by row number."""
    import polars as pl

    from ..data.splits import file_names

    written = sorted(folder.glob("*.parquet")) if folder.exists() else []
    sizes = [pl.scan_parquet(f).select(pl.len()).collect().item() for f in written]
    if not written:  # an empty split: one empty file with the columns' types
        pl.DataFrame(schema=schema).write_parquet(tmp / f"{name}.parquet")
    elif any(n != partition_rows for n in sizes[:-1]):
        whole = pl.scan_parquet(written)
        names = file_names(name, -(-sum(sizes) // partition_rows))
        for i, target in enumerate(names):
            whole.slice(i * partition_rows, partition_rows).sink_parquet(tmp / target)
        for f in written:
            f.unlink()
    else:
        for f, target in zip(written, file_names(name, len(written)), strict=True):
            f.rename(tmp / target)
    if folder.exists():
        folder.rmdir()
    return sum(sizes)


def _source_inputs(srcs: list[Source], st: Store, *, in_background: bool):
    """The sources as lineage inputs (role `source`, id = sha256 of the file).

    When no output exists yet to compare with, the work will be done anyway:
    large files are then hashed in a thread while the data is converted
    (hashlib releases the GIL), rather than before.
    """
    cached = [st.cached_sha256(s.path) for s in srcs]
    if not in_background or all(cached):
        return [
            Input("source", d or st.file_sha256(s.path), s.name)
            for s, d in zip(srcs, cached, strict=True)
        ], None
    from concurrent.futures import ThreadPoolExecutor

    from ..core.fsutil import sha256_file

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlstage-hash")
    futures = [
        None if d else pool.submit(sha256_file, s.path) for s, d in zip(srcs, cached, strict=True)
    ]

    def resolve() -> list[Input]:
        inputs = []
        for s, d, f in zip(srcs, cached, futures, strict=True):
            if d is None:
                d = f.result()
                st.cache_sha256(s.path, d)  # the store's connection belongs to this thread
            inputs.append(Input("source", d, s.name))
        return inputs

    return resolve, pool


def _unify(
    srcs: list[Source], per_source: list[dict[str, ColumnType | None]]
) -> dict[str, ColumnType]:
    """One type per column across files matched by name; a conflict is bad input."""
    unified: dict[str, tuple[ColumnType, str] | None] = {}
    for src, types in zip(srcs, per_source, strict=True):
        for col, t in types.items():
            seen = unified.get(col)
            if seen is None:
                unified[col] = (t, src.name) if t is not None else None
                continue
            if t is None:
                continue
            wider = widen(seen[0], t)
            if wider is None:
                raise BadInput(
                    f'column "{col}" is {seen[0].name} in {seen[1]} but {t.name} in {src.name};'
                    f" pass {opt('types', '--type')} {col}=TYPE to read both the same way"
                )
            unified[col] = (wider, seen[1])
    return {c: (v[0] if v else ColumnType("string")) for c, v in unified.items()}


def _write_dataset(
    srcs, tmp: Path, nulls, type_overrides, splits, keys, split_order, seed, infer_rows,
    partition_rows,
) -> dict[str, Any]:  # fmt: skip
    import polars as pl

    from ..core.coltypes import polars_type
    from ..core.hashing import hash_expr, unit_interval_expr

    per_source = [infer_types(s, nulls, infer_rows, type_overrides) for s in srcs]
    types = _unify(srcs, per_source)
    for col in list(type_overrides) + keys + ([split_order] if split_order else []):
        if col not in types:
            raise BadInput(f'no column "{col}" in the data; columns are: {", ".join(types)}')

    frames = []
    for src, own in zip(srcs, per_source, strict=True):
        lf = scan_typed(src, {c: types[c] for c in own}, nulls)
        frames.append(
            lf.select(
                pl.col(c) if c in own else pl.lit(None, dtype=polars_type(t.name)).alias(c)
                for c, t in types.items()
            )
        )
    data = pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]
    schema = {c: polars_type(t.name) for c, t in types.items()}

    if not splits:
        targets = {"data": data}
    else:
        total = sum(w for _, w in splits)
        if split_order:
            position = ((pl.col(split_order).rank("min") - 1) / pl.len()).fill_null(1.0)
        else:
            position = unit_interval_expr(hash_expr(keys or list(types), schema, prefix=str(seed)))
        cut = pl.when(pl.lit(False)).then(pl.lit(0, dtype=pl.UInt8))
        acc = 0.0
        for i, (_, w) in enumerate(splits[:-1]):
            acc += w / total
            cut = cut.when(position < acc).then(pl.lit(i, dtype=pl.UInt8))
        tagged = data.with_columns(
            cut.otherwise(pl.lit(len(splits) - 1, dtype=pl.UInt8)).alias("__split")
        )
        targets = {
            name: tagged.filter(pl.col("__split") == i).drop("__split")
            for i, (name, _) in enumerate(splits)
        }

    scratch = tmp / ".partitions"
    folders = {name: scratch / name for name in targets}
    try:
        # one pass over the sources, each split streamed into files of partition_rows rows
        pl.collect_all([
            lf.sink_parquet(pl.PartitionBy(folders[name], max_rows_per_file=partition_rows,
                                           approximate_bytes_per_file=None),
                            mkdir=True, lazy=True)
            for name, lf in targets.items()
        ])  # fmt: skip
    except (pl.exceptions.PolarsError, OSError) as e:
        if is_disk_full(e):  # the machine's fault, not the sources'
            raise DiskFull(tmp) from None
        for src in srcs:
            problem = diagnose_values(src, types, nulls)
            if problem is not None:
                raise problem from None
        if len(srcs) == 1:
            raise diagnose_structure(srcs[0], nulls, e) from None
        for src in srcs:
            problem = diagnose_structure(src, nulls, e)
            if "cannot read as" not in str(problem):
                raise problem from None
        raise BadInput(f"cannot read the sources: {str(e).strip().splitlines()[0]}") from None

    counts = {
        name: place_partitions(folders[name], tmp, name, partition_rows, targets[name].collect_schema())
        for name in targets
    }  # fmt: skip
    scratch.rmdir()
    rows = sum(counts.values())
    if rows == 0:
        raise BadInput(
            "the sources hold no data rows", file=srcs[0].name if len(srcs) == 1 else None
        )
    return {
        "rows": rows,
        "columns": len(types),
        "splits": counts,
        "schema": {c: t.name for c, t in types.items()},
    }
