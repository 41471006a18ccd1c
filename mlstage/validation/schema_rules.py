"""The schema (`schema.json`, mlstage-schema/1): inferring it from training statistics,
widening it for new data, and reading it (a file or an artifact).

The schema is meant to be edited by hand: keys in a fixed order, one block per
column. Inferred from the `train` split (else the only split):
- `type` per column;
- `min_presence`: 1.0 for a column never missing in training, else the fraction
  present minus 0.05 (rounded down to 2 decimals);
- `domain` for string columns with at most 100 distinct values (as TFDV);
- `min`/`max` only with `infer_ranges`;
- the label, expected only in the `training` environment;
- default drift rules: an effect size past its threshold (categorical and label
  L-infinity 0.03, numeric Jensen-Shannon 0.01, numeric mean shift 0.05 baseline
  standard deviations) and a test rejecting at the family-wise significance 0.05
  (Bonferroni over the split's columns), chosen by the calibration in
  bench/drift_calibration.py (at most 0.5% of column checks and 5% of samples drift on
  random samples of 100 rows to 1M; injected shifts found at least as often as by
  Evidently's preset). Schemas written before keep their thresholds; without
  `significance` they get 0.01, without `numeric_smd` no mean rule."""

from __future__ import annotations

import math
from typing import Any

from ..core.documents import validate
from ..errors import BadInput, opt
from ..store.refs import load_document
from ..store.store import Store

MAX_DOMAIN = 100


PRESENCE_MARGIN = 0.05


DEFAULT_DRIFT = {"categorical_linf": 0.03, "numeric_jsd": 0.01, "numeric_smd": 0.05, "label_linf": 0.03,
                 "significance": 0.05, "columns": {}}  # fmt: skip


def _presence(col: dict[str, Any]) -> float:
    total = col["count"] + col["missing"]
    return col["count"] / total if total else 0.0


def _min_presence(col: dict[str, Any]) -> float:
    if col["missing"] == 0:
        return 1.0
    return max(0.0, math.floor((_presence(col) - PRESENCE_MARGIN) * 100) / 100)


def _domain(col: dict[str, Any]) -> list[str] | None:
    if col["type"] == "string" and col["other"] == 0 and 0 < col["unique"] <= MAX_DOMAIN:
        return sorted(v for v, _ in col["values"])
    return None


def infer_column(col: dict[str, Any], infer_ranges: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"type": col["type"], "min_presence": _min_presence(col)}
    domain = _domain(col)
    if domain is not None:
        out["domain"] = domain
    if (
        infer_ranges
        and col.get("min") is not None
        and col["type"] in ("int", "float", "date", "datetime")
    ):
        out["min"], out["max"] = col["min"], col["max"]
    return out


def infer_schema(table: dict[str, Any], label: str | None, infer_ranges: bool) -> dict[str, Any]:
    if label is not None and label not in table["columns"]:
        raise BadInput(
            f'{opt("label")}: no column "{label}"; columns are: {", ".join(table["columns"])}'
        )
    columns = {}
    for name, col in table["columns"].items():
        columns[name] = infer_column(col, infer_ranges)
        if name == label:
            columns[name]["environments"] = ["training"]
    return {
        "format": "mlstage-schema/1",
        "label": label,
        "min_rows": 1,
        "max_row_count_ratio": None,
        "max_out_of_domain": 0.01,
        "columns": columns,
        "drift": dict(DEFAULT_DRIFT),
        "severity": {},
    }


def update_schema(
    schema: dict[str, Any], table: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """Widen `schema` so the data summarised by `table` fits; say what changed."""
    new = {**schema, "columns": {k: dict(v) for k, v in schema["columns"].items()}}
    changes: list[str] = []
    for name, col in table["columns"].items():
        spec = new["columns"].get(name)
        if spec is None:
            new["columns"][name] = infer_column(col, infer_ranges=False)
            changes.append(f"{name}: new column ({col['type']})")
            continue
        if spec["type"] != col["type"]:
            if {spec["type"], col["type"]} == {"int", "float"}:
                spec["type"] = "float"
                changes.append(f"{name}: type int -> float")
            else:
                raise BadInput(
                    f'column "{name}" is {col["type"]} in the new data but {spec["type"]} in the schema; edit the schema'
                )
        if "min_presence" in spec and _presence(col) < spec["min_presence"]:
            lowered = _min_presence(col)
            changes.append(f"{name}: min_presence {spec['min_presence']} -> {lowered}")
            spec["min_presence"] = lowered
        if "domain" in spec and col["type"] == "string":
            added = sorted({v for v, _ in col["values"]} - set(spec["domain"]))
            if added:
                spec["domain"] = spec["domain"] + added
                changes.append(
                    f"{name}: domain += {', '.join(added[:10])}"
                    + (f" (+{len(added) - 10} more)" if len(added) > 10 else "")
                )
        for bound, wider in (("min", min), ("max", max)):
            if bound in spec and col.get(bound) is not None:
                widened = wider(spec[bound], col[bound])
                if widened != spec[bound]:
                    changes.append(f"{name}: {bound} {spec[bound]} -> {widened}")
                    spec[bound] = widened
    return new, changes


def read_schema(st: Store, ref: str) -> tuple[dict[str, Any], Any]:
    doc, inp = load_document(st, ref, "schema", "schema.json", "schema")
    validate(doc, "mlstage-schema/1", ref)
    return doc, inp
