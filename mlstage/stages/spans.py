"""Spans: `ingest NEW... --append DATASET` — new files joined to a dataset as a new version
that shares its partitions (ExampleGen's spans, without re-reading what is there).

The new rows are split by the dataset's own rule and follow its old partitions, so each
split holds exactly the rows one `ingest` of every file would give it; `stats` merges the
cached statistics of the partitions it has seen (`validation.partition_cache`).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from ..core.engine import Engine, engine_for
from ..data.conversion import ALGORITHM, SPLIT_HASHES, source_inputs, write_dataset
from ..data.sources import expand_sources
from ..errors import BadInput, opt
from ..store.store import Store, store_for
from .base import StagePlan, StageResult, as_output, run_stage


def append(
    sources: list[str | Path],
    base: str | Path,
    out: str | Path | None,
    *,
    window: int | str | None = None,
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
    included), dropping the partitions of older ones: N (an int, or digits) the newest N
    spans, "Nd" or "Nw" the spans dated within N days (weeks) of the newest, a span's
    date read from its files' names (`span_date`). A split by rank (`--split-order`)
    cannot be extended: the rank of every old row would change."""
    from ..data.splits import splits_of
    from ..store.refs import load_input

    window = parse_span_window(window)
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
    summary0 = base_manifest["summary"]
    # a window of days needs every span dated: said at once, before any file is read
    old_spans = _spans(summary0, None)
    old_dates = _span_dates(old_spans, window)
    known = summary0.get("sources", []) + summary0.get("dropped", [])
    # an object in a bucket BASE holds already, unchanged (size, etag), is not downloaded
    # (an empty incoming folder or prefix is nothing new, not an error: a loop appends
    # its folder on every run, before any file has arrived too)
    srcs = expand_sources(
        [str(s) for s in sources], p["format"], st.root / "tmp", empty_folders=True,
        known={src["path"]: src for src in known},
    )  # fmt: skip
    notes = [] if srcs else [f"{', '.join(map(str, sources))}: no new file"]
    try:
        params = {**p, "append": True, "window": window}
        inputs, hashing = source_inputs(srcs, st, in_background=False)
        assert isinstance(inputs, list)  # hashed now: a source already in BASE is left out
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
        keep: list[bool] = []
        if fresh_srcs:
            new_span = {"sources": [{"path": s.name} for s, _ in fresh_srcs]}
            dates = old_dates + _span_dates([new_span], window)
            keep = kept_spans(len(old_spans) + 1, window, dates)
            notes += _window_notes(dates, keep, window)
            if dates:  # the dates decide what is kept: part of the fingerprint
                params["span_dates"] = [d.isoformat() for d in dates]
            if not keep[-1]:
                fresh_srcs = []  # dated before the window: nothing new after all
        if not fresh_srcs:
            if out is not None and _same_place(out, base, base_path):
                # every file is in the dataset already: it is up to date (a rerun in a loop)
                return StageResult(
                    base_manifest, as_output(out), up_to_date=True, dry_run=dry_run, notes=notes
                )
            raise BadInput(
                f"{opt('append')}: nothing to append (every file given is in {base} already,"
                " or none was given)",
                file=str(base),
            )
        if p.get("split_hash", "text") not in SPLIT_HASHES:  # made by a newer mlstage
            raise BadInput(
                f"{opt('append')}: {base} splits rows by the rule {p['split_hash']!r}, which this"
                f" mlstage does not know (it knows {', '.join(SPLIT_HASHES)}); upgrade mlstage"
                " to append to it",
                file=str(base_path / "manifest.json"),
            )
        news, inputs = [s for s, _ in fresh_srcs], [i for _, i in fresh_srcs]
        plan = StagePlan(
            "ingest", "dataset", ALGORITHM, params, [base_in, *inputs],
            reads=[str(s.path) for s in news if s.name != "-"],
        )  # fmt: skip
        old = splits_of(base_path, base_manifest)
        splits = [(n, w) for n, w in p["splits"]]

        def produce(tmp: Path) -> dict[str, Any]:
            import polars as pl

            from ..data.splits import PART, file_names

            new = tmp / ".span"
            new.mkdir()
            summary = write_dataset(
                news, new, p["null_values"], dict(schema), splits, p["split_key"], None, p["seed"],
                p["infer_rows"], p["partition_rows"], engine_for(engine),
                split_hash=p.get("split_hash", "text"), order=list(schema),
                like=pl.read_parquet_schema(next(f for sp in old.values() for f in sp.parts)),
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
                        | ({"etag": s.etag} if s.etag else {})
                        for s, i in zip(news, plan.resolved_inputs()[1:], strict=True)
                    ],
                    "rows": summary["rows"],
                    "parts": {name: len(f) for name, f in fresh.items()},
                }
            ]
            dropped = [span for span, k in zip(spans, keep, strict=True) if not k]
            kept = [span for span, k in zip(spans, keep, strict=True) if k]
            counts = {}
            for name, split in old.items():
                parts, every = [], iter(olds[name] + fresh[name])  # in span order
                for span, k in zip(spans, keep, strict=True):
                    mine = [next(every) for _ in range(span["parts"].get(name, 0))]
                    parts += mine if k else []
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
                # the dataset the spans grew from (BASE's root, or BASE): a loop tells by
                # it whether its first data changed and the spans must start again
                "root": summary0.get("root", base_manifest["id"]),
                # sources of spans the window dropped: never appended again
                "dropped": summary0.get("dropped", [])
                + [src for span in dropped for src in span["sources"]],
            }

        try:
            result = run_stage(plan, produce, out_path, store=st, force=force, dry_run=dry_run)
            result.notes = notes
            return result
        finally:
            if hashing is not None:
                hashing.shutdown(wait=False, cancel_futures=True)
    finally:
        for s in srcs:
            if s.spooled:  # stdin or an s3:// object, copied into the store's tmp/
                s.path.unlink(missing_ok=True)


