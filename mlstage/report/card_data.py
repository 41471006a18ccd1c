"""A model card's content, collected from the store starting at a model (issue 19).

`collect` gives one JSON-ready dict (format `mlstage-card/1`), which `report --card`
writes as it is (`--json`) or draws as a page (`card_page`): the model; the lineage back
to the raw sources with their sha256; the training data's statistics and anomalies; the
features; the training configuration, search and metrics; the evaluation (overall, per
slice and per group, with intervals), its gates and blessing (`card_eval`); where the
model is deployed and the history there; and the facts people wrote (`card_info`).

Everything comes from manifests and payloads in the store, each checked against its
manifest before it is read; nothing depends on the clock, the current directory or the
order of a directory listing, so the same store gives the same card.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import BadInput, opt
from ..store.lineage import children, lineage
from ..store.registry import read_serving, resolve_model
from .card_eval import deployments, evaluation_of

FORMAT = "mlstage-card/1"
TOP_TRIALS = 10


def collect(
    st,
    ref: str,
    *,
    evaluation: str | None = None,
    registry: str | Path | None = None,
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The card of MODEL (an artifact directory or @id) or REGISTRY/NAME (the version its
    serving.json points to, with that name's history)."""
    folder = Path(str(ref))
    serving = read_serving(folder) if (folder / "serving.json").exists() else None
    if serving is not None and registry is not None:
        raise BadInput(
            f"{opt('registry')} is for a MODEL argument; REGISTRY/NAME already says where it is deployed"
        )
    model_ref = resolve_model(str(ref)) if serving is not None else str(ref)
    path, m = st.load(model_ref)
    if m["kind"] != "model":
        raise BadInput(
            f"a model card is for a model (MODEL or REGISTRY/NAME); this is"
            f" {'an' if m['kind'][0] in 'aeiou' else 'a'} {m['kind']} artifact",
            file=str(ref),
        )
    st.check_input(path, m, model_ref)
    transform = _json(path, "transform.json")
    signature = _json(path, "signature.json")
    metrics = _json(path, "metrics.json")
    trees = [_tree(lineage(st, m))]
    data_id = m["summary"].get("data") or _first(trees[0], "dataset")
    ev = evaluation_of(st, m, evaluation, serving)
    if ev is not None and ev["data"]["id"] not in _ids(trees[0]):
        data = st.manifest(ev["data"]["id"])
        if data is not None:  # evaluated on other data: its lineage too
            trees.append(_tree(lineage(st, data)) | {"role": "evaluation data"})
    info = info or {}
    title = info.get("title") or (folder.name if serving is not None else str(ref))
    return {
        "format": FORMAT,
        "title": title,
        "model": {
            "id": m["id"],
            "ref": str(ref),
            "created": m["created"],
            "mlstage_version": m.get("mlstage_version"),
            "task": m["summary"].get("task"),
            "estimator": m["summary"].get("estimator"),
            "label": m["summary"].get("label"),
            "classes": m["summary"].get("classes"),
        },
        "info": info,
        "lineage": trees,
        "sources": _sources(st, trees),
        "data": _data(st, data_id, transform),
        "features": _features(m, transform, signature),
        "training": _training(m, metrics),
        "evaluation": ev,
        "deployments": deployments(st, m["id"], folder if serving is not None else None, registry),
    }


def _json(path: Path, name: str) -> Any:
    return json.loads((path / name).read_text())


def _tree(node: dict[str, Any]) -> dict[str, Any]:
    """The store's lineage tree, its leaves named by role rather than by a look at the
    current directory: a `source` is a raw file (its id is its sha256); any other input
    not in the store is a `file` (a spec, config or schema people wrote, identified by
    the sha256 of its content) or an artifact the store no longer keeps."""
    if node.get("stage") is None:
        return {k: node[k] for k in ("role", "id", "path")} | {
            "kind": "source" if node["role"] == "source" else "file", "inputs": []}  # fmt: skip
    return {k: node[k] for k in ("role", "id", "kind", "stage", "path", "created")} | {
        "inputs": [_tree(c) for c in node["inputs"]]}  # fmt: skip


