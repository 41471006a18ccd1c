"""What evaluate's bootstrap intervals cost: `mlstage evaluate` with the default intervals
(200 resamples) against the same evaluation with `"intervals": {"resamples": 0}`, side
by side, interleaved, on the examples' config (3 slicings, 2 sensitive columns, a
baseline model for the paired differences).

    .venv/bin/python bench/evaluate_intervals.py [--rows 0] [--repeats 5]

--rows N > 0 evaluates on N rows (the Adult rows repeated, a synthetic larger split);
0 (the default) on the Adult sample's own eval split (about 6,600 rows). Reports the
median wall time of each and the ratio (the issue's target: at most 1.5x).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MLSTAGE = str(Path(sys.executable).parent / "mlstage")


def sh(*args, cwd):
    subprocess.run([MLSTAGE, *args, "--quiet"], cwd=cwd, check=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlstage-eval-ci-"))
    src = ROOT / "sample_data/adult.csv"
    if args.rows:
        import polars as pl

        frame = pl.read_csv(src, infer_schema_length=None)
        times = -(-args.rows // frame.height)
        pl.concat([frame] * times).head(args.rows).write_csv(work / "adult.csv")
        src = work / "adult.csv"
    sh(
        "ingest",
        str(src),
        "--null",
        "?",
        "--split",
        "train=8",
        "--split",
        "eval=2",
        "-o",
        "ds",
        cwd=work,
    )
    sh("featurize", "ds", "--spec", str(ROOT / "examples/adult_features.json"), "-o", "f", cwd=work)
    for name, c in (("m", 1.0), ("b", 0.1)):
        cfg = {"format": "mlstage-train/1", "task": "classification", "seed": 0,
               "estimator": "LogisticRegression", "params": {"C": c, "max_iter": 500}}  # fmt: skip
        (work / f"{name}.json").write_text(json.dumps(cfg))
        sh("train", "f", "--config", f"{name}.json", "-o", name, cwd=work)
    base = json.loads((ROOT / "examples/adult_evaluate.json").read_text())
    (work / "on.json").write_text(json.dumps(base))
    (work / "off.json").write_text(json.dumps({**base, "intervals": {"resamples": 0}}))
    runs: dict[str, list[float]] = {"on": [], "off": []}
    for r in range(args.repeats):
        for which in ("on", "off") if r % 2 == 0 else ("off", "on"):
            t = time.perf_counter()
            sh("evaluate", "m", "ds", "--baseline", "b", "--config", f"{which}.json",
               "-o", f"e_{which}", "--force", cwd=work)  # fmt: skip
            runs[which].append(time.perf_counter() - t)
    rows = json.loads((work / "e_on" / "metrics.json").read_text())["rows"]
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(
        json.dumps(
            {"rows": rows, "seconds": runs, "median": med, "ratio": med["on"] / med["off"]},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
