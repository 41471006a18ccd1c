"""Stage commands: parse, call the library, render."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import BadInput
from . import app
from .common import Common, StoreCommon, emit_result, stage_command, store_command


@stage_command(app, "ingest")
def ingest_cmd(
    sources: Annotated[
        list[str],
        typer.Argument(
            metavar="SOURCE",
            help="Files, globs, directories, or '-' for stdin.",
            show_default=False,
        ),
    ],
    format: Annotated[
        str, typer.Option("--format", metavar="FORMAT", help="auto|csv|tsv|parquet|json|jsonl|ipc")
    ] = "auto",
    null: Annotated[
        list[str] | None,
        typer.Option(
            "--null",
            metavar="VALUE",
            help="Another missing-value marker (repeatable), e.g. --null '?'.",
        ),
    ] = None,
    type_: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            metavar="COLUMN=TYPE",
            help="COLUMN=TYPE (int|float|bool|string|date|datetime), repeatable.",
        ),
    ] = None,
    split: Annotated[
        list[str] | None,
        typer.Option(
            "--split",
            metavar="NAME=WEIGHT",
            help="NAME=WEIGHT, repeatable: --split train=8 --split eval=2.",
        ),
    ] = None,
    split_key: Annotated[
        list[str] | None,
        typer.Option(
            "--split-key",
            metavar="COLUMN",
            help="Split by the stable hash of this column (repeatable).",
        ),
    ] = None,
    split_order: Annotated[
        str | None,
        typer.Option(
            "--split-order",
            metavar="COLUMN",
            help="Split by time: oldest rows of this column to the first split.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Seed of the hash split.")] = 0,
    infer_rows: Annotated[
        int, typer.Option("--infer-rows", metavar="N", help="Rows read to infer column types.")
    ] = 10_000,
    *,
    common: Common,
) -> None:
    """Read raw files into a typed, versioned Parquet dataset, optionally split."""
    from ..stages.ingest import ingest

    out = common.out_path(allow_stdout=not split)
    result = ingest(
        sources,
        out,
        format=format,
        null=null or [],
        types=type_ or [],
        split=split or [],
        split_key=split_key or [],
        split_order=split_order,
        seed=seed,
        infer_rows=infer_rows,
        **common.run_options(),
    )
    if out is None and result.manifest is not None:
        _table_to_stdout(result.path / "data.parquet")
        common = Common(**{**common.__dict__, "json": False})  # stdout holds the payload
    emit_result("ingest", result, common)


def _table_to_stdout(parquet_path) -> None:
    """Stream a Parquet file to stdout as an Arrow IPC stream, batch by batch."""
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(parquet_path)
    with ipc.new_stream(sys.stdout.buffer, pf.schema_arrow) as writer:
        for batch in pf.iter_batches():
            writer.write_batch(batch)
    sys.stdout.buffer.flush()


@stage_command(app, "stats")
def stats_cmd(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="DATASET",
            help="Dataset artifact (with --merge: two or more stats artifacts).",
            show_default=False,
        ),
    ],
    split: Annotated[
        str | None,
        typer.Option("--split", metavar="NAME", help="Only this split (default: every split)."),
    ] = None,
    slice_: Annotated[
        list[str] | None,
        typer.Option(
            "--slice",
            metavar="COLUMN[,COLUMN]",
            help="Also per value of this column (repeatable; several give their cross too; a,b is a cross).",
        ),
    ] = None,
    merge: Annotated[
        bool, typer.Option("--merge", help="Combine statistics of partitions computed apart.")
    ] = False,
    *,
    common: Common,
) -> None:
    """Statistics per split and slice: counts, missing, quantiles, histograms, value frequencies."""
    from ..stages import stats as mod

    out = common.out_path()
    if merge:
        if split or slice_:
            raise BadInput(
                "--merge takes stats artifacts only; --split and --slice apply when computing"
            )
        result = mod.merge(inputs, out, **common.run_options())
    else:
        if len(inputs) != 1:
            raise BadInput("stats takes one dataset (use --merge to combine stats artifacts)")
        result = mod.stats(
            inputs[0],
            out,
            split=split,
            slices=slice_ or [],
            **common.run_options(),
        )
    if result.manifest and not common.quiet and not result.dry_run:
        from .render import stats_table

        stats_table(result.path / "stats.json")
    emit_result("stats", result, common)


@stage_command(app, "schema")
def schema_cmd(
    source: Annotated[
        str,
        typer.Argument(
            metavar="DATASET|STATS",
            help="Dataset or stats artifact (its train split is used).",
            show_default=False,
        ),
    ],
    label: Annotated[
        str | None,
        typer.Option(
            "--label",
            metavar="COLUMN",
            help="The label: expected only in the training environment.",
        ),
    ] = None,
    infer_ranges: Annotated[
        bool,
        typer.Option("--infer-ranges", help="Also record each numeric/date column's min and max."),
    ] = False,
    update: Annotated[
        str | None,
        typer.Option(
            "--update",
            metavar="SCHEMA",
            help="Widen this schema (file or artifact) to accept the data.",
        ),
    ] = None,
    *,
    common: Common,
) -> None:
    """Infer an editable schema from training statistics, or widen one (--update)."""
    from ..stages.schema import schema

    result = schema(
        source,
        common.out_path(),
        label=label,
        infer_ranges=infer_ranges,
        update=update,
        **common.run_options(),
    )
    if result.manifest and not common.quiet and not result.dry_run and update is not None:
        from .render import stderr_console

        changes = result.manifest["summary"].get("changes", [])
        console = stderr_console()
        console.print(f"schema: {len(changes)} changes" + (":" if changes else ""), markup=False)
        for change in changes:
            console.print(f"  {change}", markup=False)
    emit_result("schema", result, common)


@stage_command(app, "validate")
def validate_cmd(
    dataset: Annotated[
        str,
        typer.Argument(metavar="DATASET", help="Dataset artifact to check.", show_default=False),
    ],
    schema: Annotated[
        str,
        typer.Option(
            "--schema",
            metavar="SCHEMA",
            help="Schema: a schema artifact, or a JSON/TOML file.",
            show_default=False,
        ),
    ],
    split: Annotated[
        str | None,
        typer.Option("--split", metavar="NAME", help="Only this split (default: every split)."),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            metavar="STATS|DATASET",
            help="Check drift/skew against this baseline's train split.",
        ),
    ] = None,
    environment: Annotated[
        str,
        typer.Option(
            "--environment",
            metavar="ENV",
            help="training|serving (serving: the label may be absent).",
        ),
    ] = "training",
    *,
    common: Common,
) -> None:
    """Check a dataset against a schema, and for drift against a baseline; exit 1 on an error."""
    from ..stages.validate import validate

    result = validate(
        dataset,
        common.out_path(),
        schema=schema,
        split=split,
        baseline=baseline,
        environment=environment,
        **common.run_options(),
    )
    if result.manifest and not common.quiet and not result.dry_run:
        from .render import anomalies_table

        anomalies_table(result.path / "anomalies.json")
    emit_result("validate", result, common)


@stage_command(app, "featurize")
def featurize_cmd(
    dataset: Annotated[
        str, typer.Argument(metavar="DATASET", help="Dataset artifact.", show_default=False)
    ],
    spec: Annotated[
        str | None,
        typer.Option(
            "--spec",
            metavar="SPEC",
            help="Feature spec (JSON/TOML) to fit on the training split and apply.",
        ),
    ] = None,
    transform: Annotated[
        str | None,
        typer.Option(
            "--transform",
            metavar="FEATURES|MODEL",
            help="Apply the transform fitted in this features or model artifact.",
        ),
    ] = None,
    fit_split: Annotated[
        str | None,
        typer.Option(
            "--fit-split",
            metavar="NAME",
            help="Split to fit on (default: train, else the only split).",
        ),
    ] = None,
    *,
    common: Common,
) -> None:
    """Fit a declarative feature spec on the training split and apply it to every split."""
    from ..stages.featurize import featurize

    result = featurize(
        dataset,
        common.out_path(),
        spec=spec,
        transform=transform,
        fit_split=fit_split,
        **common.run_options(),
    )
    emit_result("featurize", result, common)


@stage_command(app, "train")
def train_cmd(
    features: Annotated[
        str,
        typer.Argument(
            metavar="FEATURES", help="Features artifact (with a label).", show_default=False
        ),
    ],
    config: Annotated[
        str,
        typer.Option(
            "--config",
            metavar="CONFIG",
            help="Train config (JSON/TOML): estimator, params, seed, tuning.",
            show_default=False,
        ),
    ],
    *,
    common: Common,
) -> None:
    """Train a scikit-learn estimator (optionally tuned) into a self-contained model artifact."""
    from ..stages.train import train

    result = train(
        features,
        common.out_path(),
        config=config,
        **common.run_options(),
    )
    if result.manifest and not common.quiet and not result.dry_run:
        s = result.manifest["summary"]
        parts = [f"{s['estimator']}"]
        if s.get("cv_score") is not None:
            parts.append(f"cv {s['scoring']}={s['cv_score']:.4f}")
        for split, values in s["metrics"].items():
            parts.append(split + " " + " ".join(f"{k}={v:.4f}" for k, v in values.items()))
        emit_result("train", result, common, details="; ".join(parts))
        return
    emit_result("train", result, common)


@stage_command(app, "evaluate")
def evaluate_cmd(
    model: Annotated[
        str, typer.Argument(metavar="MODEL", help="Model artifact.", show_default=False)
    ],
    dataset: Annotated[
        str,
        typer.Argument(
            metavar="DATASET",
            help="Dataset artifact (raw columns, with the label).",
            show_default=False,
        ),
    ],
    config: Annotated[
        str,
        typer.Option(
            "--config",
            metavar="CONFIG",
            help="Evaluate config: slices, sensitive columns, thresholds.",
            show_default=False,
        ),
    ],
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            metavar="NAME",
            help="Split to evaluate on (default: eval, else the only split).",
        ),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            metavar="MODEL",
            help="Compare with this model (or REGISTRY/NAME: the version it serves) on the same data.",
        ),
    ] = None,
    *,
    common: Common,
) -> None:
    """Metrics overall, per slice and per group; thresholds and a baseline decide the blessing (exit 1 when not blessed)."""
    from ..stages.evaluate import evaluate

    result = evaluate(
        model,
        dataset,
        common.out_path(),
        config=config,
        split=split,
        baseline=baseline,
        **common.run_options(),
    )
    if result.manifest and not common.quiet and not result.dry_run:
        from .render import blessing_table

        blessing_table(result.path / "blessing.json")
    emit_result("evaluate", result, common, details=_metrics_line(result))


def _metrics_line(result) -> str:
    if not result.manifest:
        return ""
    s = result.manifest["summary"]
    metrics = " ".join(
        f"{k}={v:.4f}" for k, v in s.get("metrics", {}).items() if isinstance(v, float)
    )
    return f"blessed={'true' if s['blessed'] else 'false'} failed={s['failed']}/{s['checks']} rows={s['rows']} {metrics}"


@stage_command(app, "predict")
def predict_cmd(
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL|REGISTRY/NAME",
            help="Model artifact, or a registry model (the version it serves).",
            show_default=False,
        ),
    ],
    dataset: Annotated[
        str, typer.Argument(metavar="DATASET", help="Dataset artifact.", show_default=False)
    ],
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            metavar="NAME",
            help="Only this split (default: every split, with a split column).",
        ),
    ] = None,
    keep: Annotated[
        list[str] | None,
        typer.Option(
            "--keep", metavar="COLUMN", help="Copy this input column to the output (repeatable)."
        ),
    ] = None,
    *,
    common: Common,
) -> None:
    """Batch predictions (prediction, proba_<class>) with the same code as the server."""
    from ..stages.predict import predict

    out = common.out_path(allow_stdout=True)
    result = predict(
        model,
        dataset,
        out,
        split=split,
        keep=keep or [],
        **common.run_options(),
    )
    if out is None and result.manifest is not None:
        _table_to_stdout(result.path / "predictions.parquet")
        common = Common(**{**common.__dict__, "json": False})
    emit_result("predict", result, common)


@store_command(app, "whatif")
def whatif_cmd(
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL", help="Model artifact (or REGISTRY/NAME).", show_default=False
        ),
    ],
    row: Annotated[
        str,
        typer.Option(
            "--row",
            metavar="JSON",
            help="The example: a JSON object, or @file.json.",
            show_default=False,
        ),
    ],
    vary: Annotated[
        list[str] | None,
        typer.Option(
            "--vary",
            metavar="COLUMN[=V1,V2,...]",
            help="Vary this input (default values: a grid over the training range, or the domain). Repeatable; none: every input.",
        ),
    ] = None,
    *,
    common: StoreCommon,
) -> None:
    """How one example's prediction changes as one of its inputs changes (--json: an array, one object per varied column)."""
    from ..model.artifact import Model
    from ..model.whatif import parse_row, parse_vary, whatif
    from ..store.registry import resolve_model
    from ..store.store import Store
    from .render import print_json, print_table

    st = Store.open(common.store)
    m = Model.load(st.resolve(resolve_model(model)))
    results = whatif(m, parse_row(row), parse_vary(vary or [], m.signature))
    if common.json:
        print_json(results)
        return
    for r in results:
        classes = m.class_names or []
        rows = [
            [
                x["value"],
                x["prediction"],
                *(f"{x['probabilities'][c]:.3f}" for c in classes if x["probabilities"]),
            ]
            for x in r["rows"]
        ]
        cols = [
            "value",
            "prediction",
            *(f"P({c})" for c in classes if r["rows"] and r["rows"][0]["probabilities"]),
        ]
        print_table(cols, rows, title=f"varying {r['column']}")


