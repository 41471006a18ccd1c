"""JSON sources: an array of flat records, and the diagnosis of bad JSON Lines records.

Values keep the text they were written with (numbers included), so the same type
inference as CSV types them (`sources`)."""

from __future__ import annotations

from typing import Any

from ..core.jsonio import DuplicateKey, unique_keys
from ..errors import BadInput


def read_json_records(src):
    """A JSON array of flat objects as a frame of text columns (numbers as written).

    Read with Python's json module: numbers keep their exact text (no int inferred
    from the first records, no float rounding), and a document that is not an array of
    objects, or a nested value, is named by record and key. Held in memory whole (a
    JSON array cannot be streamed): use JSON Lines for large files.
    """
    import json

    import polars as pl

    try:
        with open(src.path, encoding="utf-8") as f:
            doc = json.load(f, object_pairs_hook=unique_keys, **KEEP_TEXT)
    except UnicodeDecodeError:
        raise BadInput("the file is not valid UTF-8 text", file=src.name) from None
    except json.JSONDecodeError as e:
        raise BadInput(f"not valid JSON: {e.msg}", file=src.name, line=e.lineno) from None
    except DuplicateKey as e:
        raise BadInput(
            f"a record names the key {e.key!r} twice; which value is meant?",
            file=src.name,
            column=e.key,
        ) from None
    if not isinstance(doc, list):
        kind = _json_kind(doc)
        raise BadInput(
            f"the JSON document is {kind}, not an array of records [{{...}}, ...]"
            " (for one record per line, use JSON Lines: .jsonl)",
            file=src.name,
        )
    columns: dict[str, list] = {}
    for i, record in enumerate(doc):
        if not isinstance(record, dict):
            raise BadInput(
                f"record {i + 1} is {_json_kind(record)}, not an object of column values",
                file=src.name,
            )
        for key, value in record.items():
            if isinstance(value, dict | list):
                raise BadInput(
                    f"record {i + 1} holds a nested value ({_json_kind(value)});"
                    " mlstage reads flat records",
                    file=src.name,
                    column=key,
                )
            if key not in columns:
                columns[key] = [None] * i
            columns[key].append(_json_text(value))
        for values in columns.values():  # keys this record lacks are missing
            if len(values) <= i:
                values.append(None)
    if not columns:
        raise BadInput("the JSON array holds no record with a column", file=src.name)
    return pl.DataFrame(columns, schema={c: pl.String for c in columns})


# Numbers keep the text they were written with (typed afterwards, as CSV's are).
KEEP_TEXT: dict[str, Any] = {"parse_float": str, "parse_int": str, "parse_constant": str}


def _json_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return value  # None, a string, or a number's text as written


def _json_kind(value) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null"
    return f"a single value ({_json_text(value)})"  # numbers arrive as their text


def first_bad_json_line(src, limit: int | None = None) -> BadInput | None:
    """The first JSON Lines record (of the first `limit` lines) that is not JSON, not an
    object, names a key twice (the reader would keep one value without a word), or holds
    a nested value."""
    import json

    with open(src.path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if limit is not None and n > limit:
                break
            if not line.strip():
                continue
            try:
                record = json.loads(line, object_pairs_hook=unique_keys, **KEEP_TEXT)
            except json.JSONDecodeError as e:
                return BadInput(f"not valid JSON: {e.msg}", file=src.name, line=n)
            except DuplicateKey as e:
                return BadInput(
                    f"the record names the key {e.key!r} twice; which value is meant?",
                    file=src.name,
                    line=n,
                    column=e.key,
                )
            if not isinstance(record, dict):
                return BadInput(f"{_json_kind(record)}, not an object", file=src.name, line=n)
            for key, value in record.items():
                if isinstance(value, dict | list):
                    return BadInput(
                        f"a nested value ({_json_kind(value)}); mlstage reads flat records",
                        file=src.name,
                        line=n,
                        column=key,
                    )
    return None
