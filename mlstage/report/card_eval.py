"""A model card's evaluation (metrics overall, per slice and per group with their
intervals; fairness; the gates and the blessing) and its deployments (registries'
serving.json: the version served, its history, and any other keys, shown as they are)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import BadInput, opt
from ..model.metrics import FAIRNESS
from ..store.lineage import children
from ..store.refs import load_input
from ..store.registry import model_names, read_serving, resolve_evaluation, served_evaluation

SERVING_KEYS = ("format", "version", "history")
ENTRY_KEYS = ("version", "model", "at", "action", "message")


def evaluation_of(
    st, model: dict[str, Any], ref: str | None, serving: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The evaluation to show: REF (`--evaluation`), else the one recorded when the served
    version was deployed (for REGISTRY/NAME), else the newest of this model in the store;
    None when the store holds none."""
    mid = model["id"]
    if ref is not None:
        path, m, _ = load_input(st, resolve_evaluation(str(ref)), "evaluation", ("evaluation",))
        if _input(m, "model") != mid:
            raise BadInput(
                f"this is an evaluation of model {str(_input(m, 'model'))[:12]}, not of {mid[:12]}",
                file=str(ref),
            )
        return _evaluation(st, path, m)
    candidates = [r["id"] for r in children(st, mid, role="model", kind="evaluation")]
    recorded = served_evaluation(serving)
    if recorded in candidates:
        candidates.append(recorded)  # tried first
    for eid in reversed(candidates):
        m = st.manifest(eid)
        if m is not None:
            path = st.object_dir(eid)
            st.check_input(path, m, f"@{eid[:12]}")
            return _evaluation(st, path, m)
    return None


def _input(m: dict[str, Any], role: str) -> str | None:
    return next((i["id"] for i in m["inputs"] if i["role"] == role), None)


def _evaluation(st, path: Path, m: dict[str, Any]) -> dict[str, Any]:
    from ..model.evaluation_files import read_blessing, read_metrics

    metrics, blessing = read_metrics(path), read_blessing(path)
    others = [r["id"] for r in children(st, _input(m, "model") or "", role="model",
                                        kind="evaluation") if r["id"] != m["id"]]  # fmt: skip
    data = next((i for i in m["inputs"] if i["role"] == "data"), None)
    config = (m.get("params") or {}).get("config") or {}
    fairness = {}
    for col, f in sorted((metrics.get("fairness") or {}).items()):
        fairness[col] = {
            "disparities": {k: f[k] for k in FAIRNESS if k in f},
            "min_group_size": f.get("min_group_size"),
            "intervals": f.get("intervals") or {},
            "groups": f.get("groups") or {},
        }
    return {
        "id": m["id"],
        "created": m["created"],
        "data": {"id": data["id"], "path": data["path"]} if data else {"id": None, "path": None},
        "split": metrics.get("split") or (m.get("params") or {}).get("split"),
        "rows": metrics.get("rows"),
        "unlabelled_rows": metrics.get("unlabelled_rows"),
        "task": metrics.get("task"),
        "positive": metrics.get("positive"),
        "bootstrap": metrics.get("bootstrap"),
        "overall": {k: v for k, v in metrics["overall"].items() if k != "confusion_matrix"},
        "intervals": metrics.get("intervals") or {},
        "slices": [
            {k: s.get(k) for k in ("name", "rows", "gated", "metrics")}
            | {"intervals": s.get("intervals") or {}}
            for s in metrics.get("slices") or []
        ],  # fmt: skip
        "fairness": fairness,
        "baseline_model": (metrics.get("baseline") or {}).get("model"),
        "min_slice_size": config.get("min_slice_size"),
        "blessed": blessing["blessed"],
        "checks": blessing["checks"],
        "other_evaluations": sorted(others),
    }


def deployments(
    st, model_id: str, folder: Path | None, registry: str | Path | None
) -> dict[str, Any]:
    """Where the model is deployed. For REGISTRY/NAME (`folder`): that name's whole
    history. For MODEL with `--registry`: every name there whose history holds the model,
    with the entries that name it. Otherwise nothing was searched."""
    if folder is not None:
        places = [(folder, read_serving(folder), False)]
    elif registry is not None:
        root = Path(registry)
        if not root.is_dir():
            raise BadInput(f"{opt('registry')}: no such registry folder", file=str(registry))
        places = [(root / n, read_serving(root / n), True) for n in model_names(root)]
    else:
        return {"searched": None, "registries": []}
    out = []
    for place, doc, only_this in places:
        if doc is None:
            continue
        history = doc.get("history") or []
        served = next((h.get("model") for h in reversed(history)
                       if h.get("version") == doc["version"]), None)  # fmt: skip
        mine = [h for h in history if h.get("model") == model_id]
        if only_this and not mine:
            continue
        out.append({
            "registry": str(place.parent), "name": place.name, "version": doc["version"],
            "served_model": served, "serves_this_model": served == model_id,
            "other": {k: doc[k] for k in sorted(doc) if k not in SERVING_KEYS},
            "history": [_entry(h) for h in (mine if only_this else history)],
        })  # fmt: skip
    return {"searched": str(folder if folder is not None else registry), "registries": out}


def _entry(h: dict[str, Any]) -> dict[str, Any]:
    """A history entry with its usual keys first, then any others sorted."""
    return {k: h[k] for k in ENTRY_KEYS if k in h} | {
        k: h[k] for k in sorted(h) if k not in ENTRY_KEYS}  # fmt: skip


def plain(value: Any) -> str:
    """A value of an unknown shape (a label, a canary's settings) as compact text."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)