def _walk(tree: dict[str, Any]):
    yield tree
    for c in tree["inputs"]:
        yield from _walk(c)


def _ids(tree: dict[str, Any]) -> set[str]:
    return {n["id"] for n in _walk(tree)}


def _first(tree: dict[str, Any], kind: str) -> str | None:
    return next((n["id"] for n in _walk(tree) if n["kind"] == kind), None)


def _sources(st, trees: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every raw source under the trees: path and sha256 as ingest recorded them, its
    size, and the datasets read from it."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for tree in trees:
        for node in _walk(tree):
            for leaf in node["inputs"]:
                if leaf["kind"] != "source":
                    continue
                m = st.manifest(node["id"]) or {}
                size = next((s.get("bytes") for s in (m.get("summary") or {}).get("sources", [])
                             if s.get("sha256") == leaf["id"] and s.get("path") == leaf["path"]), None)  # fmt: skip
                entry = found.setdefault((leaf["path"], leaf["id"]), {
                    "path": leaf["path"], "sha256": leaf["id"], "bytes": size, "datasets": []})  # fmt: skip
                if node["id"] not in entry["datasets"]:
                    entry["datasets"].append(node["id"])
    return [dict(v, datasets=sorted(v["datasets"])) for _, v in sorted(found.items())]


def newest(st, parent: str, *, role: str, kind: str) -> tuple[Path, dict[str, Any]] | None:
    """The newest artifact of `kind` in the store taking `parent` as its `role` input, its
    files checked; None when there is none."""
    for row in reversed(children(st, parent, role=role, kind=kind)):
        m = st.manifest(row["id"])
        if m is not None:
            path = st.object_dir(row["id"])
            st.check_input(path, m, f"@{row['id'][:12]}")
            return path, m
    return None


def _data(st, data_id: str | None, transform: dict[str, Any]) -> dict[str, Any]:
    """The training data, and the newest statistics and anomalies of it in the store."""
    m = st.manifest(data_id) if data_id else None
    if m is None:
        return {
            "dataset": {"id": data_id, "in_store": False},
            "statistics": None,
            "anomalies": None,
        }
    summary = m["summary"]
    label = (transform.get("label") or {}).get("column")
    schema = summary.get("schema") or {}
    used = [c for c in schema if c in transform.get("inputs", {}) or c == label]
    used += sorted(c for c in transform.get("inputs", {}) if c not in schema)
    return {
        "dataset": {
            "id": m["id"],
            "in_store": True,
            "stage": m["stage"],
            "created": m["created"],
            "rows": summary.get("rows"),
            "columns": summary.get("columns"),
            "splits": summary.get("splits") or {},
        },
        "statistics": _statistics(st, m["id"], used),
        "anomalies": _anomalies(st, m["id"]),
    }


def _statistics(st, data_id: str, columns: list[str]) -> dict[str, Any] | None:
    """The model's input columns and label in the training split of the newest stats."""
    from ..data.splits import training_split

    found = newest(st, data_id, role="data", kind="stats")
    if found is None:
        return None
    path, m = found
    doc = _json(path, "stats.json")
    name = training_split(doc["splits"], f"@{m['id'][:12]}")
    split = doc["splits"][name]
    rows = split["rows"]
    out = []
    for c in columns:
        col = split["columns"].get(c)
        if col is None:
            continue
        top = (col.get("values") or [[None]])[0][0]
        out.append({"column": c, "type": col.get("type"), "missing": col.get("missing"),
                    "missing_share": col["missing"] / rows if rows else None,
                    "mean": col.get("mean"), "std": col.get("std"), "min": col.get("min"),
                    "max": col.get("max"), "unique": col.get("unique"), "top": top})  # fmt: skip
    return {"id": m["id"], "created": m["created"], "split": name, "rows": rows,
            "splits": {k: v["rows"] for k, v in doc["splits"].items()}, "columns": out}  # fmt: skip


SEVERITY = {"error": 0, "warning": 1, "info": 2}


def _anomalies(st, data_id: str) -> dict[str, Any] | None:
    found = newest(st, data_id, role="data", kind="anomalies")
    if found is None:
        return None
    path, m = found
    doc = _json(path, "anomalies.json")
    items = sorted(
        ({k: a.get(k) for k in ("split", "column", "type", "severity", "description")}
         for a in doc["anomalies"]),
        key=lambda a: (SEVERITY.get(a["severity"], 9), str(a["split"]), str(a["column"]), a["type"]),
    )  # fmt: skip
    drifted = sorted(
        [split, col] for split, cols in (doc.get("drift") or {}).items()
        for col, d in cols.items() if d.get("drifted")
    )  # fmt: skip
    return {"id": m["id"], "created": m["created"], "ok": doc["ok"],
            "environment": doc.get("environment"),
            "errors": sum(a["severity"] == "error" for a in items),
            "warnings": sum(a["severity"] == "warning" for a in items),
            "anomalies": items, "drifted": drifted,
            "baseline": next((i["id"] for i in m["inputs"] if i["role"] == "baseline"), None)}  # fmt: skip


def _features(m: dict[str, Any], transform: dict[str, Any], signature: dict[str, Any]):
    """The fitted transform the model carries: each spec entry with its outputs, and the
    raw inputs with the types, ranges and domains seen in training."""
    features_in = next((i for i in m["inputs"] if i["role"] == "features"), None)
    entries = []
    for e in transform.get("entries", []):
        spec = e["entry"]
        cols = spec.get("columns") or [spec.get("column")]
        options = {k: v for k, v in spec.items() if k not in ("column", "columns", "transform")}
        entries.append({"columns": cols, "transform": spec["transform"], "options": options,
                        "outputs": len(e.get("outputs", [])), "impute_value": e.get("impute_value")})  # fmt: skip
    inputs = []
    for name, s in (signature.get("inputs") or {}).items():
        inputs.append({"column": name, "type": s.get("type"), "nullable": s.get("nullable"),
                       "min": s.get("min"), "max": s.get("max"),
                       "values": len(s["domain"]) if s.get("domain") is not None else None})  # fmt: skip
    return {
        "id": features_in["id"] if features_in else None,
        "path": features_in["path"] if features_in else None,
        "label": transform.get("label"),
        "entries": entries,
        "outputs": len(transform.get("outputs", [])),
        "passthrough": sorted(transform.get("passthrough") or {}),
        "inputs": inputs,
    }


def _training(m: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    config = (m.get("params") or {}).get("config") or {}
    cv = metrics.get("cv")
    search = None
    if cv:
        trials = sorted(enumerate(cv.get("trials", [])), key=lambda t: (t[1]["rank"], t[0]))
        search = {k: cv.get(k) for k in ("search", "folds", "scoring", "best_params",
                                         "best_score", "best_score_std")}  # fmt: skip
        search |= {"trials": len(trials), "space": (config.get("tune") or {}).get("space"),
                   "top": [dict(t, trial=i) for i, t in trials[:TOP_TRIALS]]}  # fmt: skip
    return {
        "config": config,
        "config_id": next((i["id"] for i in m["inputs"] if i["role"] == "config"), None),
        "estimator": m["summary"].get("estimator"),
        "params": m["summary"].get("params") or {},
        "seed": config.get("seed"),
        "weight": config.get("weight"),
        "search": search,
        "metrics": metrics.get("splits") or {},
        "unlabelled_rows": metrics.get("unlabelled_rows") or {},
        "warnings": metrics.get("warnings") or [],
    }
