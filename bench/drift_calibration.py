"""Calibrate the default drift thresholds of `validate` / `monitor` (issue 16).

Run from the repo root:

    .venv/bin/python bench/drift_calibration.py           # full, ~15-25 min on 2 cores
    .venv/bin/python bench/drift_calibration.py --quick   # small version, ~2 min

Method
------
A column is flagged for drift when its effect size passes its threshold (L-infinity
between value mixes for string/bool/label/low-cardinality int columns; Jensen-Shannon
divergence on the baseline's quantile buckets for numeric and date columns) AND its
test (chi-squared / Kolmogorov-Smirnov) rejects at `significance / columns compared`;
or, for numeric and date columns, when the mean moved by more than its threshold in
baseline standard deviations (SMD) AND Welch's t-test rejects (a numeric column's two
tests share its level: each at half of it).

1. False alarms. Reference and current samples drawn from the same data:
   - `adult` (sample_data/adult.csv, '?' = missing, label `income`) and `taxi`
     (sample_data/chicago_taxi.csv, label `tips`, `trip_start_timestamp` turned
     into a datetime): each reference is a random half of the rows; current
     samples of 100 and 1,000 rows are drawn without replacement from the other half;
   - `synth`: a synthetic table (float `x` and `amount` with 2% missing, int
     `units` (Poisson, mixes path) and `age` (73 values, numeric path), string
     `city`, datetime `when`, 0/1 int label `y`, string `y_str`), references and
     currents resampled with replacement from a 200,000-row base table: references
     of 10,000 rows for currents of 100 and 1,000, references as large as the
     current for 100,000 and 1,000,000.
   Per (dataset, size): R references x C current samples (10 x 20 = 200 at 100 and
   1,000 rows; 2 x 10 = 20 at 100,000; 2 x 5 = 10 at 1,000,000, scaled down for time).
   The measure is the fraction of column checks (one column of one current sample)
   flagged.
2. Detection, on `synth` at 1,000 (4 x 5 = 20 repetitions) and 100,000 rows (2 x 5 = 10):
   shifts injected into the current sample (see SHIFTS); the measure is the fraction
   of repetitions in which the shifted column is flagged. String-label cases use a
   schema with label `y_str`, all others label `y`.
3. Evidently (its own venv, bench/work/evidently-venv; skipped with a message if
   missing): its DataDriftPreset with default per-column tests, on the same Parquet
   pairs, for time on a subset: the first reference's samples of every detection
   case (5 repetitions at 1,000 and at 100,000 rows) and of the no-drift pairs at
   100 and 1,000 rows (20 per dataset and size). Columns with no value on either
   side are left out of its run (it refuses them); datetime columns it does not test.

What is run and what is applied offline
---------------------------------------
Every current sample is checked by mlstage's own `validate` (the Python API, a
fresh store under the work dir) against `stats` and `schema` of its reference, at
the thresholds of the generated schema (the project's DEFAULT_DRIFT). The C current samples of one reference are ingested as one
dataset of C splits (`split_order` on a rep-index column, `__k`, which the schema
does not know: an `unexpected_column` warning, not compared), and `validate`
checks each split on its own (its own Bonferroni family). The candidate thresholds
are then applied offline to the measures `validate` writes (`drift` block of
anomalies.json: jsd / linf, p_value per column; alpha = significance / columns in
the split). The offline rule is checked against validate's own anomalies at the
schema's default thresholds for every run, and at strict thresholds (numeric_jsd 0.01,
linf 0.03, via an edited schema file) on the first run of each group; mismatches are
counted in the output.

Output: bench/work/drift_calibration[-quick].json (raw measures, tables,
verification) and .md (the tables); scratch data in bench/work/drift-cal[-quick]/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data"
WORK = ROOT / "bench" / "work"
EVIDENTLY_PY = WORK / "evidently-venv" / "bin" / "python"

JSD_CANDIDATES = [0.1, 0.05, 0.02, 0.01]
LINF_CANDIDATES = [0.1, 0.05, 0.03]
SMD_CANDIDATES = [0.2, 0.1, 0.05]  # the mean rule, beside jsd 0.01 / linf 0.03
SIGNIFICANCES = [0.01, 0.05]
SIGNIFICANCE = 0.01
STRICT = {"numeric_jsd": 0.01, "numeric_smd": 0.05, "categorical_linf": 0.03, "label_linf": 0.03,
          "significance": 0.01}  # fmt: skip

CITIES = ["Avon", "Bree", "Crag", "Dale", "Esk"]
CITY_P = np.array([0.3, 0.25, 0.2, 0.15, 0.1])


# -- data ----------------------------------------------------------------------------
def load_adult() -> pl.DataFrame:
    return pl.read_csv(SAMPLE / "adult.csv", null_values="?", infer_schema_length=None)


def load_taxi() -> pl.DataFrame:
    frame = pl.read_csv(SAMPLE / "chicago_taxi.csv", infer_schema_length=None)
    return frame.with_columns(pl.from_epoch("trip_start_timestamp", time_unit="s"))


def synth_base(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3.0, 1.0, n)
    start = np.datetime64("2024-01-01T00:00:00", "us")
    seconds = rng.integers(0, 366 * 86400, n).astype("timedelta64[s]").astype("timedelta64[us]")
    return pl.DataFrame(
        {
            "x": rng.normal(0.0, 1.0, n),
            "amount": pl.Series(np.where(rng.random(n) < 0.02, np.nan, amount)).fill_nan(None),
            "units": rng.poisson(3.0, n),
            "age": rng.integers(18, 91, n),
            "city": rng.choice(CITIES, n, p=CITY_P),
            "when": start + seconds,
            "y": (rng.random(n) < 0.5).astype(np.int64),
            "y_str": np.where(rng.random(n) < 0.5, "yes", "no"),
        }
    )


def _mix(p_move: float):
    p = CITY_P.copy()
    p[0] -= p_move
    p[-1] += p_move
    return lambda f, rng: f.with_columns(city=pl.Series(rng.choice(CITIES, f.height, p=p)))


def _new_category(f: pl.DataFrame, rng) -> pl.DataFrame:
    hit = pl.Series(rng.random(f.height) < 0.05)
    return f.with_columns(city=pl.when(hit).then(pl.lit("Fenn")).otherwise(pl.col("city")))


def _balance(col: str, share: float):
    def shift(f: pl.DataFrame, rng) -> pl.DataFrame:
        ones = rng.random(f.height) < share
        value = np.where(ones, "yes", "no") if col == "y_str" else ones.astype(np.int64)
        return f.with_columns(pl.Series(col, value))

    return shift


# name -> (shifted column, schema label, function(frame, rng) -> frame); x is N(0, 1)
SHIFTS = {
    "mean +0.1 sd (x)": ("x", "y", lambda f, r: f.with_columns(x=pl.col("x") + 0.1)),
    "mean +0.25 sd (x)": ("x", "y", lambda f, r: f.with_columns(x=pl.col("x") + 0.25)),
    "mean +0.5 sd (x)": ("x", "y", lambda f, r: f.with_columns(x=pl.col("x") + 0.5)),
    "scale x1.5 (x)": ("x", "y", lambda f, r: f.with_columns(x=pl.col("x") * 1.5)),
    # age: uniform integers 18-90, sd 21: +2 years is 0.1 sd, +5 years 0.24 sd
    "mean +0.1 sd (int age)": ("age", "y", lambda f, r: f.with_columns(age=pl.col("age") + 2)),
    "mean +0.24 sd (int age)": ("age", "y", lambda f, r: f.with_columns(age=pl.col("age") + 5)),
    "mix moved 0.05 (city)": ("city", "y", _mix(0.05)),
    "mix moved 0.15 (city)": ("city", "y", _mix(0.15)),
    "new category 5% (city)": ("city", "y", _new_category),
    "datetime +1 year (when)": (
        "when",
        "y",
        lambda f, r: f.with_columns(when=pl.col("when").dt.offset_by("1y")),
    ),
    "string label 60/40": ("y_str", "y_str", _balance("y_str", 0.6)),
    "string label 70/30": ("y_str", "y_str", _balance("y_str", 0.7)),
    "0/1 label 60/40": ("y", "y", _balance("y", 0.6)),
    "0/1 label 70/30": ("y", "y", _balance("y", 0.7)),
}


# -- the plan ------------------------------------------------------------------------
@dataclass
class Ref:
    key: str
    path: Path
    labels: list[str]
    artifacts: dict[str, str] = field(default_factory=dict)  # "stats", "schema:<label>"


@dataclass
class Job:
    key: str
    experiment: str  # false_alarm | detection
    dataset: str
    size: int
    case: str  # "none" or a SHIFTS name
    ref: Ref
    cur: Path
    reps: int
    label: str
    target: str | None = None
    evidently: bool = False
    verify_strict: bool = False
    splits: list[dict] = field(default_factory=list)  # per rep: column -> measures
    mismatches: dict[str, list] = field(default_factory=dict)


def write_currents(frames: list[pl.DataFrame], path: Path) -> None:
    """The current samples of one reference, one file, `__k` = the sample's index."""
    pl.concat(
        [f.with_columns(__k=pl.lit(i, dtype=pl.Int64)) for i, f in enumerate(frames)]
    ).write_parquet(path)


