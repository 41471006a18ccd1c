"""`predict`: batch predictions with the server's prediction core, streamed in batches.

`predictions.parquet` keeps the input row order; without `{opt('split')}`, every split in
order with a `split` column. Columns: `split`, the `{opt('keep')}` columns, `prediction`
(in the label's own values) and `proba_<class>` per class (classification).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.engine import Engine, engine_for
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
    engine: str | Engine | None = None,
) -> StageResult:
    """Predict with MODEL (or the version REGISTRY/NAME serves) on DATASET's splits;
    `engine` (a Dask scheduler's address, `core.engine`) predicts on its workers."""

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
        if (
            col == "prediction"
            or (col == "split" and split is None)
            or (sig["task"] == "classification" and col.startswith("proba_"))
        ):
            # the kept values would be overwritten by (or overwrite) the predictions' own
            raise BadInput(
                f"{opt('keep')} {col}: predictions.parquet has a column of its own by that name"
                f" ({'the split' if col == 'split' else 'the predictions'}); rename the column"
                " in the data to keep it",
                file=str(dataset),
                column=col,
            )
    for col in sig["inputs"]:
        if col not in columns:
            raise BadInput(f'no column "{col}", which the model needs', file=str(dataset))
    params = {"split": split, "keep": keep}
    plan = StagePlan("predict", "predictions", ALGORITHM, params, [model_in, data_in])

    def produce(tmp: Path) -> dict[str, Any]:
        from ..model.artifact import Model

        eng = engine_for(engine)
        m = Model.load(model_path)
        rows = write_predictions(
            m, chosen, tmp / "predictions.parquet", keep, with_split=split is None, engine=eng
        )
        return {"rows": sum(rows.values()), "splits": rows, "model": m.id, "classes": m.class_names}

    return run_stage(
        plan, produce, Path(out) if out else None, store=st, force=force, dry_run=dry_run
    )


def _batches(split: Split, columns: list[str]):
    """The split's rows in frames of exactly BATCH_ROWS (the last fewer), across its
    partitions: a model's arithmetic can depend on the batch's shape (BLAS blocks a
    matrix product by rows), so the batches must not depend on where partitions end."""
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
                yield _frame(table.slice(0, BATCH_ROWS))
                rest = table.slice(BATCH_ROWS)
                pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield _frame(pa.Table.from_batches(pending))


def _frame(table):
    """A polars frame of an Arrow table, with its column names (polars names a column
    with the empty name "column_0": a CSV's unnamed index column, kept, was not found)."""
    import polars as pl

    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    if frame.columns != table.column_names:
        frame.columns = table.column_names
    return frame


def write_predictions(
    model,
    splits: dict[str, Split],
    target: Path,
    keep: list[str],
    *,
    with_split: bool,
    engine=None,
) -> dict[str, int]:
    """Stream every split through the model in batches into one Parquet file; a cluster
    `engine` (`core.engine`) predicts the batches on its workers, written here in order."""
    import pyarrow.parquet as pq

    from ..core.progress import task

    needed = list(dict.fromkeys([*model.signature["inputs"], *keep]))
    writer = None
    counts = {}
    total = sum(pq.ParquetFile(f).metadata.num_rows for s in splits.values() for f in s.parts)
    remote = engine is not None and not engine.local
    try:
        with task("predict: rows", total=total) as step:
            for name, split in splits.items():
                counts[name] = 0
                if remote:
                    tables = _predicted_on(engine, model, name, split, needed, keep, with_split)
                else:
                    tables = (
                        prediction_table(model, frame, name, keep, with_split)
                        for frame in _batches(split, needed)
                    )
                for table in tables:
                    if writer is None:
                        writer = pq.ParquetWriter(target, table.schema, compression="zstd")
                    writer.write_table(table)
                    counts[name] += table.num_rows
                    step.advance(table.num_rows)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise BadInput("the dataset has no rows to predict")
    return counts


def prediction_table(model, frame, name: str, keep: list[str], with_split: bool):
    """One batch's rows of predictions.parquet, as an Arrow table."""
    import polars as pl

    pred, proba = model.predict_frame(frame)
    cols = {}
    if with_split:
        cols["split"] = pl.Series("split", [name] * frame.height, dtype=pl.String)
    for k in keep:
        cols[k] = frame[k]
    cols["prediction"] = pl.Series("prediction", pred)
    if model.task == "classification" and proba is not None:
        for j, c in enumerate(model.class_names):
            cols[f"proba_{c}"] = pl.Series(f"proba_{c}", proba[:, j], dtype=pl.Float64)
    return pl.DataFrame(cols).to_arrow()


# -- on a cluster ---------------------------------------------------------------------
TASK_BATCHES = 10  # batches per task: 1,000,000 rows, a default partition
WINDOW_TASKS = 8  # tasks gathered at a time: the client holds their predictions, no more


def _predicted_on(engine, model, name: str, split: Split, needed, keep, with_split):
    """The split's prediction tables, batch by batch in row order, computed by the engine's
    workers: each task reads a run of whole batches (the same BATCH_ROWS rows as the local
    run, wherever partitions end) from the partitions by path."""
    import functools

    import pyarrow.parquet as pq

    parts = [p.absolute() for p in split.parts]
    sizes = [pq.ParquetFile(p).metadata.num_rows for p in parts]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    step = TASK_BATCHES * BATCH_ROWS
    tasks = []
    for a in range(0, sum(sizes), step):
        b = min(a + step, sum(sizes))
        tasks.append([
            (part, max(a, s) - s, min(b, s + n) - max(a, s))
            for part, s, n in zip(parts, starts, sizes, strict=True)
            if s < b and s + n > a
        ])  # fmt: skip
    fn = functools.partial(
        predict_rows, Path(model.path).absolute(), model.id, name, needed, keep, with_split,
        BATCH_ROWS,  # read here: the client's value, wherever the worker is
    )  # fmt: skip
    for i in range(0, len(tasks), WINDOW_TASKS):
        for tables in engine.map(fn, tasks[i : i + WINDOW_TASKS]):
            yield from tables


_models: dict[tuple[str, str], Any] = {}  # a worker's loaded models, by path and id


def predict_rows(model_path: Path, model_id: str, name, needed, keep, with_split, batch, pieces):
    """On a worker: the prediction tables of the rows `pieces` name ((partition, first
    row, rows) in order), one table per `batch` rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..model.artifact import Model

    key = (str(model_path), model_id)
    if key not in _models:
        _models.clear()  # one model at a time
        _models[key] = Model.load(model_path)
    model = _models[key]
    read = []
    for part, first, rows in pieces:
        batches = pq.ParquetFile(part).iter_batches(batch_size=batch, columns=needed)
        read.append(pa.Table.from_batches(list(batches)).slice(first, rows))
    table = pa.concat_tables(read)
    return [
        prediction_table(model, _frame(table.slice(i, batch)), name, keep, with_split)
        for i in range(0, table.num_rows, batch)
    ]
