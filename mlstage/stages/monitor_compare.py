"""`monitor --compare REGISTRY/NAME`: what the stable version and the running canary (or
shadow) answered over the window, each described against its own evaluation, and the
verdict (`model.version_compare` holds the statistics).

The versions come from the registry: `stable` is `serving.json`'s `version`, the
candidate the running canary's or shadow's. Each is measured against the evaluation
recorded when it was deployed. A version deployed without an evaluation still gets its
live metrics and outcomes from feedback: its task and classes come from its own
`signature.json` in the registry. A shadow's rows are its logged copies (`shadow` true)
of the same requests the stable version answered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import BadInput, opt
from ..model.artifact import read_signature
from ..model.evaluation_files import read_curves, read_metrics
from ..store.refs import load_input


def versions_to_compare(st, folder: Path, inputs: list) -> dict[str, Any]:
    """role, and per side (version, evaluation or None, the version's signature); the
    evaluations join the stage's inputs (so a new evaluation reruns the comparison)."""
    from ..store.registry import CANARY, SHADOW, read_serving, served_evaluation

    doc = read_serving(folder) if folder.is_dir() else None
    if doc is None:
        raise BadInput("not a registry model folder (no serving.json)", file=str(folder))
    role = next((r for r in (CANARY, SHADOW) if doc.get(r)), None)
    if role is None:
        raise BadInput(
            f"{opt('compare')}: no canary or shadow runs (deploy one with --canary or --shadow)",
            file=str(folder),
        )
    out: dict[str, Any] = {"role": role}
    for key, version in (("stable", doc["version"]), ("candidate", doc[role]["version"])):
        if not (folder / str(version) / "signature.json").is_file():
            raise BadInput(f"version {version} ({key}) is not in the registry", file=str(folder))
        evaluation = None
        eid = served_evaluation(doc, version)
        if eid is not None:
            path, manifest, inp = load_input(st, f"@{eid}", "evaluation", ("evaluation",))
            inputs.append(inp)
            evaluation = (
                read_metrics(path),
                read_curves(path),
                manifest["params"].get("config", {}),
            )
        out[key] = (version, evaluation, read_signature(folder / str(version)))
    return out


def _basis(evaluation, signature: dict[str, Any]) -> dict[str, Any]:
    """The metrics document live metrics are computed against: the evaluation's, else the
    task and classes from the signature (with nothing to compare or gate)."""
    if evaluation is not None:
        return evaluation[0]
    classes = signature["label"].get("classes")
    positive = classes[1] if classes and len(classes) == 2 else None
    return {"task": signature["task"], "classes": classes, "positive": positive, "overall": {}}


def outcomes(rows, feedback, join: list[str], label: str, basis: dict[str, Any]):
    """Per logged row with a label: the join keys and its score, 1/0 for a right or wrong
    class, the absolute error for a number."""
    import numpy as np
    import polars as pl

    from ..core.missing import missing_as_null
    from ..model.metrics import Outcomes

    keys = [pl.col(c).cast(pl.String) for c in join]
    fb = feedback.select(*keys, missing_as_null(label, feedback.schema[label]).alias("__label"))
    fb = fb.filter(pl.col("__label").is_not_null()).unique(join, keep="first", maintain_order=True)
    joined = rows.with_columns(*keys).join(fb, on=join, how="inner")
    if joined.height == 0:
        return joined.select(*join, pl.lit(0.0).alias("score"))
    o = Outcomes(basis["task"], joined["__label"].to_list(), joined["prediction"].to_list(),
                 None, basis.get("classes"), None)  # fmt: skip
    score = (o.y == o.pred).astype(float) if o.task == "classification" else np.abs(o.y - o.pred)
    return joined.select(join).with_columns(pl.Series("score", score))


def compare_section(every, frame, versions, rules, fb, st) -> dict[str, Any]:
    """The report's `comparison`. `every` holds the shadow's copies, `frame` what clients
    were answered; `fb` is (feedback frame, join columns, its path) or None."""
    import polars as pl

    from ..model.version_compare import compare
    from .monitor import _live_metrics

    role = versions["role"]
    v_stable, e_stable, sig_stable = versions["stable"]
    v_cand, e_cand, sig_cand = versions["candidate"]
    keys = [c for c in ("request_id", "row") if c in frame.columns]

    def rows_of(table, version):
        if table.height == 0 or "version" not in table.columns:
            return table.clear()
        rows = table.filter(pl.col("version") == version)
        # a retried request (the same id) is one request: counted once
        return rows.unique(keys, keep="first", maintain_order=True) if keys else rows

    stable_rows = rows_of(frame, v_stable)
    if role == "shadow":
        copies = (
            every.filter(pl.col("shadow").fill_null(False))
            if "shadow" in every.columns
            else every.clear()
        )
        cand_rows = rows_of(copies, v_cand)
        cand_rows = cand_rows.drop("shadow") if "shadow" in cand_rows.columns else cand_rows
    else:
        cand_rows = rows_of(frame, v_cand)
    live_of = scores_of = None
    if fb is not None:
        fb_frame, join, ref = fb
        label = sig_stable["label"]["column"]
        if label not in fb_frame.columns:
            raise BadInput(f'no column "{label}" (the label the models predict)', file=ref)

        def live_of(rows, evaluation, signature):
            cfg = evaluation[2] if evaluation else {}
            return _live_metrics(
                rows, fb_frame, join, label, _basis(evaluation, signature), cfg, ref
            )

        def scores_of(rows, evaluation, signature):
            return outcomes(rows, fb_frame, join, label, _basis(evaluation, signature))

    return compare(
        stable_rows, cand_rows,
        stable=(v_stable, e_stable, sig_stable), candidate=(v_cand, e_cand, sig_cand),
        role=role, rules=rules, live_of=live_of, scores_of=scores_of, keys=keys,
    )  # fmt: skip
