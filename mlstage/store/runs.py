"""`runs`: the experiment record, read from the store's index of model artifacts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import BadInput, opt
from .store import Store

FILTER_KEYS = ("estimator", "task", "label", "scoring", "data", "features")


def list_runs(
    store: Store, *, sort: str | None = None, filters: Sequence[str] = ()
) -> list[dict[str, Any]]:
    order: dict[str, int] = {}
    for w in store.writes():  # newest first; artifacts made in one second keep their order
        order.setdefault(w["id"], w["seq"])
    runs = []
    for a in store.artifacts(kind="model"):
        s = a["summary"]
        flat = {
            f"{split}.{k}": v
            for split, values in (s.get("metrics") or {}).items()
            for k, v in values.items()
        }
        runs.append(
            {
                "id": a["id"],
                "created": a["created"],
                "estimator": s.get("estimator"),
                "task": s.get("task"),
                "label": s.get("label"),
                "params": s.get("params"),
                "data": s.get("data"),
                "features": s.get("features"),
                "scoring": s.get("scoring"),
                "cv_score": s.get("cv_score"),
                "metrics": s.get("metrics"),
                "metrics_flat": flat,
                "_seq": order.get(a["id"], 0),
            }
        )
    for f in filters:
        key, sep, value = f.partition("=")
        if not sep or key not in FILTER_KEYS:
            raise BadInput(
                f"{opt('filters', '--filter')} {f!r}: expected KEY=VALUE with KEY one of {', '.join(FILTER_KEYS)}"
            )
        runs = [
            r
            for r in runs
            if str(r[key]) == value
            or (key in ("data", "features") and str(r[key]).startswith(value))
        ]
    if sort:
        metric = sort

        def metric_of(r):
            return r["cv_score"] if metric == "cv" else r["metrics_flat"].get(metric)

        known = {k for r in runs for k in r["metrics_flat"]} | {"cv"}
        if sort not in known:
            raise BadInput(
                f"{opt('sort')} {sort!r}: no run has this metric; known: {', '.join(sorted(known))}"
            )
        lower_better = any(
            sort.endswith(m) for m in ("mae", "rmse", "log_loss", "brier", "max_error", "mape")
        )
        present = [r for r in runs if metric_of(r) is not None]
        present.sort(key=metric_of, reverse=not lower_better)
        runs = present + [r for r in runs if metric_of(r) is None]
    else:
        runs.sort(key=lambda r: (r["created"], r["_seq"]), reverse=True)
    for r in runs:
        del r["_seq"]  # an ordering aid, not part of the record
    return runs