def plan(cfg: dict, data_dir: Path, seed: int) -> tuple[list[Job], list[Ref]]:
    rng = np.random.default_rng(seed)
    jobs: list[Job] = []
    refs: list[Ref] = []

    def new_ref(key: str, frame: pl.DataFrame, labels: list[str]) -> Ref:
        ref = Ref(key, data_dir / f"{key}.parquet", labels)
        frame.write_parquet(ref.path)
        refs.append(ref)
        return ref

    def add_job(exp, dataset, size, case, ref, frames, label, target=None, evidently=False):
        key = f"{exp}-{dataset}-{size}-{case}-{ref.key}".replace(" ", "_").replace("/", "_")
        key = "".join(c for c in key if c.isalnum() or c in "-_.+")
        path = data_dir / f"cur-{key}.parquet"
        write_currents(frames, path)
        first = not any(
            j.experiment == exp and j.dataset == dataset and j.size == size and j.case == case
            for j in jobs
        )
        jobs.append(Job(key, exp, dataset, size, case, ref, path, len(frames), label, target,
                        evidently, verify_strict=first and size < 1_000_000))  # fmt: skip

    # real data: a random half as reference, currents from the other half
    for name, loader, label in (("adult", load_adult, "income"), ("taxi", load_taxi, "tips")):
        frame = loader()
        for r in range(cfg["small_refs"]):
            perm = rng.permutation(frame.height)
            half = frame.height // 2
            ref = new_ref(f"{name}-r{r}", frame[perm[:half]], [label])
            pool = perm[half:]
            for size in cfg["small_sizes"]:
                frames = [
                    frame[rng.choice(pool, size, replace=False)] for _ in range(cfg["small_cur"])
                ]
                add_job("false_alarm", name, size, "none", ref, frames, label,
                        evidently=r < cfg["ev_fa_refs"])  # fmt: skip

    base = synth_base(cfg["synth_base"], seed + 1)

    def draw(n: int) -> pl.DataFrame:
        return base[rng.integers(0, base.height, n)]

    synth_refs: dict[int, list[Ref]] = {}
    for r in range(cfg["small_refs"]):
        ref = new_ref(f"synth10k-r{r}", draw(cfg["synth_small_ref"]), ["y", "y_str"])
        synth_refs.setdefault(0, []).append(ref)
        for size in cfg["small_sizes"]:
            frames = [draw(size) for _ in range(cfg["small_cur"])]
            add_job("false_alarm", "synth", size, "none", ref, frames, "y",
                    evidently=r < cfg["ev_fa_refs"])  # fmt: skip
    for size, n_refs, n_cur in cfg["large"]:
        for r in range(n_refs):
            ref = new_ref(f"synth{size}-r{r}", draw(size), ["y", "y_str"])
            synth_refs.setdefault(size, []).append(ref)
            frames = [draw(size) for _ in range(n_cur)]
            add_job("false_alarm", "synth", size, "none", ref, frames, "y")
            del frames

    # detection: shifts injected into synthetic currents, against the same references
    for size, n_refs, n_cur in cfg["detection"]:
        refs_for = synth_refs[0 if size <= 1_000 else size][:n_refs]
        for case, (target, label, shift) in SHIFTS.items():
            for r, ref in enumerate(refs_for):
                frames = [shift(draw(size), rng) for _ in range(n_cur)]
                add_job("detection", "synth", size, case, ref, frames, label, target,
                        evidently=r < cfg.get("ev_detection_refs", {}).get(size, 1)
                        and size <= cfg["ev_max_size"])  # fmt: skip
    return jobs, refs


