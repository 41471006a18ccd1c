"""Reading raw sources: naming them, telling their format, inferring and parsing types.

Text formats (CSV, TSV, JSON, JSON Lines) are read as strings and parsed with
the expressions of `inference`, so the sample used for inference and the whole
file are parsed by one definition. Parquet and Arrow IPC keep their own types,
mapped onto the six mlstage types.
"""

from __future__ import annotations

import codecs
import csv
import glob
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.coltypes import polars_type, type_name, utc_wall_expr
from ..errors import BadInput, opt
from .jsonread import first_bad_json_line, read_json_records
from .typeinfer import ColumnType, infer_columns, parse_expr

FORMATS = ("csv", "tsv", "parquet", "json", "jsonl", "ipc")
TEXT_FORMATS = ("csv", "tsv", "json", "jsonl")
EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".arrow": "ipc",
    ".ipc": "ipc",
    ".feather": "ipc",
}


@dataclass(frozen=True)
class Source:
    path: Path  # the file read (stdin and s3:// objects are first spooled to a file)
    name: str  # as the user named it: "-" for stdin
    format: str
    spooled: bool = False  # a copy in the spool, removed when ingest ends
    etag: str | None = None  # an s3:// object's etag, for `ingest --append` to skip it later

    @property
    def line_offset(self) -> int:
        """Line number of the first data row (after a header line for CSV/TSV)."""
        return 2 if self.format in ("csv", "tsv") else 1


def expand_sources(
    specs: list[str],
    fmt: str,
    spool_dir: Path,
    *,
    empty_folders: bool = False,
    known: dict[str, dict[str, Any]] | None = None,
) -> list[Source]:
    """Files, globs, directories (every file of a known format below) and '-' for stdin.
    With `empty_folders`, a directory or an s3:// prefix ending in '/' that holds no
    such file gives none (a loop's incoming folder before anything arrived); otherwise
    it is an error, as a pattern that matches nothing always is. An s3:// object that
    `known` (source entries by name) says is unchanged (size and etag) is left out
    without downloading it: `ingest --append` has it already."""
    if not specs:
        raise BadInput("no source given")
    if specs.count("-") > 1:
        raise BadInput("'-' (stdin) can be given only once")
    out: list[Source] = []
    for spec in specs:
        if spec == "-":
            spool_dir.mkdir(parents=True, exist_ok=True)
            path = spool_dir / f"stdin-{os.getpid()}"
            with open(path, "wb") as spool:
                shutil.copyfileobj(sys.stdin.buffer, spool, 1 << 20)
            out.append(Source(path, "-", _format_of(path, fmt, sniff=True, name="-"), True))
            continue
        if spec.startswith("s3://"):
            from .s3sources import download_source, matching_objects, unchanged

            extensions = None if fmt != "auto" else set(EXTENSIONS)
            for url, size, etag in matching_objects(spec, extensions, empty_ok=empty_folders):
                if known is not None and unchanged(size, etag, known.get(str(url))):
                    continue
                try:
                    local, etag = download_source(url, spool_dir)
                    out.append(
                        Source(
                            local,
                            str(url),
                            _format_of(local, fmt, sniff=False, name=str(url)),
                            True,
                            etag,
                        )
                    )
                except BaseException:
                    for s in out:
                        if s.spooled:
                            s.path.unlink(missing_ok=True)
                    raise
            continue
        p = Path(spec)
        if p.is_dir():
            files = sorted(
                f
                for f in p.rglob("*")
                if f.is_file()
                and (fmt != "auto" or f.suffix.lower() in EXTENSIONS)
                and not f.name.startswith(".")
            )
            # an empty folder may be "nothing yet"; files of no known format are a mistake
            # (the folder is walked again only when it gave no file)
            if not files and not (
                empty_folders
                and not any(f.is_file() and not f.name.startswith(".") for f in p.rglob("*"))
            ):
                raise BadInput("directory holds no file of a known format", file=spec)
        elif p.exists():
            files = [p]
        elif glob.has_magic(spec):
            files = sorted(Path(f) for f in glob.glob(spec, recursive=True) if Path(f).is_file())
            if not files:
                raise BadInput("no file matches this pattern", file=spec)
        else:
            raise BadInput("no such file or directory", file=spec)
        for f in files:
            out.append(Source(f, str(f), _format_of(f, fmt, sniff=False, name=str(f))))
    return out


def _format_of(path: Path, fmt: str, *, sniff: bool, name: str) -> str:
    if fmt != "auto":
        return fmt
    ext = EXTENSIONS.get(path.suffix.lower())
    if ext and not sniff:
        return ext
    with open(path, "rb") as f:
        head = f.read(4096)
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"ARROW1") or head.startswith(b"\xff\xff\xff\xff"):
        return "ipc"
    stripped = head.lstrip()
    if stripped.startswith(b"["):
        return "json"
    if stripped.startswith(b"{"):
        return "jsonl"
    if sniff:
        first = head.split(b"\n", 1)[0]
        return "tsv" if b"\t" in first and b"," not in first else "csv"
    raise BadInput(f"cannot tell the format from the file name; pass {opt('format')}", file=name)


