"""`monitor`: compare what production sees with training, and say whether to retrain.

Reads the server's request logs (a folder of `requests-*.parquet`) or any dataset
artifact of production inputs, optionally restricted to a time window ending at
`until` (default: now, UTC; the resolved bounds are recorded). The inputs are
checked as `validate` checks a split, in the schema's `serving` environment and
against the baseline statistics' train split (the same anomaly types, drift
measures and thresholds; traffic volume is not checked). With an evaluation, the
distribution of predictions is compared with the evaluation's: the predicted class
frequencies (L-infinity) and the positive class's probability histogram (JSD) for
classification, the prediction histogram (JSD) for regression. With feedback labels
joined on the request id (and `row` for many-instance requests), the live metrics are
computed beside the evaluation's and gated by its absolute thresholds.

For classification models with logged probabilities, accuracy, ROC AUC and F1 are
estimated before any label arrives (CBPE, `model.estimate`), and gated by the
evaluation's thresholds as live metrics are.

With `compare` (REGISTRY/NAME while a canary or a shadow runs), the stable version's
requests and the candidate's are also measured side by side, each against its own
evaluation (`model.version_compare`), and the verdict, `promote` or `rollback`, is
the exit code: 0 or 1. A shadow's predictions (`shadow` true in the logs) are otherwise
left out: no client saw them.

`retrain` is true, with one reason per finding, when an input anomaly is an error,
the predictions drifted, an estimated or a live metric fails its threshold: the CLI
exits 1.
No request in the window (an empty or misconfigured log folder, a quiet window) is
its own outcome, `no_traffic` (exit 4): a cron loop must not read silence as health.
The report is written all the same, with `requests.rows` 0; `allow_empty` makes it
exit 0 for those who expect quiet windows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.artifact import Input
from ..core.engine import Engine, engine_for
from ..core.jsonio import jsonable
from ..data.splits import splits_of
from ..errors import BadInput, opt
from ..model.artifact import read_signature
from ..model.estimate import gated_estimate
from ..model.evaluation_files import read_curves, read_metrics
from ..model.live_metrics import live_metrics
from ..model.monitor_report import write_report
from ..model.prediction_drift import prediction_drift
from ..model.version_compare import compare_section, versions_to_compare
from ..serving.logreader import (
    answered,
    in_window,
    only_model,
    parse_until,
    parse_window,
    read_requests,
    requests_source,
)
from ..serving.requestlog import input_name
from ..store.refs import is_artifact_ref, load_input
from ..store.registry import local_ref, resolve_evaluation
from ..store.store import Store, store_for
from .base import StagePlan, StageResult, run_stage

ALGORITHM = 6  # 2: unlabelled feedback rows counted; 3: no_traffic; 4: CBPE estimates;
# 5: the KS p-value as 2 * smirnov, an upper bound of kstwo above 0.3 (validation.drift);
# 6: above N = 10,000 its asymptotic form


def _read_table(st: Store, ref: str, role: str):
    """A dataset artifact (all splits) or a CSV/Parquet/JSON-lines file, and its identity."""
    import polars as pl

    if is_artifact_ref(ref):
        path, manifest, inp = load_input(st, ref, role, ("dataset",))
        parts = [p for s in splits_of(path, manifest).values() for p in s.parts]
        return pl.read_parquet(parts), inp
    p = Path(ref)
    if not p.is_file():
        raise BadInput("no such file or dataset artifact", file=ref)
    readers = {".csv": pl.read_csv, ".parquet": pl.read_parquet, ".jsonl": pl.read_ndjson,
               ".ndjson": pl.read_ndjson}  # fmt: skip
    reader = readers.get(p.suffix.lower())
    if reader is None:
        raise BadInput(f"expected a {', '.join(readers)} file or a dataset artifact", file=ref)
    try:
        frame = reader(p)
    except (pl.exceptions.PolarsError, OSError) as e:
        raise BadInput(f"cannot read it: {e}", file=ref) from None
    return frame, Input(role, st.file_sha256(p), ref)


def _input_types(frame, schema: dict[str, Any]) -> tuple[Any, dict[str, str]]:
    """The model inputs of the requests and their mlstage types.

    A column a flush saw only nulls for has no type of its own: it takes the schema's.
    """
    import polars as pl

    from ..core.coltypes import polars_type, type_name

    names = {c: input_name(c) for c in frame.columns}
    keep = [n for c, n in names.items() if n is not None]
    inputs = frame.select(pl.col(c).alias(n) for c, n in names.items() if n is not None)
    casts = {
        c: polars_type(schema["columns"][c]["type"])
        for c in keep
        if inputs.schema[c] == pl.Null and c in schema.get("columns", {})
    }
    if casts:
        inputs = inputs.with_columns(pl.col(c).cast(t) for c, t in casts.items())
    types = {c: type_name(t) or str(t) for c, t in inputs.schema.items()}
    return inputs, types


# -- predictions --------------------------------------------------------------------
# -- feedback -----------------------------------------------------------------------
# -- the stage ----------------------------------------------------------------------
def monitor(
    requests: str | Path,
    out: str | Path | None,
    *,
    baseline: str | Path,
    schema: str | Path | None = None,
    evaluation: str | Path | None = None,
    feedback: str | Path | None = None,
    join: list[str] | None = None,
    window: str | None = None,
    until: str | None = None,
    model: str | None = None,
    allow_empty: bool = False,
    compare: str | Path | None = None,
    store: str | Path | Store | None = None,
    force: bool = False,
    dry_run: bool = False,
    engine: str | Engine | None = None,
) -> StageResult:
    """Check production requests against training; `retrain` true means exit 1, no
    request in the window exit 4 (unless `allow_empty`). `engine` (a Dask scheduler's
    address, `core.engine`) scans the requests' columns on its workers."""
    from ..validation.schema_rules import read_schema
    from ..validation.statsfile import training_stats

    if feedback is not None and not join:
        raise BadInput(
            f"{opt('feedback')} needs {opt('join')} COLUMN (the request id the labels carry)"
        )
    # REGISTRY/NAME in object storage: read from its local mirror, as a local one
    evaluation = None if evaluation is None else local_ref(evaluation)
    compare = None if compare is None else local_ref(compare)
    if feedback is not None and evaluation is None and compare is None:
        raise BadInput(
            f"{opt('feedback')} needs {opt('evaluation')}: live metrics are gated by its thresholds"
        )
    span = parse_window(window) if window is not None else None
    end = parse_until(until) if (window is not None or until is not None) else None
    since = end - span if span is not None else None
    st = store_for(store, out)
    files, req_in, from_logs = requests_source(st, str(requests))
    _, _, base_in = load_input(st, str(baseline), "baseline", ("stats", "dataset"))
    inputs = [req_in, base_in]
    schema_doc = None
    if schema is not None:
        schema_doc, schema_in = read_schema(st, str(schema))
        inputs.append(schema_in)
    eval_path = eval_manifest = stable = None
    if evaluation is not None and (Path(str(evaluation)) / "serving.json").is_file():
        from ..store.registry import read_serving

        stable = (read_serving(Path(str(evaluation))) or {}).get("version")
    if evaluation is not None:
        eval_path, eval_manifest, eval_in = load_input(
            st, resolve_evaluation(str(evaluation)), "evaluation", ("evaluation",)
        )
        inputs.append(eval_in)
    fb_frame = None
    if feedback is not None:
        fb_frame, fb_in = _read_table(st, str(feedback), "feedback")
        inputs.append(fb_in)
    bounds = {
        "since": since.isoformat() if since else None,
        "until": end.isoformat() if end else None,
    }
    params = {"window": window, **bounds, "model": model, "join": join or None}
    if allow_empty:  # only when set: the runs before it existed keep their ids
        params["allow_empty"] = True
    versions = None
    if compare is not None:
        if not from_logs:
            raise BadInput(
                f"{opt('compare')} needs the server's request logs: a dataset has no version column",
                file=str(requests),
            )
        versions = versions_to_compare(st, Path(compare), inputs)
        params["compare"] = {k: v[0] for k, v in versions.items() if k != "role"}
        params["compare"]["role"] = versions["role"]
        model = model or Path(compare).name
        params["model"] = model
    plan = StagePlan("monitor", "monitor", ALGORITHM, params, inputs)

    def produce(tmp: Path) -> dict[str, Any]:
        import polars as pl

        from ..validation.checks import Checker

        every = read_requests(files, str(requests))
        every, model_name = only_model(every, model, str(requests))
        every = in_window(every, since, end, str(requests))
        frame = answered(every)
        logged = [n for n in map(input_name, frame.columns) if n is not None]  # the inputs
        table, sketches = training_stats(st, str(baseline), "baseline")
        if schema is None:
            rules = _drift_only_schema(table, logged)
        elif from_logs:
            # A server logs the model's inputs less --log-exclude: a schema column that is
            # not there was never sent or was kept out on purpose, not lost.
            kept = {c: spec for c, spec in schema_doc["columns"].items() if c in logged}
            rules = {**schema_doc, "columns": kept}
        else:
            rules = schema_doc
        checker = Checker(rules, "serving", {**table, "sketches": sketches})
        inputs_frame, types = _input_types(frame, rules)
        if schema is None:  # drift only, over the columns training saw
            types = {c: t for c, t in types.items() if c in rules["columns"]}
            inputs_frame = inputs_frame.select(list(types))
        if frame.height:
            checker.check_split(
                "requests", inputs_frame, types, row_counts=False, engine=engine_for(engine)
            )
        errors = [a for a in checker.anomalies if a["severity"] == "error"]
        reasons = [f"{a['type']}: {a['description']}" for a in errors]
        predictions = live = estimated = None
        # REGISTRY/NAME's evaluation is the stable version's: a canary's answers are not
        # held against it (`--compare` judges them against their own)
        served_by = frame
        if stable is not None and "version" in frame.columns and frame.height:
            served_by = frame.filter(pl.col("version") == stable)
        if eval_path is not None:
            metrics, curves = read_metrics(eval_path), read_curves(eval_path)
            predictions = prediction_drift(served_by, metrics, curves, rules)
            cfg = eval_manifest["params"].get("config", {})
            estimated = gated_estimate(served_by, metrics, curves, cfg)
            for c in estimated.get("checks", []):
                if c["passed"] is False:
                    bound = ", ".join(f"{k} {v:g}" for k, v in c["threshold"].items())
                    reasons.append(
                        f"estimated_metric: {c['metric']} {c['value']:.4g} (CBPE, before labels)"
                        f" fails its threshold ({bound})"
                    )
            for name in predictions["drifted"]:
                m = predictions["measures"][name]
                reasons.append(
                    f"prediction_drift: {name} moved from the evaluation's ({m['metric'].upper()}"
                    f" {m['value']:.3f} > {m['threshold']:g})"
                )
            if fb_frame is not None and served_by.height:  # no traffic: nothing to join to
                label = _label_of(st, eval_manifest, fb_frame, join)
                live = live_metrics(served_by, fb_frame, join, label, metrics, cfg, str(feedback))
                for c in live["checks"]:
                    if c["passed"] is False:
                        bound = ", ".join(f"{k} {v:g}" for k, v in c["threshold"].items())
                        reasons.append(
                            f"live_metric: {c['metric']} {c['value']:.4g} fails its threshold ({bound})"
                        )
        comparison = None
        if versions is not None:
            fb = None if fb_frame is None else (fb_frame, join, str(feedback))
            comparison = compare_section(every, frame, versions, rules, fb, st)
        served = {}
        if "version" in frame.columns and frame.height:
            served = {
                str(v): n for v, n in frame["version"].value_counts().sort("version").iter_rows()
            }
        ts = frame["ts"] if "ts" in frame.columns and frame.height else None
        first, last = (None, None) if ts is None else (str(ts.min()), str(ts.max()))
        doc = jsonable({
            "format": "mlstage-monitor/1",
            "retrain": bool(reasons),
            "reasons": reasons,
            "environment": "serving",
            "requests": {
                "rows": frame.height, "files": len(files), "model": model_name, "versions": served,
                "window": {"length": window, **bounds} if window else None,
                "first": first, "last": last,
            },
            "anomalies": checker.anomalies,
            "drift": checker.drift.get("requests", {}),
            "predictions": predictions,
            "estimated": estimated,
            "live": live,
            **({"comparison": comparison} if comparison is not None else {}),
        })  # fmt: skip
        write_report(tmp, doc)
        verdict = {}
        if comparison is not None:  # too few rows to judge is exit 4, unless harm is seen
            verdict = {"verdict": comparison["verdict"],
                       "no_traffic": comparison["verdict"] == "undecided",
                       "candidate_rows": comparison["candidate"]["rows"]}  # fmt: skip
        return {
            "retrain": bool(reasons),
            "no_traffic": frame.height == 0 and not allow_empty,
            "reasons": len(reasons),
            "rows": frame.height,
            "files": len(files),
            "errors": len(errors),
            "warnings": len(checker.anomalies) - len(errors),
            "live_rows": live["joined"] if live else None,
            **verdict,
        }

    return run_stage(
        plan, produce, Path(out) if out else None, store=st, force=force, dry_run=dry_run
    )


