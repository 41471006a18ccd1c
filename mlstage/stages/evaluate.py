"""`evaluate`: metrics overall, per slice and per sensitive group; importance, partial
dependence and curves; thresholds and a comparison with a baseline model; the blessing.

The model runs on the raw evaluation split (default `eval`, else the only split)
through the same prediction core as `serve`. `blessing.json` lists every check;
`blessed` is false (exit 1) when any check fails. Slices under `min_slice_size`
rows are reported but not gated. A baseline identical to the candidate is ignored.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from ..core.documents import validate
from ..core.jsonio import jsonable
from ..data.splits import Split, eval_split, splits_of
from ..errors import BadInput
from ..model.artifact import read_signature
from ..model.evaluation_files import write_evaluation
from ..store.refs import load_document, load_input
from ..store.registry import resolve_model
from ..store.store import Store, store_for
from .base import StagePlan, StageResult, run_stage

# 2: fairness groups under min_slice_size not gated, regression fairness; 3: per-group sums
# in row order (reproducible bits); 4: bootstrap intervals, thresholds on a bound
ALGORITHM = 4


def _signature(path: Path) -> dict[str, Any]:
    return read_signature(path)


def check_config(cfg: Any, sig: dict[str, Any], columns: dict[str, str], where: str) -> str | None:
    """Everything checkable before reading data; returns the positive class (text) or None."""
    from ..core.hashing import canonical_text
    from ..model.metrics import FAIRNESS, check_metric

    validate(cfg, "mlstage-evaluate/1", where)
    task = sig["task"]
    classes = sig["label"].get("classes")
    positive = None
    if task == "classification":
        if "positive" in cfg:
            positive = canonical_text(cfg["positive"])
            if positive not in classes:
                raise BadInput(
                    f"at $.positive: {positive!r} is not a class of the model; classes: {', '.join(classes)}",
                    file=where,
                )
        elif len(classes) == 2:
            positive = classes[1]
        elif cfg.get("sensitive"):
            raise BadInput(
                "at $.positive: a multiclass fairness check needs the positive class", file=where
            )
    for name, spec in cfg.get("thresholds", {}).items():
        check_metric(name, task, f"{where}: at $.thresholds")
        for at, bounds in [
            ("", spec),
            *((f".slices.{k}", v) for k, v in spec.get("slices", {}).items()),
        ]:
            if bounds.get("min", -math.inf) > bounds.get("max", math.inf):
                raise BadInput(f"at $.thresholds.{name}{at}: min is above max", file=where)
        if name in FAIRNESS and not cfg.get("sensitive"):
            raise BadInput(
                f"at $.thresholds.{name}: a fairness threshold needs `sensitive` columns",
                file=where,
            )
        for sl in spec.get("slices", {}):
            # "col=value" or "a=x,b=y" for a cross: a value may hold commas itself
            # ("city=Washington, DC"), so the key is matched against each slice's columns
            if slice_parts(sl, cfg.get("slices", []), columns) is None:
                raise BadInput(
                    f"at $.thresholds.{name}.slices: {sl!r} is not in a slice the config asks for",
                    file=where,
                )
    for name in cfg.get("change_thresholds", {}):
        check_metric(name, task, f"{where}: at $.change_thresholds")
    if "importance" in cfg and "metric" in cfg["importance"]:
        check_metric(cfg["importance"]["metric"], task, f"{where}: at $.importance.metric")
    for i, spec in enumerate(cfg.get("slices", [])):
        if len(set(spec)) != len(spec):
            raise BadInput(f"at $.slices[{i}]: a cross names a column twice", file=where)
        for col in spec:
            if col not in columns:
                raise BadInput(f'at $.slices[{i}]: no column "{col}" in the dataset', file=where)
    for i, col in enumerate(cfg.get("sensitive", [])):
        if col not in columns:
            raise BadInput(f'at $.sensitive[{i}]: no column "{col}" in the dataset', file=where)
    return positive


def evaluate(
    model: str | Path,
    dataset: str | Path,
    out: str | Path | None,
    *,
    config: str | Path,
    split: str | None = None,
    baseline: str | Path | None = None,
    store: str | Path | Store | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> StageResult:
    """Evaluate MODEL on DATASET against CONFIG's thresholds (and BASELINE); `blessed` gates."""
    st = store_for(store, out)
    model_path, model_manifest, model_in = load_input(
        st, resolve_model(str(model)), "model", ("model",)
    )
    data_path, data_manifest, data_in = load_input(st, str(dataset), "data", ("dataset",))
    cfg, cfg_in = load_document(st, str(config), "config", "config.json", "evaluation")
    sig = _signature(model_path)
    columns = data_manifest["summary"]["schema"]
    positive = check_config(cfg, sig, columns, str(config))
    for col in [*sig["inputs"], sig["label"]["column"]]:
        if col not in columns:
            raise BadInput(f'no column "{col}", which the model needs', file=str(dataset))
    inputs = [model_in, data_in, cfg_in]
    base_path = None
    if baseline is not None:
        base_path, base_manifest, base_in = load_input(
            st, resolve_model(str(baseline)), "baseline", ("model",)
        )
        base_sig = _signature(base_path)
        if base_sig["task"] != sig["task"] or base_sig["label"]["column"] != sig["label"]["column"]:
            raise BadInput(
                f"the baseline predicts {base_sig['label']['column']} ({base_sig['task']}), the model"
                f" {sig['label']['column']} ({sig['task']}): they cannot be compared",
                file=str(baseline),
            )
        missing = [c for c in base_sig["inputs"] if c not in columns]
        if missing:
            raise BadInput(
                f'no column "{missing[0]}", which the baseline model needs', file=str(dataset)
            )
        if base_sig["label"].get("classes") != sig["label"].get("classes"):
            raise BadInput(
                f"the baseline's classes ({', '.join(base_sig['label']['classes'] or [])}) differ"
                f" from the model's ({', '.join(sig['label']['classes'] or [])}): they cannot be compared",
                file=str(baseline),
            )
        if base_manifest["id"] == model_manifest["id"]:
            base_path = None  # the model itself: nothing to compare, left out of the fingerprint
        else:
            inputs.append(base_in)
    splits = splits_of(data_path, data_manifest)
    split_name = eval_split(splits, split, str(dataset))
    plan = StagePlan(
        "evaluate", "evaluation", ALGORITHM, {"split": split_name, "config": cfg}, inputs
    )

    def produce(tmp: Path) -> dict[str, Any]:
        from ..model.artifact import Model

        result = run_evaluation(
            Model.load(model_path),
            splits[split_name],
            cfg,
            positive,
            Model.load(base_path) if base_path else None,
        )
        result["metrics"]["split"] = split_name
        write_evaluation(tmp, result["metrics"], result["curves"], result["blessing"])
        b = result["blessing"]
        failed = [c for c in b["checks"] if c["passed"] is False]
        headline = {
            k: v
            for k, v in result["metrics"]["overall"].items()
            if k != "confusion_matrix" and v is not None
        }
        return jsonable(
            {
                "blessed": b["blessed"],
                "model": b["model"],
                "baseline": b["baseline"],
                "rows": result["metrics"]["rows"],
                "checks": len(b["checks"]),
                "failed": len(failed),
                "metrics": headline,
            }
        )

    return run_stage(
        plan, produce, Path(out) if out else None, store=st, force=force, dry_run=dry_run
    )


