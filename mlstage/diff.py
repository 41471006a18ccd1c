"""`diff`: what differs between two artifacts' manifests.

Generic over kinds: params, inputs and summary, flattened to dotted keys.
Later stages add a per-kind payload diff here.
"""

from __future__ import annotations

from typing import Any


def flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}"))
        return out
    return {prefix: value}


def diff_manifests(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Rows (field, value in a, value in b), differing fields only; ids always shown."""
    rows: list[tuple[str, Any, Any]] = [("id", a["id"], b["id"]), ("kind", a["kind"], b["kind"])]
    for section in ("params", "summary"):
        fa, fb = flatten(a.get(section, {}), section), flatten(b.get(section, {}), section)
        for key in sorted(set(fa) | set(fb)):
            if fa.get(key) != fb.get(key):
                rows.append((key, fa.get(key), fb.get(key)))
    ia = {(i["role"], i["path"]): i["id"] for i in a["inputs"]}
    ib = {(i["role"], i["path"]): i["id"] for i in b["inputs"]}
    for key in sorted(set(ia) | set(ib)):
        if ia.get(key) != ib.get(key):
            rows.append((f"inputs.{key[0]}:{key[1]}", ia.get(key), ib.get(key)))
    for key in ("stage", "created", "mlstage_version"):
        if a.get(key) != b.get(key):
            rows.append((key, a.get(key), b.get(key)))
    return rows