DAYS = re.compile(r"^([0-9]+)([dw])$")
# a date in a file's path: 2026-12-01, 20261201, 2026/12/01 (or _ between the fields)
DATE = re.compile(r"(?<![0-9])([0-9]{4})([-_/]?)([0-9]{2})\2([0-9]{2})(?![0-9])")


def parse_span_window(window: int | str | None) -> int | str | None:
    """`--window`: N spans (an int), or N days as "Nd" ("2w" and "14d" are both "14d":
    one spelling per window, so one id)."""
    if window is None:
        return None
    text = str(window).strip()
    if re.fullmatch(r"[0-9]+", text) and int(text) >= 1:
        return int(text)
    m = DAYS.match(text)
    if m and int(m.group(1)) >= 1:
        return f"{int(m.group(1)) * (7 if m.group(2) == 'w' else 1)}d"
    raise BadInput(
        f"{opt('window')} {window}: give a number of spans (7) or of days or weeks (7d, 2w)"
    )


def span_date(span: dict[str, Any]) -> dt.date | None:
    """A span's date: the date nearest the end of its files' paths (a daily file
    `incoming/2026-12-01.csv`, `20261201.csv` or `2026/12/01/part.csv`; a date in a
    folder or bucket name above counts only for a file whose name has none), the latest
    of its files'; None when none has one."""
    found = []
    for src in span["sources"]:
        dates = []
        for m in DATE.finditer(src["path"]):
            try:
                dates.append(dt.date(int(m.group(1)), int(m.group(3)), int(m.group(4))))
            except ValueError:  # 2026-13-45: digits, not a date
                continue
        if dates:
            found.append(dates[-1])
    return max(found, default=None)


def _span_dates(spans: list[dict[str, Any]], window: int | str | None) -> list[dt.date]:
    """Each span's date for a window of days ([] for any other window); a span without
    one is exit 2, naming its first file."""
    if not isinstance(window, str):
        return []
    dates = []
    for span in spans:
        date = span_date(span)
        if date is None:
            first = span["sources"][0]["path"] if span["sources"] else "(no file)"
            raise BadInput(
                f"{opt('window')} {window}: a span has no date in its files' names; a window"
                " of days needs every span dated, the first one too (name daily files"
                " incoming/2026-12-01.csv, or keep the newest N spans: --window N)",
                file=first,
            )
        dates.append(date)
    return dates


def kept_spans(count: int, window: int | str | None, dates: list[dt.date]) -> list[bool]:
    """Which of `count` spans (oldest first) a window keeps: the newest N, or those dated
    within N days of the newest span's date (`dates`), that day counted as the first."""
    if window is None:
        return [True] * count
    if isinstance(window, int):
        return [i >= count - window for i in range(count)]
    days = int(window[:-1])
    newest = max(dates)
    return [(newest - d).days < days for d in dates]


def _window_notes(dates: list[dt.date], keep: list[bool], window) -> list[str]:
    """What a window drops, said: a file named with a wrong date must not pass unseen."""
    if window is None or all(keep):
        return []
    if not keep[-1]:
        return [f"the new files are dated {dates[-1]}, before the window ({window} back from"
                f" {max(dates)}): dropped as they arrived, nothing appended"]  # fmt: skip
    dropped = (
        [str(d) for d, k in zip(dates, keep, strict=True) if not k]
        if dates
        else [f"{keep.count(False)} span(s)"]
    )
    text = f"the window ({window}) drops the oldest spans: {', '.join(dropped)}"
    if not any(keep[:-1]) and dates:
        text += f"; every older span is dropped: is {dates[-1]}, the new files' date, right?"
    return [text]


def _same_place(out: str | Path, base: str | Path, base_path: Path) -> bool:
    """Whether OUT is where BASE was read from (a folder, or the same s3:// prefix)."""
    from ..core.s3url import as_s3

    if as_s3(out) is not None or as_s3(base) is not None:
        return as_s3(out) == as_s3(base)
    return Path(out).resolve() == base_path.resolve()


def _spans(summary: dict[str, Any], parts: dict[str, list[Path]] | None) -> list[dict[str, Any]]:
    """The spans a dataset is made of, oldest first: a dataset never appended to is one,
    holding all its (non-empty) partitions."""
    if "spans" in summary:
        return list(summary["spans"])
    return [
        {
            "sources": summary.get("sources", []),
            "rows": summary["rows"],
            "parts": {name: len(files) for name, files in (parts or {}).items()},
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
