"""`featurize`: fit a feature spec on the training split and apply it to every split.

`featurize DATASET --spec SPEC -o OUT` fits (on `--fit-split`, default `train`, else
the only split) and applies; `featurize DATASET --transform FEATURES|MODEL -o OUT`
applies a transform fitted before to new data. The payload is `<split>.parquet`, or
for a partitioned split one `<split>.part-NNNNN.parquet` per data partition (Float32
features named as DESIGN §5, passthrough columns, the label encoded as class indices
for a string/bool label) and `transform.json`, the fitted state as plain JSON.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from ..core.engine import Engine, engine_for
from ..data.splits import file_names, splits_of, training_split
from ..errors import BadInput, opt
from ..features.fitted import TRANSFORM_FILE, read_transform_doc, write_transform_doc
from ..store.refs import load_document, load_input
from ..store.store import Store, store_for
from .base import StagePlan, StageResult, run_stage

ALGORITHM = 4  # 2: a fill value for missing inputs training never saw; 3: fitted from
# summaries read in blocks (last bits of means and sds; a date's unseen fill is its median);
# 4: a quantile that is a zero is 0.0, never -0.0


def load_transform(st: Store, ref: str):
    """The fitted transform of a features or model artifact."""
    from ..features.fitted import FORMAT, FittedTransform

    path, _, inp = load_input(st, ref, "transform", ("features", "model"))
    doc = read_transform_doc(path)
    if doc.get("format") != FORMAT:
        raise BadInput(f"transform.json is not {FORMAT}", file=str(ref))
    return FittedTransform(doc), inp


def featurize(
    dataset: str | Path,
    out: str | Path | None,
    *,
    spec: str | Path | None = None,
    transform: str | Path | None = None,
    fit_split: str | None = None,
    store: str | Path | Store | None = None,
    force: bool = False,
    dry_run: bool = False,
    engine: str | Engine | None = None,
) -> StageResult:
    """Fit SPEC on DATASET's training split and apply it everywhere (or apply TRANSFORM);
    `engine` (a Dask scheduler's address, `core.engine`) applies it on its workers."""
    if (spec is None) == (transform is None):
        raise BadInput(
            f"give {opt('spec')} (fit and apply) or {opt('transform')} (apply), not both"
        )
    if transform is not None and fit_split is not None:
        raise BadInput(
            f"{opt('fit_split')} goes with {opt('spec')}; {opt('transform')} applies an already"
            " fitted transform"
        )
    st = store_for(store, out)
    path, manifest, data_in = load_input(st, str(dataset), "data", ("dataset",))
    splits = splits_of(path, manifest)
    types = manifest["summary"]["schema"]
    if spec is not None:
        spec_doc, spec_in = load_document(st, str(spec), "spec", TRANSFORM_FILE, "features")
        if isinstance(spec_doc, dict) and spec_doc.get("format") == "mlstage-transform/1":
            spec_doc = spec_doc["spec"]  # a features artifact given as the spec: refit its spec
        from ..features.spec import check_spec

        check_spec(spec_doc, types, str(spec))  # before any data is read
        fit_name = training_split(splits, str(dataset), fit_split or "train")
        if fit_split is not None and fit_split not in splits:
            raise BadInput(
                f"no split {fit_split!r}; the dataset has: {', '.join(splits)}", file=str(dataset)
            )
        inputs, fitted = [data_in, spec_in], None
    else:
        fitted, tr_in = load_transform(st, str(transform))
        fitted.check_columns(types, str(dataset), need_label=False)
        inputs, fit_name = [data_in, tr_in], None
    plan = StagePlan("featurize", "features", ALGORITHM, {"fit_split": fit_name}, inputs)

    def produce(tmp: Path) -> dict[str, Any]:
        from ..features.fitted import FittedTransform

        eng = engine_for(engine)  # reached (or refused) before the fit
        ft = fitted or FittedTransform.fit(spec_doc, splits[fit_name].parts, types)
        rows = {}
        for name, split in splits.items():
            # the features keep the data's partitions: part i of the data -> part i
            targets = [tmp / t for t in file_names(name, len(split.parts))]
            where = f"{dataset} (split {name})"
            rows[name] = sum(apply_parts(ft, split.parts, targets, types, where, eng))
        write_transform_doc(tmp, ft.doc)
        return {
            "splits": rows,
            "features": len(ft.outputs),
            "label": ft.label["column"] if ft.label else None,
            **({"classes": ft.label["classes"]} if ft.label and ft.label["classes"] else {}),
            "fit_split": fit_name,
        }

    return run_stage(
        plan, produce, Path(out) if out else None, store=st, force=force, dry_run=dry_run
    )


def apply_parts(
    ft, parts: list[Path], targets: list[Path], types: dict[str, str], where: str, engine: Engine
) -> list[int]:
    """Apply `ft` to each partition into its target, in turn here, or on the workers of a
    cluster `engine` (`core.engine`, which reads and writes by path) each rebuilding the
    transform from its JSON: the same files either way. The rows written, per part."""
    if engine.local:
        return [_apply_split(ft, p, types, t, where) for p, t in zip(parts, targets, strict=True)]
    jobs = [(p.absolute(), t.absolute()) for p, t in zip(parts, targets, strict=True)]
    return engine.map(functools.partial(_apply_on_worker, ft.doc, types, where), jobs)


def _apply_on_worker(doc: dict, types: dict[str, str], where: str, job: tuple[Path, Path]) -> int:
    from ..features.fitted import FittedTransform

    return _apply_split(FittedTransform(doc), job[0], types, job[1], where)


def _apply_split(ft, file: Path, types: dict[str, str], target: Path, where: str) -> int:
    import polars as pl

    with_label = bool(ft.label) and ft.label["column"] in types
    ft.check_columns(types, where, need_label=False)
    lf = pl.scan_parquet(file)
    ft.check_values(lf, where, file=where)
    try:
        ft.apply_lazy(lf, with_label=with_label).sink_parquet(target)
    except pl.exceptions.PolarsError as e:
        if with_label and ft.label["classes"] is not None:
            col = ft.label["column"]
            unseen = (
                lf.select(pl.col(col).cast(pl.String))
                .filter(~pl.col(col).is_in(ft.label["classes"]) & pl.col(col).is_not_null())
                .head(1)
                .collect()
            )
            if unseen.height:
                raise BadInput(
                    f"label value {unseen.item()!r} was not seen in the training split (classes: {', '.join(ft.label['classes'])})",
                    file=where,
                    column=col,
                ) from None
        raise BadInput(
            f"cannot apply the transform: {str(e).strip().splitlines()[0]}", file=where
        ) from None
    return pl.scan_parquet(target).select(pl.len()).collect().item()