# -- reading ---------------------------------------------------------------------------


def _check_not_empty(src: Source) -> None:
    if src.path.stat().st_size == 0:
        raise BadInput("file is empty", file=src.name)


def _csv_options(src: Source, nulls: list[str]) -> dict:
    return {
        "separator": "\t" if src.format == "tsv" else ",",
        "infer_schema": False,
        "null_values": nulls,
        "raise_if_empty": True,
        "truncate_ragged_lines": False,
    }


def _raw_lazy(src: Source, nulls: list[str], sample_rows: int | None = None):
    """The source as a LazyFrame: strings for text formats, native types otherwise."""
    import polars as pl

    if src.format in ("csv", "tsv"):
        return pl.scan_csv(src.path, n_rows=sample_rows, **_csv_options(src, nulls))
    if src.format == "jsonl":
        # Every value as its JSON text, typed afterwards by the same inference as CSV: the
        # reader's own inference would read a column as int from its first rows and then
        # truncate 17.5 to 17. The names come from a schema pass over the whole file.
        names = pl.scan_ndjson(src.path, infer_schema_length=None).collect_schema()
        nested = [c for c, t in names.items() if t.is_nested() or isinstance(t, pl.Struct)]
        if nested:
            raise BadInput(
                "holds nested values (lists or objects); mlstage reads flat records",
                file=src.name,
                column=nested[0],
            )
        lf = pl.scan_ndjson(src.path, schema={c: pl.String for c in names}, n_rows=sample_rows)
        return _strings_as_text(lf, nulls)
    if src.format == "json":
        df = read_json_records(src)
        if sample_rows is not None:
            df = df.head(sample_rows)
        return _strings_as_text(df.lazy(), nulls)
    if src.format == "parquet":
        return pl.scan_parquet(src.path, n_rows=sample_rows)
    if src.format == "ipc":
        try:
            lf = pl.scan_ipc(src.path, n_rows=sample_rows)
            lf.collect_schema()
            return lf
        except pl.exceptions.PolarsError:
            df = pl.read_ipc_stream(src.path)  # the stream format, as written to a pipe
            return (df.head(sample_rows) if sample_rows else df).lazy()
    raise BadInput(
        f"unknown format {src.format!r}; choose from {', '.join(FORMATS)}", file=src.name
    )


def _strings_as_text(lf, nulls: list[str]):
    """JSON string values that are missing-value markers become null."""
    import polars as pl

    schema = lf.collect_schema()
    return lf.with_columns(
        pl.when(pl.col(c).is_in(nulls)).then(None).otherwise(pl.col(c)).alias(c)
        for c, t in schema.items()
        if t == pl.String
    )


def infer_types(
    src: Source, nulls: list[str], sample_rows: int, overrides: dict[str, str]
) -> dict[str, ColumnType | None]:
    """Column name -> type (None: no value seen in the sample) for one source."""
    import polars as pl

    _check_not_empty(src)
    try:
        sample = _raw_lazy(src, nulls, sample_rows).collect()
    except pl.exceptions.PolarsError as e:
        raise diagnose_structure(src, nulls, e) from None
    if src.format in ("csv", "tsv"):
        # polars reads a row with too few fields as missing values without a word;
        # the sample's rows are checked field by field (later rows are not: see README).
        ragged = _first_ragged_record(src, limit=sample_rows)
        if ragged is not None:
            raise ragged
    if src.format == "jsonl":  # likewise a record naming a key twice (polars keeps one)
        from .jsonread import first_bad_json_line

        bad = first_bad_json_line(src, limit=sample_rows)
        if bad is not None:
            raise bad
    inferred = infer_columns(sample) if src.format in TEXT_FORMATS else {}
    types: dict[str, ColumnType | None] = {}
    for col, dtype in sample.schema.items():
        forced = overrides.get(col)
        if dtype == pl.String and src.format in TEXT_FORMATS:
            if forced in ("date", "datetime"):
                types[col] = _find_format(inferred[col], forced)
            elif forced:
                types[col] = ColumnType(forced)
            else:
                types[col] = inferred[col]
        else:
            native = type_name(dtype)
            if native is None:
                raise BadInput(
                    f"type {dtype} is not supported (mlstage reads int, float, bool, string, date, datetime)",
                    file=src.name,
                    column=col,
                )
            types[col] = ColumnType(forced or native)
    return types


def _find_format(inferred: ColumnType | None, name: str) -> ColumnType:
    """A date/datetime format for a column forced to that type."""
    from .typeinfer import DATE_FORMATS, DATETIME_FORMATS

    if inferred is not None and inferred.name == name:
        return inferred
    if name == "datetime" and inferred is not None and inferred.name == "date":
        return ColumnType("datetime", inferred.format)
    return ColumnType(name, (DATE_FORMATS if name == "date" else DATETIME_FORMATS)[0])


