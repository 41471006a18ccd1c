"""`mlstage train`: a scikit-learn estimator, optionally tuned."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import app
from .common import Common, EngineOption, emit_result, stage_command


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
    engine: EngineOption = None,
    *,
    common: Common,
) -> None:
    """Train a scikit-learn estimator (optionally tuned) into a self-contained model artifact."""
    from ..stages.train import train

    result = train(
        features,
        common.out_path(),
        config=config,
        engine=engine,
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
