"""`diff`: what differs between two artifacts.

Generic over kinds: params, inputs and summary of the manifests, flattened to
dotted keys; then a per-kind payload diff (`PAYLOAD_DIFFS`): columns, domains and
thresholds for schemas, key statistics per split and column for stats, the
anomalies found for validation results.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# The statistics worth comparing side by side (the rest is in stats.json).
STAT_KEYS = ("count", "missing", "mean", "std", "min", "max", "unique", "zeros", "nan", "inf")


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
    for pair in sorted(set(ia) | set(ib)):
        if ia.get(pair) != ib.get(pair):
            rows.append((f"inputs.{pair[0]}:{pair[1]}", ia.get(pair), ib.get(pair)))
    for key in ("stage", "created", "mlstage_version"):
        if a.get(key) != b.get(key):
            rows.append((key, a.get(key), b.get(key)))
    return rows


def _payload_schema(path: Path) -> dict[str, Any]:
    doc = json.loads((path / "schema.json").read_text())
    return flatten({k: v for k, v in doc.items() if k != "format"}, "schema")


def _payload_stats(path: Path) -> dict[str, Any]:
    doc = json.loads((path / "stats.json").read_text())
    out: dict[str, Any] = {}
    for split, table in doc["splits"].items():
        out[f"stats.{split}.rows"] = table["rows"]
        for col, st in table["columns"].items():
            for key in STAT_KEYS:
                if key in st:
                    out[f"stats.{split}.{col}.{key}"] = st[key]
    return out


def _payload_anomalies(path: Path) -> dict[str, Any]:
    doc = json.loads((path / "anomalies.json").read_text())
    out: dict[str, Any] = {"anomalies.ok": doc["ok"]}
    for a in doc["anomalies"]:
        out[f"anomalies.{a['split']}.{a['column'] or '-'}.{a['type']}"] = a["severity"]
    return out


def _payload_features(path: Path) -> dict[str, Any]:
    """The spec and the fitted values, per feature entry (named by its column)."""
    doc = json.loads((path / "transform.json").read_text())
    out = flatten({k: v for k, v in doc["spec"].items() if k not in ("format", "features")}, "spec")
    for fitted in doc["entries"]:
        entry = fitted["entry"]
        key = "features." + "*".join(entry.get("columns", [entry.get("column")]))
        out.update(
            flatten(
                {k: v for k, v in entry.items() if k not in ("column", "columns")}, key + ".spec"
            )
        )
        out.update(flatten(fitted["state"], key + ".fitted"))
        if fitted["impute_value"] is not None:
            out[key + ".fitted.impute_value"] = fitted["impute_value"]
    out["features.outputs"] = len(doc["outputs"])
    return out


def _payload_model(path: Path) -> dict[str, Any]:
    """Training and CV metrics and best params (the config itself is in the manifest's params)."""
    doc = json.loads((path / "metrics.json").read_text())
    out = flatten(doc.get("splits", {}), "metrics")
    cv = doc.get("cv") or {}
    for key in ("scoring", "best_score", "best_score_std"):
        if key in cv:
            out[f"cv.{key}"] = cv[key]
    out.update(flatten(cv.get("best_params", {}), "cv.best_params"))
    return out


PAYLOAD_DIFFS = {
    "model": _payload_model,
    "features": _payload_features,
    "schema": _payload_schema,
    "stats": _payload_stats,
    "anomalies": _payload_anomalies,
}


def diff_artifacts(
    a_path: Path, a: dict[str, Any], b_path: Path, b: dict[str, Any]
) -> list[tuple[str, Any, Any]]:
    """The manifest diff, then the payload diff when both artifacts are of one kind."""
    rows = diff_manifests(a, b)
    payload = PAYLOAD_DIFFS.get(a["kind"]) if a["kind"] == b["kind"] else None
    if payload is not None:
        fa, fb = payload(a_path), payload(b_path)
        rows += [
            (k, fa.get(k), fb.get(k))
            for k in sorted(set(fa) | set(fb), key=lambda k: (k not in fa, k))
            if fa.get(k) != fb.get(k)
        ]
    return rows
