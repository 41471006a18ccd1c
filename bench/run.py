"""Benchmark harness: times whole `mlstage` commands against a bare polars reference.

    .venv/bin/python bench/run.py --rows 1000000 --repeats 5 [--append]

Each run is a separate child process; we record its wall time and its own peak RSS
(os.wait4). Runs are interleaved round-robin so that noise from the shared machine
spreads over all benchmarks instead of landing on one. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

from mlstage.core.missing import DEFAULT_NULLS

BENCH = Path(__file__).resolve().parent
PY = sys.executable
# The venv's own entry point, so we time what users run (not `python -m`).
MLSTAGE = shutil.which("mlstage", path=str(Path(PY).parent)) or "mlstage"
# polars' own conversion to the table `ingest` writes: the same missing-value markers
# (mlstage's defaults), the data's one datetime column parsed with its format (the fastest
# way polars has: try_parse_dates=True is slower)
REF_CODE = (
    f"import polars as pl, sys; pl.scan_csv(sys.argv[1], null_values={list(DEFAULT_NULLS)!r})"
    ".with_columns(pl.col('ts').str.to_datetime('%Y-%m-%dT%H:%M:%S%.f', time_unit='us'))"
    ".sink_parquet(sys.argv[2])"
)
REF_PARQUET = "import polars as pl, sys; pl.scan_parquet(sys.argv[1]).sink_parquet(sys.argv[2])"
GROUPS = ("ingest", "stats", "featurize", "model")
# A benchmark more than this much behind the same figure of a recorded run fails --check.
REGRESSION = 1.10


@dataclass
class Target:
    label: str
    metric: str  # "wall" (median s), "rss" (median MB), "ratio" (median / reference median),
    # "rss_ratio" (median RSS / the reference's), "beyond" (median s - the reference's),
    # or, for a Micro, a key of its rows ("median_ms")
    limit: float
    ref: str | None = None  # for "ratio": another benchmark than the Bench's own ref

    def ok(self, value: float) -> bool:
        return value <= self.limit


@dataclass
class Bench:
    name: str
    group: str
    cmd: list[str]
    wipe: list[Path] = field(default_factory=list)  # removed (untimed) before every run
    ref: str | None = None  # name of the benchmark to compare against
    targets: list[Target] = field(default_factory=list)
    expect_stdout: str | None = None  # guards against timing the wrong code path
    setup: Callable[[], None] | None = None  # untimed, once before all runs
    env: dict[str, str] = field(default_factory=dict)  # added to the environment


@dataclass
class Micro:
    """An in-process micro-benchmark, run once after the rounds: its command prints a JSON
    list of rows {"name", "calls", "median_ms", "p99_ms"}; targets are keyed by row name."""

    name: str
    group: str
    cmd: list[str]
    targets: dict[str, Target] = field(default_factory=dict)


def benchmarks(data: Path, work: Path) -> list[Bench]:
    ds, store, utd = work / "ds", work / "store", work / "utd"
    ingest = [MLSTAGE, "ingest", str(data), "-o", str(ds), "--force", "--quiet"]
    ingest += ["--store", str(store)]
    up_to_date = [MLSTAGE, "ingest", str(data), "-o", str(utd / "ds")]
    up_to_date += ["--store", str(utd / "store")]
    parquet = work / "source.parquet"

    def prepare_up_to_date() -> None:
        # A fresh output for this mlstage and data (it also warms the page cache), then
        # one up-to-date run a second later: it leaves the record that answers the next.
        wipe([utd])
        run_once(Bench("prepare ingest-up-to-date", "ingest", up_to_date + ["--force", "--quiet"]))
        time.sleep(1.1)
        run_once(Bench("record ingest-up-to-date", "ingest", up_to_date + ["--json"]))  # as timed

    def prepare_parquet() -> None:
        subprocess.run([PY, "-c", REF_CODE, str(data), str(parquet)], check=True)

    return [
        Bench("polars-csv-to-parquet", "ingest", [PY, "-c", REF_CODE, str(data), str(work / "ref.parquet")],
              wipe=[work / "ref.parquet"]),
        Bench("ingest", "ingest", ingest, wipe=[ds, store], ref="polars-csv-to-parquet",
              targets=[Target("≤ 1.15× ref", "ratio", 1.15), Target("RSS ≤ 2048 MB", "rss", 2048)]),
        Bench("ingest-split", "ingest", ingest + ["--split", "train=8", "--split", "eval=2"],
              wipe=[ds, store], ref="polars-csv-to-parquet", targets=[Target("≤ 1.4× ref", "ratio", 1.4)]),
        Bench("polars-parquet-to-parquet", "ingest", [PY, "-c", REF_PARQUET, str(parquet), str(work / "ref2.parquet")],
              wipe=[work / "ref2.parquet"], setup=prepare_parquet),
        Bench("ingest-parquet", "ingest", [*ingest[:2], str(parquet), *ingest[3:]], wipe=[ds, store],
              ref="polars-parquet-to-parquet", targets=[Target("≤ 1.1× ref", "ratio", 1.1)]),
        Bench("help", "ingest", [MLSTAGE, "--help"], targets=[Target("≤ 0.1 s", "wall", 0.1)]),
        # No --force, onto the prepared output: only the up-to-date check runs, answered
        # from the record (core.replay); -full: the same with the shortcut turned off.
        Bench("ingest-up-to-date", "ingest", up_to_date + ["--json"], targets=[Target("≤ 0.15 s", "wall", 0.15)],
              expect_stdout='"up_to_date":true', setup=prepare_up_to_date),
        Bench("ingest-up-to-date-full", "ingest", up_to_date + ["--json"], expect_stdout='"up_to_date":true',
              env={"MLSTAGE_NO_SHORTCUT": "1"}),
    ] + stats_benchmarks(data, work) + featurize_benchmarks(data, work) + model_benchmarks(work)  # fmt: skip


def stats_benchmarks(data: Path, work: Path) -> list[Bench]:
    """stats and validate on the ingested table, against a bare polars pass over it."""
    base = work / "stats-base"
    dataset, stats_out, anomalies = base / "ds", work / "stats-out", work / "anomalies"
    common = ["--force", "--quiet", "--store", str(base / "store")]

    def prepare() -> None:
        wipe([base])
        setup_step("ingest", str(data), "-o", str(dataset), *common)
        setup_step("stats", str(dataset), "-o", str(base / "baseline"), *common)
        setup_step("schema", str(base / "baseline"), "-o", str(base / "schema"), "--label", "label", *common)  # fmt: skip

    ref = "matched-stats-pass"
    return [
        Bench(ref, "stats", [PY, str(BENCH / "matched_stats_pass.py"), str(dataset)], setup=prepare),
        Bench("stats", "stats", [MLSTAGE, "stats", str(dataset), "-o", str(stats_out), *common],
              # the store's cache of each partition's statistics goes too: every run computes them
              wipe=[stats_out, base / "store" / "cache"], ref=ref,
              targets=[Target("≤ 1.1× ref", "ratio", 1.1), Target("RSS ≤ 1.2× ref's", "rss_ratio", 1.2)]),
        Bench("validate", "stats", [MLSTAGE, "validate", str(dataset), "--schema", str(base / "schema"),
                                    "--baseline", str(base / "baseline"), "-o", str(anomalies), *common],
              wipe=[anomalies], ref=ref, targets=[Target("≤ 1.2× ref", "ratio", 1.2), Target("RSS ≤ 1.2× ref's", "rss_ratio", 1.2)]),
    ]  # fmt: skip


def featurize_benchmarks(data: Path, work: Path) -> list[Bench]:
    """featurize (fit on train, apply to train and eval) against polars and scikit-learn."""
    base, out, store = work / "featurize-base", work / "feat-out", work / "feat-store"
    dataset, spec = base / "ds", str(BENCH / "features_spec.json")
    featurize = [MLSTAGE, "featurize", str(dataset), "--spec", spec, "--force", "--quiet"]

    def prepare() -> None:
        # The dataset, and one fitted transform kept for row-apply (its output is not wiped).
        wipe([base])
        store = ["--store", str(base / "store")]
        split = ["--split", "train=8", "--split", "eval=2"]
        setup_step("ingest", str(data), "-o", str(dataset), *split, "--force", "--quiet", *store)
        setup_step(*featurize[1:], "-o", str(base / "features"), *store)

    ref_out, sk_out = work / "feat-polars", work / "feat-sklearn"
    return [
        Bench("featurize-polars", "featurize", [PY, str(BENCH / "featurize_polars.py"), spec, str(dataset), str(ref_out)],
              wipe=[ref_out], setup=prepare),
        # Its own store, wiped like the output: every run writes (and fsyncs) a new artifact.
        Bench("featurize", "featurize", featurize + ["-o", str(out), "--store", str(store)], wipe=[out, store],
              ref="featurize-polars", targets=[Target("≤ 1.1× polars", "ratio", 1.1),
                                               Target("≥ 3× faster than sklearn", "ratio", 1 / 3, ref="featurize-sklearn")]),
        Bench("featurize-sklearn", "featurize", [PY, str(BENCH / "featurize_sklearn.py"), str(dataset), str(sk_out)],
              wipe=[sk_out], ref="featurize-polars"),
    ]  # fmt: skip


def model_benchmarks(work: Path) -> list[Bench]:
    """Loading a scikit-learn model and predicting 1,000 rows, whole processes, against
    the interpreter and scikit-learn's own import (the floor any sklearn model pays)."""
    base = work / "model-base"
    model, rows, preds = base / "model", base / "rows", work / "preds"
    sample = BENCH.parent / "sample_data" / "adult.csv"
    store = ["--store", str(base / "store")]

    def prepare() -> None:
        wipe([base])
        base.mkdir(parents=True)
        config = base / "train.json"
        config.write_text(
            json.dumps(
                {
                    "format": "mlstage-train/1",
                    "task": "classification",
                    "estimator": "LogisticRegression",
                    "params": {"max_iter": 2000},
                    "seed": 0,
                }
            )
        )
        setup_step("ingest", str(sample), "--null", "?", "-o", str(base / "ds"), "--quiet", *store)
        setup_step("featurize", str(base / "ds"), "--spec", str(BENCH.parent / "examples" / "adult_features.json"),
                   "-o", str(base / "features"), "--quiet", *store)  # fmt: skip
        setup_step(
            "train",
            str(base / "features"),
            "--config",
            str(config),
            "-o",
            str(model),
            "--quiet",
            *store,
        )
        head = "import polars as pl, sys; pl.read_csv(sys.argv[1], infer_schema_length=0).head(1000).write_csv(sys.argv[2])"
        subprocess.run([PY, "-c", head, str(sample), str(base / "rows.csv")], check=True)
        setup_step(
            "ingest", str(base / "rows.csv"), "--null", "?", "-o", str(rows), "--quiet", *store
        )

    load = f"from mlstage.model.artifact import Model; Model.load({str(model)!r})"
    return [
        Bench("python", "model", [PY, "-c", "pass"], setup=prepare),
        Bench("import-sklearn", "model", [PY, "-c", "import sklearn.linear_model"], ref="python"),
        Bench("model-load", "model", [PY, "-c", load], ref="python",
              targets=[Target("≤ 0.3 s beyond the interpreter", "beyond", 0.3)]),
        Bench("predict-1000", "model", [MLSTAGE, "predict", str(model), str(rows), "-o", str(preds), "--force", "--quiet", *store],
              wipe=[preds], targets=[Target("≤ 1 s", "wall", 1.0)]),
    ]  # fmt: skip