@app.command("deploy")
def deploy_cmd(
    model: Annotated[
        str | None,
        typer.Argument(
            metavar="MODEL",
            help="Model artifact to deploy (not with --rollback).",
            show_default=False,
        ),
    ] = None,
    evaluation: Annotated[
        str | None,
        typer.Option(
            "--evaluation", metavar="EVALUATION", help="The evaluation that blessed this model."
        ),
    ] = None,
    registry: Annotated[
        Path,
        typer.Option(
            "--registry", metavar="REGISTRY", help="Registry directory.", show_default=False
        ),
    ] = Path("registry"),
    name: Annotated[
        str | None,
        typer.Option(
            "--name", metavar="NAME", help="Model name in the registry (default: its only one)."
        ),
    ] = None,
    allow_unblessed: Annotated[
        bool,
        typer.Option(
            "--allow-unblessed", help="Deploy even if not blessed (recorded in the history)."
        ),
    ] = False,
    message: Annotated[
        str, typer.Option("--message", metavar="TEXT", help="A note for the history.")
    ] = "",
    rollback: Annotated[
        bool,
        typer.Option(
            "--rollback", help="Point back at the previous version in the history (or --to N)."
        ),
    ] = False,
    to: Annotated[
        int | None, typer.Option("--to", metavar="N", help="With --rollback: the version to serve.")
    ] = None,
    json_: Annotated[
        bool, typer.Option("--json", help="Print one JSON line with the result.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Accepted for symmetry; never bypasses a gate.")
    ] = False,
    store: Annotated[
        str | None, typer.Option("--store", metavar="DIR", help="Store directory.")
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show a traceback on internal errors.")
    ] = False,
) -> None:
    """Put a blessed model in the registry and serve it (exit 1 when refused); or roll back."""
    from .common import handle_errors

    with handle_errors(debug):
        from ..stages import deploy as reg
        from ..store.store import Store
        from .render import print_json_line, stderr_console

        if rollback:
            if model is not None or evaluation is not None:
                raise BadInput("--rollback takes no MODEL or --evaluation")
            result = reg.rollback(registry, name=name, to=to, message=message)
        else:
            if model is None:
                raise BadInput("give MODEL to deploy (or --rollback)")
            st = Store.open(store, near=registry.absolute().parent)
            result = reg.deploy(
                st,
                model,
                evaluation,
                registry,
                name=name,
                allow_unblessed=allow_unblessed,
                message=message,
            )
        if json_:
            print_json_line(result.as_json())
        if not quiet:
            where = f"{result.registry}/{result.name}"
            text = (
                f"deploy: {where} up to date (serving version {result.version})"
                if result.up_to_date
                else f"deploy: {where} now serves version {result.version} (model {result.model[:12]}, {result.action})"
            )
            stderr_console().print(text, markup=False)


