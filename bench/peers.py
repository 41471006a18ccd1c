"""The peers, side by side with mlstage in the same interleaved rounds (issue 20): TFDV's
statistics and Evidently's drift preset against `mlstage stats` and `mlstage validate`,
on the same table (bench/gen_data.py, written as Parquet once).

    .venv/bin/python bench/peers.py [--rows 1000000] [--repeats 5]     # `make bench-peers`

Each peer lives in a venv of its own under bench/work/ (their pins conflict with ours:
TFDV brings TensorFlow, Apache Beam and its own pyarrow), made on first use with pip; a
peer whose install fails is skipped with the reason, and the others still run. Pins:
tensorflow-data-validation 1.16.1 (the newest with wheels for Python 3.11) and
evidently 0.7.23.

What each does (whole processes, reading the same Parquet file):
- `tfdv-stats`: `tfdv.generate_statistics_from_dataframe` on the table read with pandas
  (TFDV's in-memory path; its Beam pipeline is slower still).
- `evidently-drift`: `Report([DataDriftPreset()]).run(reference, current)` on two reads of
  the table: the drift tests of every column, the work `validate --baseline` does.
- `stats`: `mlstage stats DS`; `validate`: `mlstage validate DS --schema S --baseline B`
  (B: the table's own statistics, made in the setup, as Evidently's reference is a table).
The table is bench/run.py's CSV ingested once (`DS/data.parquet`, timestamps typed): the
peers read that file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import subprocess
import sys
from pathlib import Path

from run import (
    BENCH,
    MLSTAGE,
    PY,
    Bench,
    machine,
    markdown,
    run_rounds,
    setup_step,
    summarize,
    wipe,
)

WORK = BENCH / "work" / "peers"
INSTALL_TIMEOUT = 1200
PEERS = {
    "tfdv": ["tensorflow-data-validation==1.16.1"],
    "evidently": ["evidently==0.7.23", "pandas<3", "pyarrow"],  # 0.7.23 predates pandas 3
}
TFDV = """
import sys, pandas as pd, tensorflow_data_validation as tfdv
stats = tfdv.generate_statistics_from_dataframe(pd.read_parquet(sys.argv[1]))
print(len(stats.datasets[0].features), "features")
"""
EVIDENTLY = """
import sys, pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
reference, current = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[1])
result = Report([DataDriftPreset()]).run(reference_data=reference, current_data=current)
print(len(result.dict()["metrics"]), "metrics")
"""


def peer_python(name: str) -> tuple[Path | None, str]:
    """The peer's venv python, made and installed on first use; None and why when not."""
    venv = BENCH / "work" / f"{name}-venv"
    python = venv / "bin" / "python"
    check = [
        str(python),
        "-c",
        "import " + ("tensorflow_data_validation" if name == "tfdv" else name),
    ]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python, "installed"
    print(f"installing {name} into {venv} ...", file=sys.stderr)
    steps = [
        ["python3", "-m", "venv", str(venv)],
        [str(venv / "bin" / "pip"), "install", "-q", *PEERS[name]],
    ]
    for step in steps:
        try:
            proc = subprocess.run(step, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            return None, f"`{shlex.join(step)}` took over {INSTALL_TIMEOUT} s (pip still resolving)"
        if proc.returncode:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            return None, f"`{shlex.join(step)}` failed: {lines[-1] if lines else proc.returncode}"
    if subprocess.run(check, capture_output=True).returncode:
        return None, f"{name} installed but does not import"
    return python, "installed"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=BENCH / "results.md")
    ap.add_argument("--skip", choices=sorted(PEERS), action="append", default=[],
                    help="leave out this peer (repeatable)")  # fmt: skip
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    data = BENCH / "data" / f"synth_{args.rows}.csv"  # run.py's table
    if not data.exists():
        gen = [PY, str(BENCH / "gen_data.py"), "--rows", str(args.rows), "-o", str(data)]
        subprocess.run(gen, check=True)
    ds, store = WORK / "ds", ["--store", str(WORK / "store")]
    table = ds / "data.parquet"  # what everyone reads: the ingested, typed table

    def prepare() -> None:
        wipe([ds, WORK / "base", WORK / "schema"])
        setup_step("ingest", str(data), "-o", str(ds), "--quiet", *store)
        setup_step("stats", str(ds), "-o", str(WORK / "base"), "--quiet", *store)
        setup_step(
            "schema",
            str(WORK / "base"),
            "-o",
            str(WORK / "schema"),
            "--label",
            "label",
            "--quiet",
            *store,
        )

    benches = [
        Bench("stats", "peers", [MLSTAGE, "stats", str(ds), "-o", str(WORK / "stats"), "--force", "--quiet", *store],
              wipe=[WORK / "stats"], setup=prepare),
        Bench("validate", "peers", [MLSTAGE, "validate", str(ds), "--schema", str(WORK / "schema"), "--baseline",
                                    str(WORK / "base"), "-o", str(WORK / "anomalies"), "--force", "--quiet", *store],
              wipe=[WORK / "anomalies"]),
    ]  # fmt: skip
    skipped = {}
    for name, script, ref in (("tfdv", TFDV, "stats"), ("evidently", EVIDENTLY, "validate")):
        python, why = (None, "--skip") if name in args.skip else peer_python(name)
        if python is None:
            skipped[name] = why
            print(f"skipping {name}: {why}", file=sys.stderr)
            continue
        label = "tfdv-stats" if name == "tfdv" else "evidently-drift"
        benches.append(Bench(label, "peers", [str(python), "-c", script, str(table)], ref=ref))
    walls, rss = run_rounds(benches, args.repeats)
    info = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join(sys.orig_argv),
        "rows": args.rows,
        "repeats": args.repeats,
        "data": str(data.relative_to(BENCH.parent)),
        "data_mb": data.stat().st_size / 1e6,
        "machine": machine(),
    }
    res = summarize(benches, walls, rss)
    section = markdown(info, res, {}).replace(" rows — ", " rows, the peers — ", 1)
    if skipped:
        section += "\nSkipped: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()) + "\n"
    (WORK / f"peers-{args.rows}.json").write_text(
        json.dumps(info | {"results": res, "skipped": skipped}, indent=2)
    )
    with args.out.open("a") as f:
        f.write("\n" + section)
    print("\n" + section, file=sys.stderr)


if __name__ == "__main__":
    main()