# -- mlstage -------------------------------------------------------------------------
def prepare_ref(ref: Ref, runs: Path) -> None:
    from mlstage import ingest, schema, stats

    ingest([ref.path], runs / f"ds-{ref.key}", force=True)
    stats(runs / f"ds-{ref.key}", runs / f"st-{ref.key}", force=True)
    ref.artifacts["stats"] = str(runs / f"st-{ref.key}")
    for label in ref.labels:
        out = runs / f"sc-{ref.key}-{label}"
        schema(ref.artifacts["stats"], out, label=label, force=True)
        ref.artifacts[f"schema:{label}"] = str(out)


def drift_schema_file(schema_dir: str, drift: dict, path: Path) -> Path:
    """A copy of a schema artifact's schema.json with other drift thresholds: a plain
    file, which `validate(schema=...)` reads as it is."""
    doc = json.loads((Path(schema_dir) / "schema.json").read_text())
    doc["drift"] = {**doc["drift"], **drift}
    path.write_text(json.dumps(doc, indent=1))
    return path


@dataclass(frozen=True)
class Rule:
    """One candidate set of defaults: effect thresholds (smd None: no mean rule) and the
    split's family-wise significance; jsd 0 = no effect gate at all."""

    jsd: float
    linf: float
    smd: float | None = None
    significance: float = SIGNIFICANCE

    @property
    def name(self) -> str:
        if self.jsd == 0:
            return "test only (no effect gate)"
        out = f"jsd {self.jsd:g} / linf {self.linf:g}"
        if self.smd is not None:
            out += f" / smd {self.smd:g}"
        return out + (
            "" if self.significance == SIGNIFICANCE else f", significance {self.significance:g}"
        )


