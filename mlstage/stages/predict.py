"""`predict`: batch predictions with the server's prediction core, streamed in batches.

`predictions.parquet` keeps the input row order; without `{opt('split')}`, every split in
order with a `split` column. Columns: `split`, the `{opt('keep')}` columns, `prediction`
(in the label's own values) and `proba_<class>` per class (classification).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.splits import Split, choose_splits, splits_of
from ..errors import BadInput, opt
from ..model.artifact import read_signature
from ..store.refs import load_input
from ..store.store import Store, store_for
from .base import StagePlan, StageResult, run_stage

ALGORITHM = 1
BATCH_ROWS = 100_000


def predict(
    model: str | Path,
    dataset: str | Path,
    out: str | Path | None,
    *,
    split: str | None = None,
    keep: list[str] | None = None,
    store: str | Path | Store | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> StageResult:
    """Predict with MODEL (or the version REGISTRY/NAME serves) on DATASET's splits."""

    from ..store.registry import resolve_model

    st = store_for(store, out)
    model_ref = resolve_model(str(model))
    model_path, _, model_in = load_input(st, model_ref, "model", ("model",))
    data_path, data_manifest, data_in = load_input(st, str(dataset), "data", ("dataset",))
    chosen = choose_splits(splits_of(data_path, data_manifest), split, str(dataset))
    columns = data_manifest["summary"]["schema"]
    sig = read_signature(model_path)
    keep = list(keep or [])
    for col in keep:
        if col not in columns:
            raise BadInput(f'{opt("keep")}: no column "{col}" in the dataset', file=str(dataset))
    for col in sig["inputs"]:
        if col not in columns:
            raise BadInput(f'no column "{col}", which the model needs', file=str(dataset))
    params = {"split": split, "keep": keep}
    plan = StagePlan("predict", "predictions", ALGORITHM, params, [model_in, data_in])

    def produce(tmp: Path) -> dict[str, Any]:
        from ..model.artifact import Model

        m = Model.load(model_path)
        rows = write_predictions(
            m, chosen, tmp / "predictions.parquet", keep, with_split=split is None
        )
        return {"rows": sum(rows.values()), "splits": rows, "model": m.id, "classes": m.class_names}

    return run_stage(
        plan, produce, Path(out) if out else None, store=st, force=force, dry_run=dry_run
    )


def _batches(split: Split, columns: list[str]):
    """The split's rows in frames of exactly BATCH_ROWS (the last fewer), across its
    partitions: a model's arithmetic can depend on the batch's shape (BLAS blocks a
    matrix product by rows), so the batches must not depend on where partitions end."""
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    pending: list[pa.RecordBatch] = []
    held = 0
    for part in split.parts:
        for batch in pq.ParquetFile(part).iter_batches(batch_size=BATCH_ROWS, columns=columns):
            pending.append(batch)
            held += batch.num_rows
            while held >= BATCH_ROWS:
                table = pa.Table.from_batches(pending)
                yield pl.from_arrow(table.slice(0, BATCH_ROWS))
                rest = table.slice(BATCH_ROWS)
                pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield pl.from_arrow(pa.Table.from_batches(pending))


def write_predictions(
    model, splits: dict[str, Split], target: Path, keep: list[str], *, with_split: bool
) -> dict[str, int]:
    """Stream every split through the model in batches into one Parquet file."""
    import polars as pl
    import pyarrow.parquet as pq

    from ..core.progress import task

    needed = list(dict.fromkeys([*model.signature["inputs"], *keep]))
    writer = None
    counts = {}
    total = sum(pq.ParquetFile(f).metadata.num_rows for s in splits.values() for f in s.parts)
    try:
        with task("predict: rows", total=total) as step:
            for name, split in splits.items():
                counts[name] = 0
                for frame in _batches(split, needed):
                    pred, proba = model.predict_frame(frame)
                    cols = {}
                    if with_split:
                        cols["split"] = pl.Series("split", [name] * frame.height, dtype=pl.String)
                    for k in keep:
                        cols[k] = frame[k]
                    cols["prediction"] = pl.Series("prediction", pred)
                    if model.task == "classification" and proba is not None:
                        for j, c in enumerate(model.class_names):
                            cols[f"proba_{c}"] = pl.Series(
                                f"proba_{c}", proba[:, j], dtype=pl.Float64
                            )
                    table = pl.DataFrame(cols).to_arrow()
                    if writer is None:
                        writer = pq.ParquetWriter(target, table.schema, compression="zstd")
                    writer.write_table(table)
                    counts[name] += frame.height
                    step.advance(frame.height)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise BadInput("the dataset has no rows to predict")
    return counts
