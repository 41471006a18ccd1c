"""`stats`: statistics of a dataset per split and per slice (DESIGN §4, §5 stats.json).

Payload: `stats.json` (the statistics people and `schema`/`validate` read) and
`sketches.json` (the mergeable summaries `stats --merge` combines; see `profile`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.jsonio import dumps_pretty
from ..errors import BadInput
from ..store.refs import choose_splits, load_input, splits_of, training_split
from ..store.store import Store, store_for
from .base import StagePlan, StageResult, run_stage

ALGORITHM = 1
MERGE_ALGORITHM = 1


def parse_slices(slices: list[str] | list[list[str]] | None) -> list[list[str]]:
    """`--slice sex --slice race` -> sex, race and their cross; `--slice sex,race` -> the cross only."""
    specs: list[list[str]] = []
    for s in slices or []:
        cols = [c.strip() for c in s.split(",")] if isinstance(s, str) else list(s)
        if not cols or any(not c for c in cols):
            raise BadInput(f"--slice {s!r}: name one column, or several joined by ','")
        if cols not in specs:
            specs.append(cols)
    singles = [s[0] for s in specs if len(s) == 1]
    if len(singles) > 1 and singles not in specs:
        specs.append(singles)
    return specs


def stats(
    dataset: str | Path,
    out: str | Path | None,
    *,
    split: str | None = None,
    slices: list[str] | list[list[str]] | None = None,
    store: str | Path | Store | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> StageResult:
    """Statistics of DATASET's splits (or one `split`), overall and per slice."""
    st = store_for(store, out)
    path, manifest, inp = load_input(st, str(dataset), "data", ("dataset",))
    chosen = choose_splits(splits_of(path, manifest), split, str(dataset))
    specs = parse_slices(slices)
    schema = manifest["summary"].get("schema", {})
    for spec in specs:
        for col in spec:
            if col not in schema:
                raise BadInput(
                    f'--slice: no column "{col}" in the dataset; columns are: {", ".join(schema)}',
                    file=str(dataset),
                )
    plan = StagePlan("stats", "stats", ALGORITHM, {"split": split, "slices": specs}, [inp])

    def produce(tmp: Path) -> dict[str, Any]:
        from ..validation.compute import split_stats

        doc: dict[str, Any] = {"format": "mlstage-stats/1", "splits": {}}
        sketches: dict[str, Any] = {"format": "mlstage-sketches/1", "splits": {}}
        for name, file in chosen.items():
            doc["splits"][name], sketches["splits"][name] = split_stats(file, schema, specs)
        return _write(tmp, doc, sketches)

    return run_stage(
        plan, produce, Path(out) if out else None, store=st, force=force, dry_run=dry_run
    )


def merge(
    parts: list[str | Path],
    out: str | Path | None,
    *,
    store: str | Path | Store | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> StageResult:
    """Combine statistics computed apart (per file, per machine) into one."""
    if len(parts) < 2:
        raise BadInput("--merge needs two or more stats artifacts")
    st = store_for(store, out)
    loaded = [load_input(st, str(p), "stats", ("stats",)) for p in parts]
    plan = StagePlan(
        "stats-merge", "stats", MERGE_ALGORITHM, {"merge": True}, [i for _, _, i in loaded]
    )

    def produce(tmp: Path) -> dict[str, Any]:
        from ..validation.merge import merge_stats

        docs = [
            (read_stats(p), json.loads((p / "sketches.json").read_text())) for p, _, _ in loaded
        ]
        return _write(tmp, *merge_stats(docs))

    return run_stage(
        plan, produce, Path(out) if out else None, store=st, force=force, dry_run=dry_run
    )


def _write(tmp: Path, doc: dict, sketches: dict) -> dict[str, Any]:
    from ..core.documents import validate

    validate(doc, "mlstage-stats/1", str(tmp / "stats.json"))
    (tmp / "stats.json").write_text(dumps_pretty(doc))
    (tmp / "sketches.json").write_text(json.dumps(sketches, separators=(",", ":")))
    first = next(iter(doc["splits"].values()), {"columns": {}})
    return {
        "splits": {n: s["rows"] for n, s in doc["splits"].items()},
        "columns": len(first["columns"]),
        "slices": len(first.get("slices", {})),
    }


def training_stats(st: Store, ref: str, role: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The `train` split's (else the only split's) statistics and sketches, read from a
    stats artifact or computed from a dataset (what `schema` and `validate --baseline` take)."""
    path, manifest, _ = load_input(st, ref, role, ("stats", "dataset"))
    if manifest["kind"] == "stats":
        doc = read_stats(path)
        sketches = json.loads((path / "sketches.json").read_text())
        name = training_split({k: path for k in doc["splits"]}, ref)
        return doc["splits"][name], sketches["splits"][name]
    from ..validation.compute import split_stats

    splits = splits_of(path, manifest)
    name = training_split(splits, ref)
    return split_stats(splits[name], manifest["summary"]["schema"], [])


def read_stats(path: Path) -> dict[str, Any]:
    """stats.json of a stats artifact directory, checked against its schema."""
    from ..core.documents import validate

    doc = json.loads((path / "stats.json").read_text())
    validate(doc, "mlstage-stats/1", str(path / "stats.json"))
    return doc
