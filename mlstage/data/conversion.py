"""Sources to a dataset's split files: typed, split by a stable rule, cut into partitions.

What `ingest` and its spans (`ingest --append`) write, shared by both stages: the
sources as lineage inputs, one streamed pass from the sources to each split's
partitions (on a cluster engine, each source converted by a worker first), and the
placing of the partitions under their names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.artifact import Input
from ..core.engine import Engine
from ..core.fsutil import remove_tree
from ..errors import BadInput, DiskFull, is_disk_full, opt
from ..store.store import Store
from .sources import Source, diagnose_structure, diagnose_values, infer_types, scan_typed
from .typeinfer import ColumnType, widen

ALGORITHM = 4  # 2: JSON values typed as CSV; small floats hashed in exponent notation (as
# documented); 3: splits of more than `partition_rows` rows written as partitions; 4: UTC
# offsets of every form read as UTC wall time, whole numbers past int64 read as text
# How a dataset's rows are split by hash: its params' "split_hash", "typed" for a
# whole-row split; absent: "text", the rule of `--split-key` and of datasets ingested
# before the typed row hash, which their spans keep
SPLIT_HASH = "typed"
SPLIT_HASHES = ("text", "typed")


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


def source_inputs(srcs: list[Source], st: Store, *, in_background: bool):
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
                assert f is not None  # a future for every file without a cached hash
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


def write_dataset(
    srcs, tmp: Path, nulls, type_overrides, splits, keys, split_order, seed, infer_rows,
    partition_rows, engine: Engine, split_hash: str, order: list[str] | None = None,
    like: dict | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The sources into `tmp` as split files; `order`: the columns' order (a span takes
    its dataset's: the whole-row hash that splits rows reads the columns in order);
    `split_hash`: "typed" (`hashing.row_hash`), or "text" (`hashing.stable_hash_many`,
    the rule of datasets ingested before the typed one, which their spans keep); `like`:
    the Parquet schema of the dataset a span is appended to (its datetimes' zone)."""
    import polars as pl

    from ..core.coltypes import polars_type
    from ..core.hashing import hash_expr, unit_interval_expr, with_row_hash

    if split_hash not in SPLIT_HASHES:  # a dataset made by a newer mlstage
        raise BadInput(
            f"split rule {split_hash!r} is unknown to this mlstage (it knows"
            f" {', '.join(SPLIT_HASHES)}); upgrade mlstage to append to this dataset"
        )
    per_source = [infer_types(s, nulls, infer_rows, type_overrides) for s in srcs]
    types = _unify(srcs, per_source)
    if order is not None:
        types = {c: types[c] for c in order if c in types} | types
    for col in list(type_overrides) + keys + ([split_order] if split_order else []):
        if col not in types:
            raise BadInput(
                f'no column "{col}" in the data; columns are: {", ".join(types)}',
                file=srcs[0].name if len(srcs) == 1 else None,
            )

    typing = [_source_types(own, types) for own in per_source]
    given = {  # the columns whose type was not inferred: the remedy a bad value names
        c: "a span is read as its dataset's column is (fix the value, or ingest anew)"
        if order is not None
        else f"its type was given ({opt('types', '--type')} {c}=...): fix the value or give another"
        for c in type_overrides
    }
    converted = None if engine.local else _convert_on(engine, srcs, typing, nulls, given, tmp)
    frames = []
    for i, (src, own) in enumerate(zip(srcs, per_source, strict=True)):
        if converted is None:
            lf = scan_typed(src, typing[i], nulls)
        else:  # read and typed by a worker, exactly as scan_typed would here
            lf = pl.scan_parquet(converted[i])
        frames.append(
            lf.select(
                pl.col(c) if c in own else pl.lit(None, dtype=polars_type(t.name)).alias(c)
                for c, t in types.items()
            )
        )
    data = pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]
    schema = {c: polars_type(t.name) for c, t in types.items()}
    # a span of a dataset whose datetimes were stored time-zone aware (UTC, an older
    # mlstage): its new rows stored alike, so that a split's parts share one schema
    aware = {c: t for c, t in (like or {}).items() if isinstance(t, pl.Datetime) and t.time_zone}
    if aware:
        data = data.with_columns(
            pl.col(c).dt.replace_time_zone("UTC").dt.convert_time_zone(t.time_zone or "UTC")
            for c, t in aware.items()
        )
        schema |= aware

    if not splits:
        targets = {"data": data}
    else:
        # the working columns' names: none of the data's (a user's "__split" is kept)
        tag, hashed = (_unused(n, schema) for n in ("__split", "__hash"))
        total = sum(w for _, w in splits)
        if split_order:
            position = ((pl.col(split_order).rank("min") - 1) / pl.len()).fill_null(1.0)
        elif split_hash == "typed":
            data = with_row_hash(data, keys or list(types), schema, seed, hashed)
            position = unit_interval_expr(pl.col(hashed))
        else:
            position = unit_interval_expr(hash_expr(keys or list(types), schema, prefix=str(seed)))
        cut: Any = pl.when(pl.lit(False)).then(pl.lit(0, dtype=pl.UInt8))
        acc = 0.0
        for i, (_, w) in enumerate(splits[:-1]):
            acc += w / total
            cut = cut.when(position < acc).then(pl.lit(i, dtype=pl.UInt8))
        tagged = data.with_columns(
            cut.otherwise(pl.lit(len(splits) - 1, dtype=pl.UInt8)).alias(tag)
        )
        targets = {
            name: tagged.filter(pl.col(tag) == i).drop(tag, hashed, strict=False)
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
        for src, own_types in zip(srcs, typing, strict=True):
            problem = diagnose_values(src, own_types, nulls, given)
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
    if converted is not None:
        remove_tree(tmp / ".sources")
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


def _source_types(
    own: dict[str, ColumnType | None], types: dict[str, ColumnType]
) -> dict[str, ColumnType]:
    """How one source's columns are read: as the dataset's types, but a date or datetime
    with the source's own format (files writing times two ways, `widen`)."""
    return {
        c: t if t is not None and t.name == types[c].name and t.format else types[c]
        for c, t in own.items()
    }


def _unused(name: str, columns) -> str:
    """`name`, or it with underscores added until no column has it."""
    while name in columns:
        name += "_"
    return name


def _convert_on(engine: Engine, srcs, typing, nulls, given, tmp: Path) -> list[Path]:
    """Each source read, parsed and typed by a worker of a cluster `engine` into a Parquet
    file under `tmp` (by path: storage the workers share), for the split pass here."""
    import dataclasses
    import functools

    folder = (tmp / ".sources").absolute()
    folder.mkdir()
    jobs = [
        (dataclasses.replace(src, path=src.path.absolute()), own, folder / f"{i:05d}.parquet")
        for i, (src, own) in enumerate(zip(srcs, typing, strict=True))
    ]  # fmt: skip
    return engine.map(functools.partial(convert_source, nulls=nulls, given=given), jobs)


def convert_source(
    job: tuple[Source, dict[str, ColumnType], Path],
    nulls: list[str],
    given: dict[str, str] | None = None,
) -> Path:
    """On a worker: one source to a typed Parquet file; a value or a structure that does
    not read is the same BadInput (file, line, column) as in a local run."""
    import polars as pl

    src, types, target = job
    try:
        scan_typed(src, types, nulls).sink_parquet(target)
    except (pl.exceptions.PolarsError, OSError) as e:
        if is_disk_full(e):
            raise DiskFull(target.parent) from None
        problem = diagnose_values(src, types, nulls, given)
        raise (problem or diagnose_structure(src, nulls, e)) from None
    return target
