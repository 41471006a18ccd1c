"""`schema`: infer an editable data schema from training statistics, or widen one
(the rules live in `validation.schema_rules`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.documents import validate
from ..core.jsonio import dumps_pretty
from ..store.refs import load_document, load_input
from ..store.store import Store, store_for
from ..validation.schema_rules import infer_schema, update_schema
from ..validation.statsfile import training_stats
from .base import StagePlan, StageResult, run_stage

ALGORITHM = 1


def schema(
    source: str | Path,
    out: str | Path | None,
    *,
    label: str | None = None,
    infer_ranges: bool = False,
    update: str | Path | None = None,
    store: str | Path | Store | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> StageResult:
    """Infer a schema from DATASET|STATS, or widen the schema `update` to accept it."""
    st = store_for(store, out)
    _, manifest, inp = load_input(st, str(source), "data", ("dataset", "stats"))
    if manifest["kind"] == "stats":
        inp = type(inp)("stats", inp.id, inp.path)
    inputs = [inp]
    base = None
    if update is not None:
        base, base_input = load_document(st, str(update), "schema", "schema.json", "schema")
        validate(base, "mlstage-schema/1", str(update))
        inputs.insert(0, base_input)
    params = {"label": label, "infer_ranges": infer_ranges, "update": update is not None}
    plan = StagePlan("schema", "schema", ALGORITHM, params, inputs)

    def produce(tmp: Path) -> dict[str, Any]:
        table, _ = training_stats(st, str(source), "data")
        changes: list[str] = []
        if base is None:
            doc = infer_schema(table, label, infer_ranges)
        else:
            doc, changes = update_schema(base, table)
        validate(doc, "mlstage-schema/1", str(tmp / "schema.json"))
        (tmp / "schema.json").write_text(dumps_pretty(doc))
        summary: dict[str, Any] = {"columns": len(doc["columns"]), "label": doc.get("label")}
        if base is not None:
            summary["changes"] = changes
        return summary

    return run_stage(
        plan, produce, Path(out) if out else None, store=st, force=force, dry_run=dry_run
    )
