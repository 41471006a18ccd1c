"""`mlstage monitor`: production requests against training; exit 1 calls for retraining."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import ExitCode
from .app import app
from .common import Common, EngineOption, emit_result, stage_command


@stage_command(app, "monitor")
def monitor_cmd(
    requests: Annotated[
        str,
        typer.Option(
            "--requests",
            metavar="LOGDIR|DATASET",
            help="The server's --log-dir, or a dataset artifact of production inputs.",
            show_default=False,
        ),
    ],
    baseline: Annotated[
        str,
        typer.Option(
            "--baseline",
            metavar="STATS",
            help="Training statistics (their train split) to measure drift against.",
            show_default=False,
        ),
    ],
    schema: Annotated[
        str | None,
        typer.Option(
            "--schema",
            metavar="SCHEMA",
            help="Check the requests in the schema's serving environment (else drift only).",
        ),
    ] = None,
    evaluation: Annotated[
        str | None,
        typer.Option(
            "--evaluation",
            metavar="EVALUATION",
            help="Compare predictions with this evaluation (or REGISTRY/NAME: the served version's); its thresholds gate live metrics.",
        ),
    ] = None,
    feedback: Annotated[
        str | None,
        typer.Option(
            "--feedback",
            metavar="LABELS",
            help="Labels that arrived later: a dataset artifact or CSV/Parquet/JSONL file.",
        ),
    ] = None,
    join: Annotated[
        list[str] | None,
        typer.Option(
            "--join",
            metavar="COLUMN",
            help="Column(s) joining feedback to requests, e.g. --join request_id [--join row].",
        ),
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(
            "--window", metavar="LENGTH", help="Only requests from the last 30m, 24h, 7d, 2w..."
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", metavar="TIME", help="End of the window (default: now, UTC)."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", metavar="NAME", help="The model to check when the logs hold several."
        ),
    ] = None,
    allow_empty: Annotated[
        bool,
        typer.Option("--allow-empty", help="Exit 0, not 4, when the window holds no request."),
    ] = False,
    compare: Annotated[
        str | None,
        typer.Option(
            "--compare",
            metavar="REGISTRY/NAME",
            help="Compare the stable version with the running canary or shadow: exit 0 promote, 1 roll back.",
        ),
    ] = None,
    engine: EngineOption = None,
    *,
    common: Common,
) -> None:
    """Compare production requests with training; exit 1 when retraining is called for,
    4 when no request was seen (silence is not health). With --compare: exit 0 to
    promote the canary or shadow, 1 to roll it back."""
    from ..stages.monitor import monitor

    out = common.out_path(allow_stdout=True)
    result = monitor(
        requests,
        out,
        baseline=baseline,
        schema=schema,
        evaluation=evaluation,
        feedback=feedback,
        join=join,
        window=window,
        until=until,
        model=model,
        allow_empty=allow_empty,
        compare=compare,
        engine=engine,
        **common.run_options(),
    )
    if result.manifest and not common.quiet and not result.dry_run:
        from ..model.monitor_report import REPORT
        from .render import monitor_table

        monitor_table(result.folder / REPORT)
    if out is None and result.manifest is not None:  # -o -: the report itself on stdout
        import sys

        from ..model.monitor_report import REPORT

        sys.stdout.write((result.folder / REPORT).read_text())
        common = Common(**{**common.__dict__, "json": False})
    if result.exit_code == ExitCode.NO_TRAFFIC:
        _say_no_traffic(requests, result.manifest)
    emit_result("monitor", result, common)


def _say_no_traffic(requests: str, manifest: dict) -> None:
    """Said even with --quiet: exit 4 in a cron log needs its reason beside it."""
    import sys

    p = manifest["params"]
    files = manifest["summary"].get("files")
    if manifest["summary"].get("verdict") == "undecided":
        from ..model.version_compare import MIN_ROWS

        sys.stderr.write(
            f"monitor: the candidate answered {manifest['summary']['candidate_rows']} rows in the"
            f" window, too few to judge (at least {MIN_ROWS}); exit {int(ExitCode.NO_TRAFFIC)}\n"
        )
        return
    if p.get("since"):
        where = f"between {p['since']} and {p['until']} (UTC)"
    else:
        where = f"before {p['until']} (UTC)" if p.get("until") else "at all"
    sys.stderr.write(
        f"monitor: {requests}: no request {where} in {files or 0} log file(s)"
        + f"; exit {int(ExitCode.NO_TRAFFIC)} (pass --allow-empty to accept an empty window)\n"
    )