def flags(block: dict, label: str, rule: Rule) -> set[str]:
    """The columns of one split's `drift` block that the gating rule flags: Bonferroni
    over the split's columns, a numeric column's level shared by its two tests when the
    mean rule is on (as `validate` does)."""
    alpha = rule.significance / max(1, len(block))
    out = set()
    for col, m in block.items():
        if "linf" in m:  # label_linf = categorical_linf in every candidate
            p = m.get("p_value")
            if m["linf"] > rule.linf and (p is None or p < alpha):
                out.add(col)
            continue
        p, pm = m.get("p_value"), m.get("mean_p_value")
        # both tests share the column's level when both run (pm None: too few rows)
        a = alpha / 2 if rule.smd is not None and rule.jsd != 0 and pm is not None else alpha
        shape = m.get("jsd") is not None and m["jsd"] > rule.jsd and (p is None or p < a)
        mean = (rule.smd is not None and m.get("smd") is not None and m["smd"] > rule.smd
                and pm is not None and pm < a)  # fmt: skip
        if shape or mean:
            out.add(col)
    return out


def reported(doc: dict) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for a in doc["anomalies"]:
        if a["type"] in ("drift", "label_drift") and a["severity"] == "error":
            found.setdefault(a["split"], set()).add(a["column"])
    return found


def compare(doc: dict, label: str, thresholds: dict) -> list[dict]:
    """Splits where the offline rule and validate's anomalies disagree."""
    found = reported(doc)
    bad = []
    for split, block in doc["drift"].items():
        mine = flags(block, label, Rule(thresholds["numeric_jsd"], thresholds["categorical_linf"],
                                        thresholds.get("numeric_smd"), thresholds["significance"]))  # fmt: skip
        if mine != found.get(split, set()):
            bad.append({"split": split, "offline": sorted(mine),
                        "validate": sorted(found.get(split, set()))})  # fmt: skip
    return bad