def run_evaluation(
    model, split: Split, cfg: dict[str, Any], positive: str | None, base
) -> dict[str, Any]:
    import polars as pl

    from ..core.missing import drop_unlabelled, is_missing, missing_as_null
    from ..model import inspection
    from ..model import intervals as ci
    from ..model import metrics as ev
    from ..validation.compute import slice_key_expr

    label = model.label
    frame, unlabelled = drop_unlabelled(pl.read_parquet(split.parts), label, str(split))
    y_true = frame[label].to_list()
    pred, proba = model.predict_frame(frame)
    outcome = ev.Outcomes(model.task, y_true, pred, proba, model.class_names, positive)
    if model.task == "classification" and (outcome.y < 0).any():
        unknown = sorted({str(v) for v, i in zip(y_true, outcome.y, strict=True) if i < 0})[:5]
        raise BadInput(
            f"label values the model has no class for: {', '.join(unknown)}",
            file=str(split),
            column=label,
        )
    overall = ev.overall(outcome)
    boot = ci.Settings.of(cfg)
    spans, reps = ci.overall(outcome, boot) if boot.resamples else ({}, {})
    min_size = cfg.get("min_slice_size", 1)
    slices = []
    for spec in cfg.get("slices", []):
        keyed = frame.select(slice_key_expr(spec, frame.schema), *spec)
        keys = keyed["key"].to_numpy()
        # The slice's values from the data itself: a name like "city=Washington, DC" cannot be split back.
        values_of = {
            r["key"]: {c: ("<missing>" if is_missing(r[c]) else str(r[c])) for c in spec}
            for r in keyed.unique(subset="key").iter_rows(named=True)
        }
        per_slice = ci.by_group(outcome, keys, boot) if boot.resamples else {}
        for name, v in sorted(ev.grouped(outcome, keys).items()):
            values = values_of[name]
            slices.append(
                {
                    "slice": values,
                    "name": name,
                    "rows": v["rows"],
                    "gated": v["rows"] >= min_size,
                    "metrics": v["metrics"],
                    "intervals": per_slice.get(name),
                }
            )
    _check_slice_names(cfg, slices, model.signature, str(split))
    fairness = {}
    for col in cfg.get("sensitive", []):
        groups = (
            frame.select(missing_as_null(col, frame.schema[col]).cast(pl.String))
            .to_series()
            .fill_null("<missing>")
            .to_numpy()
        )
        fairness[col] = ev.fairness(outcome, groups, min_size)
        if boot.resamples:
            fairness[col]["intervals"] = ci.fairness(outcome, groups, min_size, boot)
    seed = cfg.get("seed", 0)
    imp_cfg = cfg.get("importance", {})
    sample = (
        frame.sample(n=min(frame.height, imp_cfg.get("sample", 5000)), seed=seed)
        if frame.height
        else frame
    )
    metric = imp_cfg.get("metric", "accuracy" if model.task == "classification" else "r2")
    importance = inspection.permutation_importance(
        model, sample, sample[label].to_list(), positive, metric, imp_cfg.get("repeats", 3), seed
    )
    pd_cfg = cfg.get("partial_dependence", {})
    top = [c for c in importance][: pd_cfg.get("top", 3)]
    pd_sample = sample.head(pd_cfg.get("sample", 1000))
    curves = inspection.curves(outcome)
    curves["partial_dependence"] = inspection.partial_dependence(
        model, pd_sample, top, pd_cfg.get("grid", 10), positive
    )
    base_overall = None
    diffs: dict[str, Any] = {}
    if base is not None:
        bpred, bproba = base.predict_frame(frame)
        base_outcome = ev.Outcomes(base.task, y_true, bpred, bproba, base.class_names, positive)
        base_overall = ev.overall(base_outcome)
        if boot.resamples:  # paired: the same weights on the same rows for both models
            diffs = ci.differences(reps, ci.overall(base_outcome, boot)[1], boot)
    checks = _checks(
        cfg, overall, slices, fairness, base_overall, outcome.proba is not None, spans, diffs, boot
    )
    metrics = {
        "format": "mlstage-evaluation/1", "task": model.task, "rows": frame.height, "unlabelled_rows": unlabelled,
        "classes": model.class_names,
        "positive": positive, "overall": overall, "intervals": spans,
        "bootstrap": boot.describe() if boot.resamples else None,
        "slices": slices, "fairness": fairness,
        "importance": {"metric": metric, "rows": sample.height, "values": importance},
        "baseline": {"model": base.id, "overall": base_overall,
                     "difference_intervals": diffs} if base is not None else None,
    }  # fmt: skip
    blessing = {
        "format": "mlstage-blessing/1",
        "blessed": all(c["passed"] is not False for c in checks),
        "model": model.id,
        "baseline": base.id if base is not None else None,
        "checks": checks,
    }
    return {"metrics": metrics, "curves": curves, "blessing": blessing}


