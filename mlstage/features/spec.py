"""Reading and checking a feature spec (mlstage-features/1) against a dataset's columns."""

from __future__ import annotations

from typing import Any

from ..core.documents import validate
from ..errors import BadInput
from .transforms import TRANSFORMS

COMMON_KEYS = ("transform", "column", "columns", "impute", "indicator")


def check_spec(spec: Any, types: dict[str, str], where: str = "spec") -> None:
    """Bad input naming the JSON path for anything wrong with the spec or its columns."""
    validate(spec, "mlstage-features/1", where)
    label = spec.get("label")
    if label is not None and label not in types:
        raise BadInput(
            f'at $.label: no column "{label}" in the data; columns are: {", ".join(types)}',
            file=where,
        )
    for i, entry in enumerate(spec["features"]):
        at = f"at $.features[{i}]"
        name = entry["transform"]
        t = TRANSFORMS.get(name)
        if t is None:
            raise BadInput(
                f"{at}.transform: unknown transform {name!r}; valid: {', '.join(sorted(TRANSFORMS))}",
                file=where,
            )
        allowed = COMMON_KEYS + t.options
        for key in entry:
            if key not in allowed:
                valid = ", ".join(k for k in allowed if k not in ("transform",))
                raise BadInput(f"{at}: {name} has no option {key!r}; valid: {valid}", file=where)
        if t.multi != ("columns" in entry) or ("column" in entry) == ("columns" in entry):
            need = "columns (a list of 2 or more)" if t.multi else "column"
            raise BadInput(f"{at}: {name} takes {need}", file=where)
        if t.multi and ("impute" in entry or entry.get("indicator")):
            raise BadInput(
                f"{at}: {name} takes no impute or indicator (impute its columns' own entries)",
                file=where,
            )
        if entry.get("indicator") and "impute" not in entry:
            raise BadInput(f"{at}: indicator goes with impute", file=where)
        for col in entry.get("columns", [entry.get("column")]):
            if col not in types:
                raise BadInput(
                    f'{at}: no column "{col}" in the data; columns are: {", ".join(types)}',
                    file=where,
                )
            if col == label:
                raise BadInput(
                    f'{at}: "{col}" is the label; a feature made from it would leak the answer',
                    file=where,
                )
            if types[col] not in t.accepts:
                raise BadInput(
                    f'{at}: {name} needs a {" or ".join(t.accepts)} column; "{col}" is {types[col]}',
                    file=where,
                )
    for j, col in enumerate(spec.get("passthrough", [])):
        if col not in types:
            raise BadInput(f'at $.passthrough[{j}]: no column "{col}" in the data', file=where)
        if col == label:
            raise BadInput(f'at $.passthrough[{j}]: "{col}" is the label, kept already', file=where)