def run_mlstage(job: Job, runs: Path) -> None:
    from mlstage import ingest, validate

    if not job.ref.artifacts:
        prepare_ref(job.ref, runs)
    ds = runs / f"ds-{job.key}"
    if job.reps > 1:
        # split k holds sample k: cuts at (k + 0.5) / reps of the `__k` rank, ties together
        weights = {f"r{k:03d}": 1.0 for k in range(job.reps)}
        weights["r000"], weights[f"r{job.reps - 1:03d}"] = 0.5, 1.5
        ingest([job.cur], ds, split=weights, split_order="__k", force=True)
    else:
        ingest([job.cur], ds, force=True)
    schema_dir = job.ref.artifacts[f"schema:{job.label}"]
    out = runs / f"v-{job.key}"
    validate(ds, out, schema=schema_dir, baseline=job.ref.artifacts["stats"], force=True)
    doc = json.loads((out / "anomalies.json").read_text())
    job.splits = [doc["drift"][s] for s in sorted(doc["drift"])]
    used = json.loads((Path(schema_dir) / "schema.json").read_text())["drift"]  # the defaults
    job.mismatches["default"] = compare(doc, job.label, used)
    if job.verify_strict:
        file = drift_schema_file(schema_dir, STRICT, runs / f"schema-strict-{job.key}.json")
        out2 = runs / f"v2-{job.key}"
        validate(ds, out2, schema=file, baseline=job.ref.artifacts["stats"], force=True)
        strict = json.loads((out2 / "anomalies.json").read_text())
        job.mismatches["strict"] = compare(strict, job.label, STRICT)
        shutil.rmtree(out2)
    shutil.rmtree(ds)
    shutil.rmtree(out)


# -- Evidently -----------------------------------------------------------------------
EVIDENTLY_SCRIPT = r'''
"""Evidently's DataDriftPreset on (reference, current) Parquet pairs; the current
file holds several samples, told apart by `__k`."""
import json, sys, warnings
warnings.filterwarnings("ignore")
import pandas as pd
import evidently
from evidently import Report
from evidently.presets import DataDriftPreset

jobs = json.load(open(sys.argv[1]))
out = {"version": evidently.__version__, "results": {}}
refs = {}
for job in jobs:
    if job["ref"] not in refs:
        refs = {job["ref"]: pd.read_parquet(job["ref"])}
    ref = refs[job["ref"]]
    cur_all = pd.read_parquet(job["cur"])
    reps = []
    for _, cur in cur_all.groupby("__k", sort=True):
        cur = cur.drop(columns="__k").reset_index(drop=True)
        # Evidently refuses a column with no value on either side: left out, noted
        empty = [c for c in cur.columns if cur[c].isna().all() or ref[c].isna().all()]
        snap = Report([DataDriftPreset()], include_tests=True).run(
            cur.drop(columns=empty), ref.drop(columns=empty)).dict()
        res = {c: {"drift": None, "method": "not run: no values"} for c in empty}
        for t in snap["tests"]:
            params = t["metric_config"]["params"]
            if str(params.get("type", "")).endswith("ValueDrift"):
                status = getattr(t["status"], "value", t["status"])
                res[params["column"]] = {"drift": status == "FAIL", "method": params.get("method"),
                                         "threshold": params.get("threshold")}
        reps.append(res)
    out["results"][job["key"]] = reps
    json.dump(out, open(sys.argv[2], "w"))
'''