def scan_typed(src: Source, types: dict[str, ColumnType], nulls: list[str]):
    """The whole source as a LazyFrame with every column parsed to its type.

    CSV/TSV numbers and strings are parsed by polars' reader itself (the fast
    path); dates, datetimes and booleans by the expressions of `inference`.
    """
    import polars as pl

    if src.format in ("csv", "tsv"):
        native = {"int": pl.Int64, "float": pl.Float64}
        overrides = {c: native.get(t.name, pl.String) for c, t in types.items()}
        lf = pl.scan_csv(src.path, **{**_csv_options(src, nulls), "schema_overrides": overrides})
        return lf.with_columns(
            parse_expr(c, t, strict=True).alias(c)
            for c, t in types.items()
            if t.name in ("bool", "date", "datetime")
        )
    lf = _raw_lazy(src, nulls)
    return lf.select(
        _parse(col, dtype, types[col], src, strict=True).alias(col)
        for col, dtype in lf.collect_schema().items()
    )


def _parse(col: str, dtype, ctype: ColumnType, src: Source, *, strict: bool):
    """Expression turning a raw column (text or native) into its mlstage type."""
    import polars as pl

    if dtype == pl.String and (src.format in TEXT_FORMATS or ctype.name != "string"):
        return parse_expr(col, ctype, strict=strict)
    e = pl.col(col)
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        e = utc_wall_expr(e)
    return e.cast(polars_type(ctype.name), strict=strict)


def diagnose_values(
    src: Source, types: dict[str, ColumnType], nulls: list[str], given: dict[str, str] | None = None
) -> BadInput | None:
    """Find the first value that does not parse as its column's type (the slow path);
    `given`: the columns whose type was not inferred, each with the remedy to name."""
    import polars as pl

    try:
        lf = _raw_lazy(src, nulls).with_row_index("__row")
        failing = {
            col: pl.col(col).is_not_null()
            & _parse(col, dtype, types[col], src, strict=False).is_null()
            for col, dtype in lf.collect_schema().items()
            if col != "__row" and types[col].name != "string"
        }
        if not failing:
            return None
        bad = (
            lf.filter(pl.any_horizontal(list(failing.values())))
            .head(1)
            .with_columns(**{f"__bad_{c}": e for c, e in failing.items()})
            .collect()
        )
    except pl.exceptions.PolarsError:
        return None
    if bad.height == 0:
        return None
    row = bad.row(0, named=True)
    col = next(c for c in failing if row[f"__bad_{c}"])
    record = f"record {row['__row'] + 1}: " if src.format == "json" else ""
    remedy = (given or {}).get(col) or (
        f"the type was inferred from the first rows, pass {opt('types', '--type')} {col}=string"
        " (or another type) to read it differently"
    )
    return BadInput(
        f"{record}cannot parse {str(row[col])!r} as {_article(types[col].name)}; {remedy}",
        file=src.name,
        line=None if src.format == "json" else row["__row"] + src.line_offset,
        column=col,
    )


def _article(type_name_: str) -> str:
    return {
        "int": "an integer",
        "float": "a number",
        "bool": "a boolean (true/false)",
        "date": "a date",
        "datetime": "a datetime",
        "string": "a string",
    }[type_name_]


def diagnose_structure(src: Source, nulls: list[str], error: Exception) -> BadInput:
    """A clear message for a file polars cannot read at all (the slow path)."""
    line = _first_undecodable_line(src.path)
    if line is not None:
        return BadInput("the file is not valid UTF-8 text", file=src.name, line=line)
    if src.format in ("csv", "tsv"):
        found = _first_ragged_record(src)
        if found is not None:
            return found
    if src.format == "jsonl":
        found = first_bad_json_line(src)
        if found is not None:
            return found
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return BadInput(f"cannot read as {src.format.upper()}: {text}", file=src.name)


def _first_undecodable_line(path: Path) -> int | None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as e:
                return line + chunk[: e.start].count(b"\n")
            line += chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return line
    return None


def _first_ragged_record(src: Source, limit: int | None = None) -> BadInput | None:
    sep = "\t" if src.format == "tsv" else ","
    with open(src.path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter=sep, strict=True)
        try:
            header = next(reader)
            if len(set(header)) != len(header):
                twice = sorted({h for h in header if header.count(h) > 1})
                return BadInput(
                    f"the header names a column twice: {', '.join(twice)}", file=src.name, line=1
                )
            for n, record in enumerate(reader):
                if limit is not None and n >= limit:
                    break
                if len(record) != len(header) and record:
                    return BadInput(
                        f"{len(record)} fields where the header has {len(header)}",
                        file=src.name,
                        line=reader.line_num,
                    )
        except csv.Error as e:
            return BadInput(f"malformed CSV: {e}", file=src.name, line=reader.line_num)
        except StopIteration:
            return BadInput("file is empty", file=src.name)
    return None