def micro_benchmarks(work: Path) -> list[Micro]:
    base = work / "featurize-base"  # made by featurize_benchmarks' setup
    # the eval split's file, or its first partition when it has several
    split = [base / "ds" / "eval.parquet"] + sorted((base / "ds").glob("eval.part-*.parquet"))
    split = [p for p in split if p.exists()][:1] or split[:1]
    cmd = [PY, str(BENCH / "row_apply.py"), str(base / "features" / "transform.json"),
           str(split[0]), "--json"]  # fmt: skip
    targets = {"row_function": Target("median ≤ 0.5 ms", "median_ms", 0.5)}
    return [Micro("row-apply", "featurize", cmd, targets)]


def run_micro(m: Micro) -> list[dict]:
    proc = subprocess.run(m.cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"\nFAILED {m.name}: exit {proc.returncode}\n  $ {shlex.join(m.cmd)}\n"
                 f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}")  # fmt: skip
    rows = json.loads(proc.stdout)
    for row in rows:
        t = m.targets.get(row["name"])
        row["targets"] = [verdict(t, row[t.metric])] if t else []
    return rows


def verdict(t: Target, value: float) -> dict:
    return {"target": t.label, "value": value, "pass": t.ok(value)}


def setup_step(*args: str) -> None:
    """One untimed `mlstage ARGS...` of a setup; exits loudly if it fails."""
    run_once(Bench(f"setup: mlstage {args[0]}", "setup", [MLSTAGE, *args]))