@app.command("serve")
def serve_cmd(
    registry: Annotated[
        Path,
        typer.Option(
            "--registry",
            metavar="REGISTRY",
            help="Registry directory to serve.",
            show_default=False,
        ),
    ] = Path("registry"),
    host: Annotated[
        str, typer.Option("--host", metavar="HOST", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", metavar="PORT", help="Port to listen on.")] = 8501,
    workers: Annotated[int, typer.Option("--workers", metavar="N", help="Worker processes.")] = 1,
    log_dir: Annotated[
        Path | None,
        typer.Option(
            "--log-dir",
            metavar="DIR",
            help="Append requests and predictions to Parquet files here.",
        ),
    ] = None,
    log_exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--log-exclude", metavar="COLUMN", help="Keep this column out of the logs (repeatable)."
        ),
    ] = None,
    log_sample: Annotated[
        float,
        typer.Option("--log-sample", metavar="FRACTION", help="Log this fraction of requests."),
    ] = 1.0,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show a traceback on internal errors.")
    ] = False,
) -> None:
    """Serve every model in the registry over HTTP (TF Serving's REST API and MLflow's /invocations)."""
    from .common import handle_errors

    with handle_errors(debug):
        from ..serving.server import run

        run(
            registry,
            host=host,
            port=port,
            workers=workers,
            log_dir=log_dir,
            log_exclude=log_exclude or [],
            log_sample=log_sample,
        )