def slice_parts(name: str, asked: list[list[str]], columns) -> list[tuple[str, str]] | None:
    """(column, value) of each part of a slice key "a=x" or "a=x,b=y", by the config's
    slices (a value may hold commas: "city=Washington, DC"); None when the key is in none
    of them. A key is cut where ",COL=" names a column of the data, so "g=F,h=F" is the
    cross of g and h (not g's value "F,h=F"); a key whose values hold such a text itself
    is taken in the reading that the config asks for."""
    cols = sorted(columns, key=len, reverse=True)
    boundary = "|".join(re.escape(c) for c in cols)
    cut = re.split(f",(?=(?:{boundary})=)", name) if cols else [name]
    readings = [cut] + [[name]] if len(cut) > 1 else [cut]
    for parts in readings:
        pairs = [tuple(p.split("=", 1)) for p in parts]
        if all(len(q) == 2 for q in pairs) and [c for c, _ in pairs] in asked:
            return [(c, v) for c, v in pairs]
    return None


def _check_slice_names(cfg, slices, signature, where: str) -> None:
    """A threshold on a slice the data does not hold is a typo unless training saw its values.

    `sex=Alien` would otherwise pass silently (a disabled gate); `race=Other`, seen in
    training but absent from this split, is reported as a check with no rows."""
    found = {s["name"] for s in slices}
    for metric, spec in cfg.get("thresholds", {}).items():
        for name in spec.get("slices", {}):
            if name in found:
                continue
            known = True
            parts = slice_parts(name, cfg.get("slices", []), signature["inputs"]) or [("", "")]
            for col, value in parts:
                domain = signature["inputs"].get(col, {}).get("domain")
                if domain is None or value not in domain:
                    known = False
            if not known:
                nearby = sorted(n for n in found if n.split("=")[0] == name.split("=")[0])[:10]
                raise BadInput(
                    f"at $.thresholds.{metric}.slices: no slice {name!r} in the data"
                    f" (slices found: {', '.join(nearby) or 'none'})",
                    file=where,
                )


