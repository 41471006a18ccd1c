"""Spans: `ingest NEW... --append DATASET` — new files joined to a dataset as a new version
that shares its partitions (ExampleGen's spans, without re-reading what is there).

The new rows are split by the dataset's own rule and follow its old partitions, so each
split holds exactly the rows one `ingest` of every file would give it; `stats` merges the
cached statistics of the partitions it has seen (`validation.partition_cache`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.engine import Engine, engine_for
from ..data.conversion import ALGORITHM, source_inputs, write_dataset
from ..data.sources import expand_sources
from ..errors import BadInput, opt
from ..store.store import Store, store_for
from .base import StagePlan, StageResult, run_stage


def append(
    sources: list[str | Path],
    base: str | Path,
    out: str | Path | None,
    *,
    window: int | None = None,
    engine: str | Engine | None = None,
    store: str | Path | Store | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> StageResult:
    """A new version of dataset BASE with SOURCES' rows added as new partitions (a span).

    The new rows are read as BASE's were (its formats, missing markers, column types,
    splits and seed) and each split's new rows follow its old partitions, which the new
    version shares byte for byte: `stats` merges the statistics it already has of them
    and profiles only the new span. Sources BASE holds already (by sha256) are left out,
    so a loop may pass every file it has: with none new and OUT the folder of BASE, BASE
    is up to date. `window` keeps the newest spans only (the new one
    included), dropping the partitions of older ones. A split by rank (`--split-order`)
    cannot be extended: the rank of every old row would change."""
    from ..data.splits import splits_of
    from ..store.refs import load_input

    if window is not None and window < 1:
        raise BadInput(f"{opt('window')} {window}: keep at least 1 span")
    out_path = Path(out) if out is not None else None
    st = store_for(store, out_path)
    base_path, base_manifest, base_in = load_input(st, str(base), "data", ("dataset",))
    p = base_manifest["params"]
    if p.get("split_order"):
        raise BadInput(
            f"{opt('append')}: {base} is split by rank of {p['split_order']!r}; new rows would"
            " change every old row's rank (ingest the whole data again)",
            file=str(base),
        )
    schema = base_manifest["summary"]["schema"]
    srcs = expand_sources([str(s) for s in sources], p["format"], st.root / "tmp")
    try:
        params = {**p, "append": True, "window": window}
        inputs, hashing = source_inputs(srcs, st, in_background=False)
        assert isinstance(inputs, list)  # hashed now: a source already in BASE is left out
        summary0 = base_manifest["summary"]
        known = summary0.get("sources", []) + summary0.get("dropped", [])
        have = {src["sha256"] for src in known}
        by_name = {src["path"]: src["sha256"] for src in known}
        for s, i in zip(srcs, inputs, strict=True):
            if by_name.get(s.name, i.id) != i.id:
                # its old rows are in the dataset: appending it again would keep both
                raise BadInput(
                    f"{opt('append')}: {s.name} is in {base} with other contents; a file"
                    " must not change once appended (write new data under a new name, or"
                    " ingest everything again)",
                    file=s.name,
                )
        fresh_srcs = [(s, i) for s, i in zip(srcs, inputs, strict=True) if i.id not in have]
        if not fresh_srcs:
            if out is not None and _same_place(out, base, base_path):
                # every file is in the dataset already: it is up to date (a rerun in a loop)
                return StageResult(base_manifest, base_path, up_to_date=True, dry_run=dry_run)
            raise BadInput(
                f"{opt('append')}: every source is in {base} already; nothing to append",
                file=str(base),
            )
        news, inputs = [s for s, _ in fresh_srcs], [i for _, i in fresh_srcs]
        plan = StagePlan(
            "ingest", "dataset", ALGORITHM, params, [base_in, *inputs],
            reads=[str(s.path) for s in news if s.name != "-"],
        )  # fmt: skip
        old = splits_of(base_path, base_manifest)
        splits = [(n, w) for n, w in p["splits"]]

        def produce(tmp: Path) -> dict[str, Any]:
            from ..data.splits import PART, file_names

            new = tmp / ".span"
            new.mkdir()
            summary = write_dataset(
                news, new, p["null_values"], dict(schema), splits, p["split_key"], None, p["seed"],
                p["infer_rows"], p["partition_rows"], engine_for(engine), list(schema),
            )  # fmt: skip
            extra = [c for c in summary["schema"] if c not in schema]
            if extra:
                raise BadInput(
                    f"the new sources have a column {base} does not have; a span has the"
                    " dataset's columns",
                    column=extra[0],
                )
            written = {f.name: f for f in new.iterdir()}
            # every part's rows, read once from its metadata: empty parts are left out
            rows = {f: _rows(f) for f in [*(f for sp in old.values() for f in sp.parts),
                                          *written.values()]}  # fmt: skip
            olds = {name: [f for f in split.parts if rows[f]] for name, split in old.items()}
            fresh = {
                name: [written[n] for n in sorted(written) if rows[written[n]] and (
                    n == f"{name}.parquet" or (PART.match(n) and PART.match(n)["split"] == name))]
                for name in old
            }  # fmt: skip
            spans = _spans(base_manifest["summary"], olds) + [
                {
                    "sources": [
                        {"path": s.name, "bytes": s.path.stat().st_size, "sha256": i.id}
                        for s, i in zip(news, plan.resolved_inputs()[1:], strict=True)
                    ],
                    "rows": summary["rows"],
                    "parts": {name: len(f) for name, f in fresh.items()},
                }
            ]
            dropped, kept = (spans[:-window], spans[-window:]) if window else ([], spans)
            counts = {}
            for name, split in old.items():
                skip = sum(span["parts"].get(name, 0) for span in dropped)
                parts = olds[name][skip:] + fresh[name]
                if not parts:  # empty: an empty file with the columns' types, as ingest writes
                    import polars as pl

                    empty = pl.scan_parquet(split.parts[0]).head(0).collect()
                    empty.write_parquet(tmp / f"{name}.parquet")
                targets = file_names(name, len(parts)) if parts else []
                for f, target in zip(parts, targets, strict=True):
                    if f.parent == new:
                        f.rename(tmp / target)
                    else:
                        _link(f, tmp / target)
                counts[name] = sum(rows[f] for f in parts)
            for f in new.iterdir():
                f.unlink()
            new.rmdir()
            return {
                "rows": sum(counts.values()),
                "columns": len(schema),
                "splits": counts,
                "schema": schema,
                "sources": [src for span in kept for src in span["sources"]],
                "spans": kept,
                # sources of spans the window dropped: never appended again
                "dropped": summary0.get("dropped", [])
                + [src for span in dropped for src in span["sources"]],
            }

        try:
            return run_stage(plan, produce, out_path, store=st, force=force, dry_run=dry_run)
        finally:
            if hashing is not None:
                hashing.shutdown(wait=False, cancel_futures=True)
    finally:
        for s in srcs:
            if s.spooled:  # stdin or an s3:// object, copied into the store's tmp/
                s.path.unlink(missing_ok=True)


def _same_place(out: str | Path, base: str | Path, base_path: Path) -> bool:
    """Whether OUT is where BASE was read from (a folder, or the same s3:// prefix)."""
    from ..core.s3url import as_s3

    if as_s3(out) is not None or as_s3(base) is not None:
        return as_s3(out) == as_s3(base)
    return Path(out).resolve() == base_path.resolve()


def _spans(summary: dict[str, Any], parts: dict[str, list[Path]]) -> list[dict[str, Any]]:
    """The spans a dataset is made of, oldest first: a dataset never appended to is one,
    holding all its (non-empty) partitions."""
    if "spans" in summary:
        return list(summary["spans"])
    return [
        {
            "sources": summary.get("sources", []),
            "rows": summary["rows"],
            "parts": {name: len(files) for name, files in parts.items()},
        }
    ]


def _rows(path: Path) -> int:
    import polars as pl

    return pl.scan_parquet(path).select(pl.len()).collect().item()


def _link(src: Path, dst: Path) -> None:
    """The same bytes under a new name: a hard link where the file system allows it."""
    import os
    import shutil

    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
