"""`whatif`: how one example's prediction changes as one of its inputs changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import BadInput, opt

GRID = 10


def parse_row(text: str) -> dict[str, Any]:
    """--row '{"age": 30, ...}' or --row @file.json."""
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as e:
            raise BadInput(e.strerror or str(e), file=text[1:]) from None
    try:
        row = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadInput(f"{opt('row')} is not valid JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(row, dict):
        raise BadInput(f"{opt('row')} must be a JSON object of column values")
    return row


def default_values(info: dict[str, Any]) -> list:
    """A grid over the training range (numeric), or the training domain (categorical)."""
    import numpy as np

    if info["type"] in ("int", "float") and info.get("min") is not None:
        grid = np.linspace(info["min"], info["max"], GRID)
        values = (
            [int(round(v)) for v in grid] if info["type"] == "int" else [float(v) for v in grid]
        )
        return list(dict.fromkeys(values))
    if info["type"] in ("date", "datetime") and info.get("min") is not None:
        import datetime as dt

        parse = dt.date.fromisoformat if info["type"] == "date" else dt.datetime.fromisoformat
        lo, hi = parse(info["min"]), parse(info["max"])
        steps = [lo + (hi - lo) * (k / (GRID - 1)) for k in range(GRID)]
        return list(dict.fromkeys(v.isoformat() for v in steps))
    if info.get("domain"):
        return info["domain"][:20]
    if info["type"] == "bool":
        return [False, True]
    raise BadInput(
        f"no training range or domain to vary over; give values: {opt('vary')} COLUMN=V1,V2"
    )


def parse_vary(items: list[str], signature: dict[str, Any]) -> list[tuple[str, list]]:
    out = []
    for item in items:
        col, sep, values = item.partition("=")
        if col not in signature["inputs"]:
            raise BadInput(
                f'{opt("vary")}: "{col}" is not an input of the model; inputs: {", ".join(signature["inputs"])}'
            )
        if sep:
            out.append((col, [v.strip() for v in values.split(",")]))
        else:
            out.append((col, default_values(signature["inputs"][col])))
    if not out:
        out = [
            (col, default_values(info))
            for col, info in signature["inputs"].items()
            if _variable(info)
        ]
    return out


def _variable(info: dict[str, Any]) -> bool:
    return (
        (info["type"] in ("int", "float", "date", "datetime") and info.get("min") is not None)
        or bool(info.get("domain"))
        or info["type"] == "bool"
    )


def whatif(model, row: dict[str, Any], vary: list[tuple[str, list]]) -> list[dict[str, Any]]:
    """For each varied column, the prediction and probabilities at each value."""
    from .artifact import coerce_value

    base = model.coerce(row, absent_ok=True)
    results = []
    for col, values in vary:
        typed = [coerce_value(v, model.signature["inputs"][col]["type"], col) for v in values]
        rows = [{**base, col: v} for v in typed]
        preds, proba = model.predict_rows(rows)
        results.append({
            "column": col,
            "rows": [
                {"value": v.isoformat() if hasattr(v, "isoformat") else v, "prediction": p,
                 "probabilities": None if proba is None else dict(zip(model.class_names, map(float, proba[i]), strict=True))}
                for i, (v, p) in enumerate(zip(typed, preds, strict=True))
            ],
        })  # fmt: skip
    return results


def whatif_model(
    model: str | Path,
    row: str | dict[str, Any],
    vary: list[str] | None = None,
    *,
    store=None,
) -> tuple[list[dict[str, Any]], list[str] | None]:
    """What-if for a model reference (a directory, `@id` or REGISTRY/NAME): the results of
    `whatif` and the model's class names. `row` is a dict, JSON text or `@file.json`;
    `vary` holds `COLUMN` or `COLUMN=V1,V2` items (none: every input with a range or domain)."""
    from ..store.registry import resolve_model
    from ..store.store import store_for
    from .artifact import Model

    st = store_for(store, None)
    loaded = Model.load(st.resolve(resolve_model(str(model))))
    example = row if isinstance(row, dict) else parse_row(row)
    return whatif(loaded, example, parse_vary(vary or [], loaded.signature)), loaded.class_names