def start_evidently(jobs: list[Job], work: Path) -> tuple[subprocess.Popen | None, Path]:
    result = work / "evidently-result.json"
    if not EVIDENTLY_PY.exists():
        print(f"Evidently: no venv at {EVIDENTLY_PY}; skipped", flush=True)
        return None, result
    (work / "evidently_run.py").write_text(EVIDENTLY_SCRIPT)
    spec = [{"key": j.key, "ref": str(j.ref.path), "cur": str(j.cur)} for j in jobs if j.evidently]
    # group by reference so each is read once
    spec.sort(key=lambda s: s["ref"])
    (work / "evidently-jobs.json").write_text(json.dumps(spec))
    log = open(work / "evidently.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [str(EVIDENTLY_PY), str(work / "evidently_run.py"), str(work / "evidently-jobs.json"),
         str(result)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    return proc, result


# -- tables --------------------------------------------------------------------------
def candidates() -> list[Rule]:
    return (
        [Rule(j, c) for j in JSD_CANDIDATES for c in LINF_CANDIDATES]
        + [
            Rule(0.01, 0.03, m, a)
            for a in SIGNIFICANCES
            for m in [None, *SMD_CANDIDATES]
            if (m, a) != (None, SIGNIFICANCE)
        ]
        + [Rule(0.0, 0.0)]
    )


def false_alarm_table(jobs: list[Job]) -> dict:
    groups: dict[str, list[Job]] = {}
    for j in jobs:
        if j.experiment == "false_alarm":
            groups.setdefault(f"{j.dataset} {j.size:,}", []).append(j)
    table: dict = {}
    for group, js in groups.items():
        checks = sum(len(s) for j in js for s in j.splits)
        row = {"splits": sum(len(j.splits) for j in js), "column_checks": checks, "rates": {}}
        for rule in candidates():
            hit = sum(len(flags(s, j.label, rule)) for j in js for s in j.splits)
            split_hit = sum(bool(flags(s, j.label, rule)) for j in js for s in j.splits)
            row["rates"][rule.name] = {
                "column_rate": hit / checks if checks else None,
                "split_rate": split_hit / row["splits"] if row["splits"] else None,
            }
        table[group] = row
    return table


def detection_table(jobs: list[Job], ev: dict | None) -> dict:
    table: dict = {}
    for j in jobs:
        if j.experiment != "detection":
            continue
        row = table.setdefault(f"{j.size:,}|{j.case}", {"size": j.size, "case": j.case,
                                                        "target": j.target, "reps": 0, "hits": {},
                                                        "other_flags": {}, "ev": []})  # fmt: skip
        row["reps"] += len(j.splits)
        for rule in candidates():
            name = rule.name
            for s in j.splits:
                f = flags(s, j.label, rule)
                row["hits"][name] = row["hits"].get(name, 0) + (j.target in f)
                row["other_flags"][name] = row["other_flags"].get(name, 0) + len(f - {j.target})
        if ev is not None and j.key in ev["results"]:
            row["ev"] += [r.get(j.target) for r in ev["results"][j.key]]
    for row in table.values():
        row["rate"] = {k: v / row["reps"] for k, v in row["hits"].items()}
        tested = [e for e in row.pop("ev") if e is not None and e["drift"] is not None]
        row["evidently"] = (
            {
                "rate": sum(e["drift"] for e in tested) / len(tested),
                "n": len(tested),
                "methods": sorted({e["method"] for e in tested}),
            }  # fmt: skip
            if tested
            else ({"rate": None, "note": "column not tested by Evidently"} if ev else None)
        )
    return table


def evidently_false_alarms(jobs: list[Job], ev: dict | None) -> dict:
    if ev is None:
        return {}
    out: dict = {}
    for j in jobs:
        if j.experiment != "false_alarm" or j.key not in ev["results"]:
            continue
        g = out.setdefault(f"{j.dataset} {j.size:,}", {"checks": 0, "drift": 0, "splits": 0,
                                                       "split_drift": 0, "methods": set()})  # fmt: skip
        for rep in ev["results"][j.key]:
            g["splits"] += 1
            run = [r for r in rep.values() if r["drift"] is not None]
            g["checks"] += len(run)
            g["drift"] += sum(r["drift"] for r in run)
            g["split_drift"] += any(r["drift"] for r in run)
            g["methods"] |= {r["method"] for r in run}
    for g in out.values():
        g["column_rate"] = g["drift"] / g["checks"] if g["checks"] else None
        g["split_rate"] = g["split_drift"] / g["splits"] if g["splits"] else None
        g["methods"] = sorted(g["methods"])
    return out


def markdown(fa: dict, det: dict, ev_fa: dict, ev_version: str | None, meta: dict) -> str:
    pct = lambda x: "n/a" if x is None else f"{100 * x:.2f}"  # noqa: E731
    lines = [f"# Drift threshold calibration ({meta['mode']})", "",
             f"{meta['date']}; mlstage {meta['mlstage']}; evidently {ev_version or 'not run'};"
             f" significance {SIGNIFICANCE} unless named; wall time {meta['seconds']:.0f} s", "",
             "## False alarms: % of column checks flagged (same-distribution samples)", ""]  # fmt: skip
    groups = list(fa)
    lines.append("| thresholds | " + " | ".join(groups) + " |")
    lines.append("|---|" + "---|" * len(groups))
    lines.append("| samples x columns | "
                 + " | ".join(f"{fa[g]['splits']}x{fa[g]['column_checks'] // max(1, fa[g]['splits'])}"
                              for g in groups) + " |")  # fmt: skip
    for rule in candidates():
        name = rule.name
        lines.append(f"| {name} | "
                     + " | ".join(pct(fa[g]["rates"][name]["column_rate"]) for g in groups) + " |")  # fmt: skip
    if ev_fa:
        lines.append("| Evidently DataDriftPreset | "
                     + " | ".join(pct(ev_fa[g]["column_rate"]) + f" (n={ev_fa[g]['splits']})"
                                  if g in ev_fa else "-" for g in groups) + " |")  # fmt: skip
    shown = ["jsd 0.01 / linf 0.03", "jsd 0.01 / linf 0.03, significance 0.05",
             "jsd 0.01 / linf 0.03 / smd 0.05", "jsd 0.01 / linf 0.03 / smd 0.1, significance 0.05",
             "jsd 0.01 / linf 0.03 / smd 0.05, significance 0.05"]  # fmt: skip
    lines += ["", "## Detection: % of repetitions flagging the shifted column (synth)", "",
              "| size | shift | reps | " + " | ".join(shown) + " | Evidently |",
              "|---|---|---|" + "---|" * (len(shown) + 1)]  # fmt: skip
    for row in det.values():
        e = row["evidently"]
        ev_cell = "-" if e is None else ("not tested" if e["rate"] is None else pct(e["rate"]))
        lines.append(f"| {row['size']:,} | {row['case']} | {row['reps']} | "
                     + " | ".join(pct(row["rate"][s]) for s in shown) + f" | {ev_cell} |")  # fmt: skip
    return "\n".join(lines) + "\n"


# -- main ----------------------------------------------------------------------------
FULL = {
    "small_sizes": [100, 1_000], "small_refs": 10, "small_cur": 20, "synth_base": 200_000,
    "synth_small_ref": 10_000, "large": [(100_000, 2, 10), (1_000_000, 2, 5)],
    "detection": [(1_000, 8, 5), (100_000, 2, 5)], "ev_fa_refs": 1, "ev_max_size": 100_000,
    "ev_detection_refs": {1_000: 8, 100_000: 1},
}  # fmt: skip
QUICK = {
    "small_sizes": [100, 1_000], "small_refs": 2, "small_cur": 5, "synth_base": 20_000,
    "synth_small_ref": 5_000, "large": [(100_000, 1, 2)], "detection": [(1_000, 1, 4)],
    "ev_fa_refs": 1, "ev_max_size": 1_000,
}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small version (~2 min)")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--no-evidently", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the scratch data and store")
    ap.add_argument(
        "--evidently-limit",
        type=float,
        default=600,
        help="seconds to wait for Evidently after mlstage is done (default 600)",
    )
    ap.add_argument(
        "--evidently-from",
        type=Path,
        metavar="RESULT_JSON",
        help="reuse a finished run's evidently-result.json (same --seed and mode: the same data)"
        " instead of running Evidently again",
    )
    ap.add_argument(
        "--rebuild",
        type=Path,
        metavar="RAW_JSON",
        help="only redo the tables from RAW_JSON and its run's evidently-result.json",
    )
    args = ap.parse_args()
    if args.rebuild:
        work = WORK / ("drift-cal-quick" if "quick" in args.rebuild.name else "drift-cal")
        rebuild(args.rebuild, work / "evidently-result.json")
        return
    cfg = QUICK if args.quick else FULL
    tag = "-quick" if args.quick else ""
    work = WORK / f"drift-cal{tag}"
    saved = WORK / "evidently-result-reused.json"
    if args.evidently_from:
        shutil.copy(args.evidently_from, saved)  # before the work dir is wiped
    shutil.rmtree(work, ignore_errors=True)
    data_dir, runs = work / "data", work / "runs"
    for d in (data_dir, runs, work / "store"):
        d.mkdir(parents=True)
    os.environ["MLSTAGE_STORE"] = str(work / "store")
    t0 = time.time()

    jobs, _ = plan(cfg, data_dir, args.seed)
    print(f"planned {len(jobs)} runs, data written in {time.time() - t0:.0f} s", flush=True)
    proc, ev_path = (
        (None, None) if args.no_evidently or args.evidently_from else start_evidently(jobs, work)
    )

    for i, job in enumerate(jobs):
        run_mlstage(job, runs)
        if i % 20 == 0 or job.size >= 100_000:
            print(f"[{time.time() - t0:5.0f} s] {i + 1}/{len(jobs)} {job.key}", flush=True)

    ev = read_evidently(saved, work) if args.evidently_from else None
    if proc is not None:
        print(f"[{time.time() - t0:5.0f} s] waiting for Evidently", flush=True)
        try:
            proc.wait(timeout=args.evidently_limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            print("Evidently stopped at --evidently-limit; its finished runs are kept", flush=True)
        ev = read_evidently(ev_path, work)
    finish(jobs, ev, cfg, args.quick, time.time() - t0)
    if not args.keep:
        shutil.rmtree(work / "store")
        shutil.rmtree(data_dir)
        shutil.rmtree(runs)


def read_evidently(path: Path, work: Path) -> dict | None:
    if not path.exists():
        print(f"Evidently: no result; see {work / 'evidently.log'}", flush=True)
        return None
    return json.loads(path.read_text())


def finish(jobs: list[Job], ev: dict | None, cfg: dict, quick: bool, seconds: float) -> None:
    """The tables, the raw JSON and the Markdown summary."""
    tag = "-quick" if quick else ""

    from mlstage import __version__

    fa, det = false_alarm_table(jobs), detection_table(jobs, ev)
    ev_fa = evidently_false_alarms(jobs, ev)
    meta = {"mode": "quick" if quick else "full", "date": time.strftime("%Y-%m-%d %H:%M"),
            "mlstage": __version__, "seconds": seconds, "config": cfg,
            "python": sys.version.split()[0], "polars": pl.__version__}  # fmt: skip
    verification = {
        kind: {"runs": sum(kind in j.mismatches for j in jobs),
               "splits": sum(j.reps for j in jobs if kind in j.mismatches),
               "mismatched_splits": sum(len(j.mismatches.get(kind, [])) for j in jobs),
               "examples": [{"run": j.key, **m} for j in jobs for m in j.mismatches.get(kind, [])][:20]}
        for kind in ("default", "strict")
    }  # fmt: skip
    result = {
        "meta": meta,
        "evidently_version": ev and ev["version"],
        "verification": verification,
        "false_alarms": fa,
        "evidently_false_alarms": ev_fa,
        "detection": det,
        "runs": [
            {"key": j.key, "experiment": j.experiment, "dataset": j.dataset, "size": j.size,
             "case": j.case, "label": j.label, "target": j.target, "reference": j.ref.key if j.ref else None,
             "splits": j.splits, "mismatches": j.mismatches,
             "evidently": ev and ev["results"].get(j.key)}
            for j in jobs
        ],
    }  # fmt: skip
    out = WORK / f"drift_calibration{tag}.json"
    out.write_text(json.dumps(result, indent=1, default=str))
    md = markdown(fa, det, ev_fa, ev and ev["version"], meta)
    (WORK / f"drift_calibration{tag}.md").write_text(md)
    print(md)
    print("verification (offline rule vs validate's anomalies):", json.dumps(verification))
    print(f"raw results: {out}")


def rebuild(raw: Path, ev_path: Path) -> None:
    """Tables again from a finished run's raw JSON and an Evidently result file."""
    doc = json.loads(raw.read_text())
    jobs = []
    for r in doc["runs"]:
        job = Job(r["key"], r["experiment"], r["dataset"], r["size"], r["case"], None, None,
                  len(r["splits"]), r["label"], r["target"], splits=r["splits"])  # fmt: skip
        job.mismatches = r.get("mismatches", {})
        jobs.append(job)
    ev = read_evidently(ev_path, ev_path.parent)
    meta = doc["meta"]
    finish(jobs, ev, meta["config"], meta["mode"] == "quick", meta["seconds"])
    if not any("mismatches" in r for r in doc["runs"]):  # a raw file from before they were kept
        new = json.loads(raw.read_text())
        new["verification"] = doc["verification"]
        raw.write_text(json.dumps(new, indent=1, default=str))
        print("verification (from the run):", json.dumps(doc["verification"])[:300])


if __name__ == "__main__":
    main()
