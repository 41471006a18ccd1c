"""`stats`: statistics of a dataset per split and per slice (DESIGN §4, §5 stats.json).

Payload: `stats.json` and `sketches.json`, owned by `validation.statsfile`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.engine import Engine, engine_for
from ..data.splits import choose_splits, splits_of
from ..errors import BadInput, opt
from ..store.refs import load_input
from ..store.store import Store, store_for
from ..validation.statsfile import parse_slices, read_stats, write_stats
from .base import StagePlan, StageResult, run_stage

ALGORITHM = 4  # 2: NaN in a sliced float column is the <missing> slice; 3: epoch quantiles of
# date/datetime columns and the value counts of low-cardinality integers (for drift);
# 4: slices in name order (merged partitions give them so)
MERGE_ALGORITHM = 2  # 2: merges the epoch quantiles and low-cardinality counts


def stats(
    dataset: str | Path,
    out: str | Path | None,
    *,
    split: str | None = None,
    slices: list[str] | list[list[str]] | None = None,
    store: str | Path | Store | None = None,
    force: bool = False,
    dry_run: bool = False,
    engine: str | Engine | None = None,
) -> StageResult:
    """Statistics of DATASET's splits (or one `split`), overall and per slice; `engine` (a
    Dask scheduler's address, `core.engine`) computes the partitions' on its workers."""
    st = store_for(store, out)
    path, manifest, inp = load_input(st, str(dataset), "data", ("dataset",))
    chosen = choose_splits(splits_of(path, manifest), split, str(dataset))
    specs = parse_slices(slices)
    schema = manifest["summary"].get("schema", {})
    for spec in specs:
        for col in spec:
            if col not in schema:
                raise BadInput(
                    f'{opt("slices", "--slice")}: no column "{col}" in the dataset; columns are: {", ".join(schema)}',
                    file=str(dataset),
                )
    plan = StagePlan("stats", "stats", ALGORITHM, {"split": split, "slices": specs}, [inp])

    def produce(tmp: Path) -> dict[str, Any]:
        from ..validation.merge import split_stats_of
        from ..validation.partition_cache import dataset_cache

        # partitions seen before (by content) are merged from the store's cache, so a
        # dataset that gained a day's partition is profiled for that day only
        cache = dataset_cache(st.root, path, manifest, specs)
        eng = engine_for(engine)
        doc: dict[str, Any] = {"format": "mlstage-stats/1", "splits": {}}
        sketches: dict[str, Any] = {"format": "mlstage-sketches/1", "splits": {}}
        for name, file in chosen.items():
            doc["splits"][name], sketches["splits"][name] = split_stats_of(
                file, schema, specs, eng, cache
            )
        return write_stats(tmp, doc, sketches)

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
        raise BadInput(f"{opt('merge')} needs two or more stats artifacts")
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
        return write_stats(tmp, *merge_stats(docs))

    return run_stage(
        plan, produce, Path(out) if out else None, store=st, force=force, dry_run=dry_run
    )
