"""The JSON Schemas of mlstage's file formats, shipped in `mlstage/schemas/`.

Every format-1 JSON file (manifest, stats, schema, anomalies, ...) is checked
against its schema when written and when read; a wrong file is bad input whose
message names the JSON path and the reason.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from ..errors import BadInput

SCHEMA_FILES = {
    "mlstage-artifact/1": "manifest.schema.json",
    "mlstage-stats/1": "stats.schema.json",
    "mlstage-schema/1": "schema.schema.json",
    "mlstage-anomalies/1": "anomalies.schema.json",
    "mlstage-features/1": "features.schema.json",
    "mlstage-train/1": "train.schema.json",
    "mlstage-evaluate/1": "evaluate.schema.json",
    "mlstage-monitor/1": "monitor.schema.json",
    "mlstage-card-info/1": "card_info.schema.json",
}


@cache
def _schema(fmt: str) -> dict[str, Any]:
    from importlib import resources

    return json.loads(resources.files("mlstage").joinpath("schemas", SCHEMA_FILES[fmt]).read_text())


@cache
def _fast(fmt: str):
    """jsonschema-rs's validator of `fmt`: it says whether a document is valid, in Rust
    (3 ms for the statistics of 3,000 columns, where jsonschema took 1.8 s; and 13 ms to
    import against jsonschema's 30-50 ms)."""
    try:
        import jsonschema_rs
    except ImportError:  # a platform without its wheel: jsonschema alone, as before
        return None
    return jsonschema_rs.validator_for(_schema(fmt), validate_formats=False)


@cache
def _validator(fmt: str):
    """jsonschema's validator of `fmt`: for an invalid document, the messages mlstage
    gives (the first problem by JSON path, in jsonschema's words)."""
    import jsonschema

    return jsonschema.Draft202012Validator(_schema(fmt))


def warm_up(fmt: str) -> None:
    """Start building the validator of `fmt` in a thread, while the caller works: its
    import then leaves a stage's path from its data to its manifest. An import the main
    thread asks for meanwhile waits for this one (Python's per-module import locks);
    should the thread fail, the main thread's own call raises."""
    import sys
    import threading

    if "jsonschema_rs" not in sys.modules:
        threading.Thread(target=_warm, args=(fmt,), name="mlstage-jsonschema", daemon=True).start()


def _warm(fmt: str) -> None:
    try:
        _fast(fmt)
    except Exception:  # raised again where the document is validated
        pass


def json_path(parts) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def validate(doc: Any, fmt: str, where: str) -> None:
    """Raise BadInput naming the first problem's JSON path and reason."""
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise BadInput(f'at $.format: expected "{fmt}", found {json.dumps(found)}', file=where)
    fast = _fast(fmt)
    try:
        if fast is not None and fast.is_valid(doc):
            return
    except (ValueError, TypeError, OverflowError):  # a value it cannot convert: decided below
        pass
    # Invalid (or undecided): jsonschema names the problem. Both follow JSON Schema 2020-12;
    # the suite's bad documents hold them to the same verdict.
    errors = sorted(
        _validator(fmt).iter_errors(doc),
        key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))),
    )
    if errors:
        e = errors[0]
        raise BadInput(f"at {json_path(e.absolute_path)}: {e.message}", file=where)
