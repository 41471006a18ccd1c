"""`validate`: check a dataset against a schema and, with a baseline, for drift and skew.

Anomaly types (DESIGN §4): missing_column, unexpected_column, type_mismatch,
low_presence, out_of_domain, out_of_range, too_few_rows, row_count_change,
drift, label_drift. Every anomaly is an error except unexpected_column and an
out_of_domain fraction under max_out_of_domain, which are warnings; the schema's
`severity` overrides the default per type. `ok` is false (exit 1) when any error
is found. Drift is measured as `drift` describes, against the baseline's `train`
split (or its only split).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.engine import Engine, engine_for
from ..core.jsonio import jsonable
from ..data.splits import choose_splits, splits_of
from ..errors import BadInput, opt
from ..store.refs import load_input
from ..store.store import Store, store_for
from ..validation.checks import ENVIRONMENTS, Checker, write_anomalies
from ..validation.schema_rules import read_schema
from ..validation.statsfile import training_stats
from .base import StagePlan, StageResult, run_stage

ALGORITHM = 3  # 2: the KS p-value as 2 * smirnov (kstwo's own tail formula; an upper
# bound of it above 0.3, where kstwo differs); 3: above N = 10,000 its asymptotic form


def validate(
    dataset: str | Path,
    out: str | Path | None,
    *,
    schema: str | Path,
    split: str | None = None,
    baseline: str | Path | None = None,
    environment: str = "training",
    store: str | Path | Store | None = None,
    force: bool = False,
    dry_run: bool = False,
    engine: str | Engine | None = None,
) -> StageResult:
    """Check DATASET against `schema` (and `baseline` for drift); `ok` false means exit 1.
    `engine` (a Dask scheduler's address, `core.engine`) scans the columns on its workers."""
    if environment not in ENVIRONMENTS:
        raise BadInput(
            f"{opt('environment')} {environment!r}: choose from {', '.join(ENVIRONMENTS)}"
        )
    st = store_for(store, out)
    path, manifest, data_in = load_input(st, str(dataset), "data", ("dataset",))
    chosen = choose_splits(splits_of(path, manifest), split, str(dataset))
    schema_doc, schema_in = read_schema(st, str(schema))
    inputs = [data_in, schema_in]
    if baseline is not None:
        _, _, base_in = load_input(st, str(baseline), "baseline", ("stats", "dataset"))
        inputs.append(base_in)
    plan = StagePlan(
        "validate", "anomalies", ALGORITHM, {"split": split, "environment": environment}, inputs
    )
    types = manifest["summary"]["schema"]

    def produce(tmp: Path) -> dict[str, Any]:

        eng = engine_for(engine)
        base = None
        if baseline is not None:
            table, sketches = training_stats(st, str(baseline), "baseline")
            base = {**table, "sketches": sketches}
        checker = Checker(schema_doc, environment, base)
        for name, file in chosen.items():
            checker.check_split(name, file.parts, types, engine=eng)
        errors = sum(a["severity"] == "error" for a in checker.anomalies)
        doc = {
            "format": "mlstage-anomalies/1",
            "ok": errors == 0,
            "environment": environment,
            "anomalies": checker.anomalies,
            "drift": jsonable(checker.drift),
        }
        write_anomalies(tmp, doc)
        return {
            "ok": errors == 0,
            "errors": errors,
            "warnings": len(checker.anomalies) - errors,
            "splits": list(chosen),
        }

    return run_stage(
        plan, produce, Path(out) if out else None, store=st, force=force, dry_run=dry_run
    )
