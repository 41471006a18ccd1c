"""`mlstage evaluate`: metrics, slices, fairness, thresholds, the blessing."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import app
from .common import Common, emit_result, stage_command


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
        from ..model.evaluation_files import BLESSING
        from .render import blessing_table

        blessing_table(result.folder / BLESSING)
    emit_result("evaluate", result, common, details=_metrics_line(result))


def _metrics_line(result) -> str:
    if not result.manifest:
        return ""
    s = result.manifest["summary"]
    metrics = " ".join(
        f"{k}={v:.4f}" for k, v in s.get("metrics", {}).items() if isinstance(v, float)
    )
    return f"blessed={'true' if s['blessed'] else 'false'} failed={s['failed']}/{s['checks']} rows={s['rows']} {metrics}"
