"""Request bodies of TF Serving's REST API and MLflow's scoring protocol, parsed to rows.

A row is a dict of raw field values; converting them to the signature's types
(and naming the field on failure) is the model's job (`Model.coerce`).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from ..core.jsonio import DuplicateKey, unique_keys
from .limits import MAX_ROWS, RequestError

__all__ = ["RequestError", "mlflow", "tf_serving"]


def parse_json(text: str) -> Any:
    """The JSON document; every failure a 400 in words of ours (the parser's position
    kept, never its exception's text)."""
    try:
        return json.loads(text, object_pairs_hook=unique_keys)
    except DuplicateKey as e:
        raise RequestError(400, f"a JSON object names {e.key!r} twice") from None
    except json.JSONDecodeError as e:
        raise RequestError(
            400, f"the body is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}"
        ) from None
    except ValueError:  # an integer literal past Python's 4,300 digits
        raise RequestError(400, "the body is not valid JSON: a number is too long") from None
    except RecursionError:
        raise RequestError(
            400, "the JSON is nested too deeply (the parser takes about 1,000 levels)"
        ) from None


def too_many(n: int) -> None:
    """Counted before any row is built: a 15 MiB body of one-value rows is millions."""
    if n > MAX_ROWS:
        raise RequestError(413, f"{n} rows in one request; at most {MAX_ROWS}")


def columns_to_rows(inputs: Any) -> list[dict[str, Any]]:
    """{"col": [v1, v2], ...} -> rows; a dict of scalars is one row."""
    if not isinstance(inputs, dict):
        raise RequestError(400, '"inputs" must be an object of columns')
    if all(not isinstance(v, list) for v in inputs.values()):
        return [dict(inputs)]
    lengths = {len(v) for v in inputs.values() if isinstance(v, list)}
    if len(lengths) != 1 or any(not isinstance(v, list) for v in inputs.values()):
        raise RequestError(400, 'every column in "inputs" must be a list of the same length')
    n = lengths.pop()
    too_many(n)
    return [{k: v[i] for k, v in inputs.items()} for i in range(n)]


def records(items: Any, key: str) -> list[dict[str, Any]]:
    if isinstance(items, list):
        too_many(len(items))
    if not isinstance(items, list) or not all(isinstance(r, dict) for r in items):
        raise RequestError(400, f'"{key}" must be a list of objects (one per row)')
    return items


def tf_serving(body: str) -> tuple[list[dict[str, Any]], str]:
    """(rows, "row" | "column") from {"instances": [...]} or {"inputs": {...}}."""
    doc = parse_json(body)
    if not isinstance(doc, dict) or ("instances" in doc) == ("inputs" in doc):
        raise RequestError(400, 'send {"instances": [{...}, ...]} or {"inputs": {"column": [...]}}')
    if "instances" in doc:
        return records(doc["instances"], "instances"), "row"
    inputs = doc["inputs"]
    if isinstance(inputs, list):
        return records(inputs, "inputs"), "column"
    return columns_to_rows(inputs), "column"


def mlflow(body: str, content_type: str) -> list[dict[str, Any]]:
    """Rows from MLflow's formats: dataframe_split, dataframe_records, instances, inputs, or CSV."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "text/csv":
        try:
            # a byte-order mark (spreadsheet exports) is not part of the first name
            reader = csv.reader(io.StringIO(body.removeprefix("\ufeff")), strict=True)
            header = next(reader, None)
            if not header:
                raise RequestError(400, "the CSV body is empty (a header line is needed)")
            twice = sorted({h for h in header if header.count(h) > 1})
            if twice:
                raise RequestError(400, f"the CSV header names {', '.join(twice)} twice")
            rows = []
            for record in reader:
                if not record:  # a blank line
                    continue
                too_many(len(rows) + 1)
                if len(record) != len(header):
                    raise RequestError(
                        400,
                        f"CSV line {reader.line_num}: {len(record)} fields where the header has"
                        f" {len(header)}",
                    )
                rows.append(
                    {k: (None if v == "" else v) for k, v in zip(header, record, strict=True)}
                )
            return rows
        except csv.Error as e:
            raise RequestError(
                400, f"the body is not valid CSV (line {reader.line_num}): {e}"
            ) from None
    if kind != "application/json":
        raise RequestError(
            415, f"unsupported content type {kind or 'none'!r}: use application/json or text/csv"
        )
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise RequestError(400, "the body must be a JSON object")
    keys = [k for k in ("dataframe_split", "dataframe_records", "instances", "inputs") if k in doc]
    if len(keys) != 1:
        raise RequestError(
            400, "send exactly one of dataframe_split, dataframe_records, instances, inputs"
        )
    key = keys[0]
    value = doc[key]
    if key == "dataframe_split":
        if (
            not isinstance(value, dict)
            or not isinstance(value.get("columns"), list)
            or not isinstance(value.get("data"), list)
        ):
            raise RequestError(400, '"dataframe_split" needs "columns" and "data" lists')
        cols = value["columns"]
        too_many(len(value["data"]))
        if not all(isinstance(c, str) for c in cols):
            raise RequestError(400, '"dataframe_split" columns must be strings')
        rows = []
        for row in value["data"]:
            if not isinstance(row, list) or len(row) != len(cols):
                raise RequestError(400, f'each row of "data" must be a list of {len(cols)} values')
            rows.append(dict(zip(cols, row, strict=True)))
        return rows
    if key == "inputs" and isinstance(value, dict):
        return columns_to_rows(value)
    return records(value, key)