def _drift_only_schema(table: dict[str, Any], present: list[str]) -> dict[str, Any]:
    """Without --schema: the logged columns training saw, typed as it saw them, with the
    default drift thresholds `schema` would write and no other rule (which columns
    should be there, and which is the label, only a schema says)."""
    from ..validation.schema_rules import DEFAULT_DRIFT

    columns = {c: {"type": s["type"]} for c, s in table["columns"].items() if c in present}
    return {"columns": columns, "drift": dict(DEFAULT_DRIFT)}


def _label_of(st: Store, eval_manifest: dict[str, Any], feedback, join: list[str]) -> str:
    """The label column: the evaluated model's (from its signature, found by id in the
    store or at the path the evaluation recorded), else the feedback's only other column."""
    from ..errors import MlstageError

    model = next(i for i in eval_manifest["inputs"] if i["role"] == "model")
    for ref in (f"@{model['id']}", model["path"]):
        try:
            path, manifest = st.load(ref)
        except MlstageError:
            continue
        if manifest["id"] == model["id"]:
            return read_signature(path)["label"]["column"]
    others = [c for c in feedback.columns if c not in join]
    if len(others) == 1:
        return others[0]
    raise BadInput(
        f"the evaluated model {model['id'][:12]} is not in this store, so its label column is"
        f" unknown: give feedback with only the join columns and the label"
    )