def wipe(paths: list[Path]) -> None:
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)


def run_once(b: Bench) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one child; exits loudly if it fails."""
    wipe(b.wipe)  # every run does the full work, and outputs don't pile up on disk
    # Output goes to files, not pipes: we block in wait4, so nobody would drain a pipe.
    # Flush what earlier runs wrote (mlstage fsyncs, the references do not), so that
    # writeback of one run's output is not charged to the next.
    os.sync()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(b.cmd, stdout=out, stderr=err, env={**os.environ, **b.env})
        # wait4 gives this child's own rusage (plus its reaped descendants);
        # RUSAGE_CHILDREN would be the max over every child we ever ran.
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = (f.read().decode(errors="replace") for f in (out, err))
    why = f"exit {proc.returncode}" if proc.returncode else None
    if not why and b.expect_stdout and b.expect_stdout not in stdout:
        why = f"{b.expect_stdout} not in stdout"
    if why:
        sys.exit(
            f"\nFAILED {b.name}: {why}\n  $ {shlex.join(b.cmd)}\n"
            f"--- stdout ---\n{stdout[-4000:]}\n--- stderr ---\n{stderr[-4000:]}"
        )
    return wall, ru.ru_maxrss


def summarize(benches: list[Bench], walls: dict, rss: dict) -> dict:
    res = {}
    for b in benches:
        w, m = walls[b.name], [k / 1024 for k in rss[b.name]]
        r = {"cmd": shlex.join(b.cmd), "wall_s": w, "peak_rss_mb": m}
        r |= {"median_s": statistics.median(w), "min_s": min(w), "max_s": max(w)}
        r |= {"median_rss_mb": statistics.median(m), "ref": b.ref, "ratio": None}
        # Ratios against the Bench's ref (first) and any other benchmark a target names.
        r["ratios"] = {}
        for name in dict.fromkeys([b.ref] + [t.ref for t in b.targets]):
            if name and name in walls:  # a --skip'ped reference has no runs
                ref = walls[name]
                # Runs of one round ran back to back, under about the same load: the
                # median of per-round ratios is less swayed by a slow spell.
                paired = statistics.median(x / y for x, y in zip(w, ref, strict=True))
                r["ratios"][name] = {
                    "ratio": r["median_s"] / statistics.median(ref),
                    "paired": paired,
                }
        if b.ref:
            r["ratio"], r["paired_ratio"] = r["ratios"][b.ref].values()
        r["targets"] = []
        for t in b.targets:
            value = {"wall": r["median_s"], "rss": r["median_rss_mb"]}.get(t.metric)
            if t.metric == "rss_ratio" and b.ref in walls:
                value = r["median_rss_mb"] / statistics.median(k / 1024 for k in rss[b.ref])
            if t.metric == "beyond" and b.ref in walls:
                value = r["median_s"] - statistics.median(walls[b.ref])
            if t.metric == "ratio":
                if (t.ref or b.ref) not in r["ratios"]:
                    continue
                value = r["ratios"][t.ref or b.ref]["ratio"]
            r["targets"].append(verdict(t, value))
        res[b.name] = r
    return res


def machine() -> dict:
    def grep(path: str, key: str) -> str:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
        return "?"

    mem_gb = int(grep("/proc/meminfo", "MemTotal").split()[0]) / 1024**2
    return {
        "nproc": len(os.sched_getaffinity(0)),  # what `nproc` shows: the CPUs we may use
        "mem_total_gb": round(mem_gb, 1),
        "cpu": grep("/proc/cpuinfo", "model name"),
        "python": platform.python_version(),
        # From metadata, not `import polars`: the harness must stay small, because
        # a child's ru_maxrss starts at the RSS of the parent that forked it.
        "polars": version("polars"),
        "mlstage": version("mlstage"),
    }


def passfail(targets: list[dict]) -> str:
    """The `target | pass/fail` cells of a table row."""
    if not targets:
        return "— | —"
    failed = [t["target"] for t in targets if not t["pass"]]
    ok = f"FAIL ({'; '.join(failed)})" if failed else "pass"
    return f"{'; '.join(t['target'] for t in targets)} | {ok}"


def markdown(info: dict, res: dict, micro: dict) -> str:
    m = info["machine"]
    lines = [
        f"## {info['rows']:,} rows — {info['date']}",
        "",
        f"- machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem_total_gb']} GB RAM",
        f"- python {m['python']}, polars {m['polars']}, mlstage {m['mlstage']}",
        f"- command: `{info['command']}` ({info['repeats']} interleaved runs of each)",
        f"- data: `{info['data']}` ({info['data_mb']:.0f} MB)",
        "",
        "| benchmark | median s | min s | max s | median peak RSS MB | ratio vs reference "
        "| target | pass/fail |",
        "|---|--:|--:|--:|--:|--:|---|---|",
    ]
    for name, r in res.items():
        ratios = [f"{x['ratio']:.2f}× (paired {x['paired']:.2f}×)" + ("" if ref == r["ref"] else f" vs {ref}")
                  for ref, x in r["ratios"].items()]  # fmt: skip
        ratio = "; ".join(ratios) or "—"
        lines.append(
            f"| {name} | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['max_s']:.3f} "
            f"| {r['median_rss_mb']:.0f} | {ratio} | {passfail(r['targets'])} |"
        )
    lines += [
        "",
        "Ratio: median / median of the reference (the target's measure); paired: "
        "median over rounds of run / reference run in the same round.",
        "",
    ]
    if micro:
        lines += [
            "In-process micro-benchmarks (one run after the rounds; time per call, after a warm-up):",
            "",
            "| micro-benchmark | calls | median ms | p99 ms | target | pass/fail |",
            "|---|--:|--:|--:|---|---|",
        ]
        for name, m in micro.items():
            for row in m["rows"]:
                lines.append(f"| {name}: {row['name']} | {row['calls']} | {row['median_ms']:.4g} "
                             f"| {row['p99_ms']:.4g} | {passfail(row['targets'])} |")  # fmt: skip
        lines.append("")
    lines += ["Commands:", ""]
    for name, r in res.items():
        ref = f" (ref: {r['ref']})" if r["ref"] else ""
        lines.append(f"- {name}{ref}: `{r['cmd']}`")
    for name, m in micro.items():
        lines.append(f"- {name}: `{m['cmd']}`")
    return "\n".join(lines) + "\n"


def run_rounds(benches: list[Bench], repeats: int) -> tuple[dict, dict]:
    """Each benchmark's setup, then `repeats` rounds of one run of each, in order (so a
    slow spell of the shared machine hits them all): wall seconds and peak RSS (KiB)."""
    for b in benches:
        if b.setup:
            print(f"setting up {b.name} ...", file=sys.stderr)
            b.setup()
    walls: dict[str, list[float]] = {b.name: [] for b in benches}
    rss: dict[str, list[int]] = {b.name: [] for b in benches}
    for r in range(repeats):
        for b in benches:
            wall, kib = run_once(b)
            walls[b.name].append(wall)
            rss[b.name].append(kib)
            print(f"[{r + 1}/{repeats}] {b.name:24} {wall:7.3f} s {kib / 1024:7.0f} MB",
                  file=sys.stderr)  # fmt: skip
    return walls, rss


def figure(r: dict) -> tuple[str, float]:
    """What --check compares: the ratio to the reference run in the same rounds when
    there is one (the machine's load cancels out), else the median wall time."""
    return ("ratio", r["ratio"]) if r.get("ratio") is not None else ("median s", r["median_s"])


def regressions(previous: dict, info: dict, res: dict) -> list[str]:
    """Each figure more than REGRESSION times worse than the same figure recorded before."""
    same = {k: previous["machine"].get(k) for k in ("nproc", "cpu")} == {
        k: info["machine"][k] for k in ("nproc", "cpu")
    }
    if not same:
        return [f"recorded on another machine ({previous['machine']}): nothing compared"]
    worse = []
    for name, r in res.items():
        old = previous["results"].get(name)
        if old is None:
            continue
        (what, new_v), (_, old_v) = figure(r), figure(old)
        if new_v > old_v * REGRESSION:
            worse.append(f"{name}: {what} {new_v:.3f}, recorded {old_v:.3f} (> {REGRESSION:.2f}×)")
    return worse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--work", type=Path, default=BENCH / "work")
    ap.add_argument("--out", type=Path, default=BENCH / "results.md")
    ap.add_argument("--append", action="store_true", help="add a section instead of overwriting")
    ap.add_argument(
        "--skip", action="append", default=[], help="leave out this benchmark (repeatable)"
    )
    ap.add_argument(
        "--only", choices=GROUPS, action="append", help="run only these groups (repeatable)"
    )
    ap.add_argument(
        "--check", type=Path, metavar="RESULTS_JSON",
        help="exit 1 when a figure is more than 10%% behind the one recorded in this file",
    )  # fmt: skip
    args = ap.parse_args()
    previous = json.loads(args.check.read_text()) if args.check else None
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)

    # Generated once and kept: 10M rows take ~30 s to write.
    data = BENCH / "data" / f"synth_{args.rows}.csv"
    if not data.exists():
        print(f"generating {data} ...", file=sys.stderr)
        tmp = data.with_suffix(".csv.tmp")  # a killed run must not leave a truncated file
        cmd = [PY, str(BENCH / "gen_data.py"), "--rows", str(args.rows), "-o", str(tmp)]
        subprocess.run(cmd, check=True)
        tmp.rename(data)

    # Users' installs hold compiled bytecode; an editable install under
    # PYTHONDONTWRITEBYTECODE (as in this sandbox) would recompile mlstage in every run.
    subprocess.run([PY, "-m", "compileall", "-q", str(BENCH.parent / "mlstage")], check=True)
    benches = [
        b
        for b in benchmarks(data, work)
        if (not args.only or b.group in args.only) and b.name not in args.skip
    ]
    walls, rss = run_rounds(benches, args.repeats)
    micro = {}
    for m in micro_benchmarks(work):
        if not args.only or m.group in args.only:
            print(f"running {m.name} ...", file=sys.stderr)
            micro[m.name] = {"cmd": shlex.join(m.cmd), "rows": run_micro(m)}
    for b in benches:
        wipe(b.wipe)  # don't leave GBs of output behind

    info = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join(sys.orig_argv),
        "rows": args.rows,
        "repeats": args.repeats,
        "groups": args.only or list(GROUPS),
        "data": str(data.relative_to(BENCH.parent)),
        "data_mb": data.stat().st_size / 1e6,
        "machine": machine(),
    }
    res = summarize(benches, walls, rss)
    section = markdown(info, res, micro)
    # Named by the groups run too: an --only run must not overwrite a full run's timings.
    name = "-".join([f"results-{args.rows}"] + (sorted(set(args.only)) if args.only else []))
    (work / f"{name}.json").write_text(
        json.dumps(info | {"results": res, "micro": micro}, indent=2)
    )
    title = "# mlstage benchmark results\n\nWritten by `bench/run.py`; see bench/README.md.\n\n"
    if args.append and args.out.exists():
        with args.out.open("a") as f:
            f.write("\n" + section)
    else:
        args.out.write_text(title + section)
    print("\n" + section, file=sys.stderr)
    if previous is not None:
        worse = regressions(previous, info, res)
        print("\n".join(["--check:", *worse] if worse else ["--check: no figure fell behind"]),
              file=sys.stderr)  # fmt: skip
        if worse and not worse[0].startswith("recorded on another machine"):
            sys.exit(1)


if __name__ == "__main__":
    main()