def _checks(
    cfg, overall, slices, fairness, base_overall, has_proba, spans, diffs, boot
) -> list[dict[str, Any]]:
    from ..model.gate import bound_checks, is_number
    from ..model.metrics import FAIRNESS, PROBABILITY_METRICS

    checks = []

    def bound(metric, where, value, spec, *, gated=True, note=None, span=None, rows=None):
        if not has_proba and metric in PROBABILITY_METRICS:
            note = note or f"{metric} needs probabilities, which this model does not give"
        on = spec.get("on", "point")
        gate_value, insufficient = value, False
        if on != "point" and gated:
            if span:
                gate_value = span[0] if on == "lower" else span[1]
            elif is_number(value) and rows is not None and rows < boot.min_rows:
                # too few rows for an interval: said, not passed or failed by luck
                insufficient, gated = True, False
                note = f"insufficient: {rows} rows, an interval needs at least {boot.min_rows}"
            else:  # a bound that cannot be measured must not pass (as a point cannot)
                gate_value = None
                note = (
                    f"no {on} bound for {metric} (intervals.resamples 0, no interval for this"
                    " metric, or the metric is undefined in too many resamples)"
                )
        for check in bound_checks(metric, gate_value, spec, gated=gated, note=note):
            checks.append({"metric": check["metric"], "slice": where, "value": value,
                           "interval": span, "on": on, "threshold": check["threshold"],
                           "passed": check["passed"], "insufficient": insufficient,
                           "kind": "absolute", "note": check["note"]})  # fmt: skip

    by_name = {s["name"]: s for s in slices}
    for metric, spec in cfg.get("thresholds", {}).items():
        if metric in FAIRNESS:
            for col, f in fairness.items():
                small = [g["rows"] for g in f["groups"].values() if g["gated"]]
                bound(metric, col, f[metric], spec, span=(f.get("intervals") or {}).get(metric),
                      rows=min(small) if small else None)  # fmt: skip
            continue
        bound(metric, None, overall.get(metric), spec, span=spans.get(metric))
        for name, sspec in spec.get("slices", {}).items():
            s = by_name.get(name)
            if s is None:
                bound(metric, name, None, sspec, gated=False, note="no rows in this slice")
            else:
                note = f"{s['rows']} rows, under min_slice_size" if not s["gated"] else None
                span = (s.get("intervals") or {}).get(metric)
                bound(metric, name, s["metrics"].get(metric), {**sspec, "on": sspec.get("on", spec.get("on", "point"))},
                      gated=s["gated"], note=note, span=span, rows=s["rows"])  # fmt: skip
    for metric, spec in cfg.get("change_thresholds", {}).items():
        if base_overall is None:
            checks.append(
                {
                    "metric": metric,
                    "slice": None,
                    "value": overall.get(metric),
                    "threshold": spec,
                    "passed": None,
                    "kind": "change",
                    "note": "no baseline: change thresholds skipped",
                }
            )
            continue
        new, old = overall.get(metric), base_overall.get(metric)
        if not (is_number(new) and is_number(old)):
            checks.append(
                {
                    "metric": metric,
                    "slice": None,
                    "value": new,
                    "threshold": spec,
                    "passed": None,
                    "kind": "change",
                    "note": "not computable",
                }
            )
            continue
        change = new - old
        span = diffs.get(metric)
        if spec.get("relative"):
            scale = abs(old) if old else None
            change = change / scale if scale else float("inf") if change else 0.0
            span = [x / scale for x in span] if span and scale else None
        on = spec.get("on", "point")
        gated, note = change, None
        if on != "point":
            gated = (span[0] if on == "lower" else span[1]) if span else None
            note = None if span else "insufficient: no interval for the paired difference"
        passed = None if gated is None else True
        if gated is not None and "max_decrease" in spec and -gated > spec["max_decrease"]:
            passed = False
        if gated is not None and "max_increase" in spec and gated > spec["max_increase"]:
            passed = False
        checks.append(
            {
                "metric": metric,
                "slice": None,
                "value": new,
                "baseline_value": old,
                "change": change,
                "interval": span,
                "on": on,
                "threshold": {k: v for k, v in spec.items() if k != "on"},
                "passed": passed,
                "insufficient": gated is None,
                "kind": "change",
                "note": note,
            }
        )
    return checks
