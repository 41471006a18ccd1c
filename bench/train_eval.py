"""Benchmarks of `train`, `evaluate` and `predict` (issues 5 and 6), whole processes,
interleaved, medians of --repeats runs, peak RSS per child (os.wait4).

    python bench/train_eval.py [--rows 1000000] [--repeats 5]

- train-overhead: `mlstage train` (HistGradientBoostingClassifier) against scikit-learn
  called directly on the same float32 arrays (bench/train_direct.py), same run;
- search: random search, 8 trials x 3 folds, n_jobs=-1 against n_jobs=1 (speed-up), on
  a 100,000-row table so the sequential run stays short;
- evaluate-vs-predict: `evaluate` with 3 slice specs and 2 sensitive columns against
  `predict` on the same rows: the time evaluate spends beyond predicting.
Setup (untimed): ingest the synthetic table (train 8 / eval 2) and featurize it with
bench/features_spec.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import BENCH, MLSTAGE, PY, Bench, run_once  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    data = BENCH / "data" / f"synth_{args.rows}.csv"
    work = BENCH / "work" / f"train-eval-{args.rows}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    st = ["--store", str(work / "store"), "--quiet"]
    subprocess.run(
        [
            MLSTAGE,
            "ingest",
            str(data),
            "--split",
            "train=8",
            "--split",
            "eval=2",
            "-o",
            str(work / "ds"),
            *st,
        ],
        check=True,
    )
    subprocess.run(
        [
            MLSTAGE,
            "featurize",
            str(work / "ds"),
            "--spec",
            str(BENCH / "features_spec.json"),
            "-o",
            str(work / "feat"),
            *st,
        ],
        check=True,
    )
    small = BENCH / "data" / "synth_100000.csv"
    if not small.exists():
        subprocess.run(
            [PY, str(BENCH / "gen_data.py"), "--rows", "100000", "-o", str(small)], check=True
        )
    subprocess.run(
        [
            MLSTAGE,
            "ingest",
            str(small),
            "--split",
            "train=8",
            "--split",
            "eval=2",
            "-o",
            str(work / "ds_small"),
            *st,
        ],
        check=True,
    )
    subprocess.run(
        [
            MLSTAGE,
            "featurize",
            str(work / "ds_small"),
            "--spec",
            str(BENCH / "features_spec.json"),
            "-o",
            str(work / "feat_small"),
            *st,
        ],
        check=True,
    )
    hgb = {
        "format": "mlstage-train/1",
        "task": "classification",
        "estimator": "HistGradientBoostingClassifier",
        "params": {"max_iter": 50},
        "seed": 0,
    }
    (work / "hgb.json").write_text(json.dumps(hgb))
    search = {
        "format": "mlstage-train/1",
        "task": "classification",
        "estimator": "LogisticRegression",
        "params": {"max_iter": 200},
        "seed": 0,
        "tune": {
            "search": "random",
            "n_iter": 8,
            "cv": 3,
            "space": {"C": {"loguniform": [0.01, 10]}},
        },
    }
    for jobs in (-1, 1):
        (work / f"search{jobs}.json").write_text(
            json.dumps({**search, "tune": {**search["tune"], "n_jobs": jobs}})
        )
    (work / "eval.json").write_text(
        json.dumps(
            {
                "format": "mlstage-evaluate/1",
                "slices": [["c0"], ["c1"], ["c0", "c1"]],
                "sensitive": ["c0", "c2"],
                "positive": "yes",
                "importance": {"repeats": 1, "sample": 2000},
                "partial_dependence": {"top": 2, "sample": 500},
            }
        )
    )
    subprocess.run(
        [
            MLSTAGE,
            "train",
            str(work / "feat"),
            "--config",
            str(work / "hgb.json"),
            "-o",
            str(work / "model"),
            *st,
        ],
        check=True,
    )
    force = ["--force", *st]
    benches = [
        Bench("train-direct", "train", [PY, str(BENCH / "train_direct.py"), str(work / "feat"), str(work / "hgb.json")]),
        Bench("train", "train", [MLSTAGE, "train", str(work / "feat"), "--config", str(work / "hgb.json"), "-o", str(work / "m2"), *force]),
        Bench("search-n_jobs=1", "train", [MLSTAGE, "train", str(work / "feat_small"), "--config", str(work / "search1.json"), "-o", str(work / "s1"), *force]),
        Bench("search-n_jobs=-1", "train", [MLSTAGE, "train", str(work / "feat_small"), "--config", str(work / "search-1.json"), "-o", str(work / "s2"), *force]),
        Bench("predict-eval", "evaluate", [MLSTAGE, "predict", str(work / "model"), str(work / "ds"), "--split", "eval", "-o", str(work / "p"), *force]),
        Bench("evaluate-eval", "evaluate", [MLSTAGE, "evaluate", str(work / "model"), str(work / "ds"), "--config", str(work / "eval.json"), "-o", str(work / "e"), *force]),
    ]  # fmt: skip
    walls: dict[str, list[float]] = {b.name: [] for b in benches}
    rss: dict[str, list[float]] = {b.name: [] for b in benches}
    for r in range(args.repeats):
        for b in benches:
            w, kib = run_once(b)
            walls[b.name].append(w)
            rss[b.name].append(kib / 1024)
            print(
                f"[{r + 1}/{args.repeats}] {b.name:20} {w:7.2f} s {kib / 1024:6.0f} MB",
                file=sys.stderr,
            )
    med = {k: statistics.median(v) for k, v in walls.items()}
    x_mb = args.rows * 0.8 * 196 * 4 / 2**20
    out = {
        "rows": args.rows,
        "repeats": args.repeats,
        "median_s": med,
        "median_rss_mb": {k: statistics.median(v) for k, v in rss.items()},
        "train_overhead": med["train"] / med["train-direct"] - 1,
        "search_speedup": med["search-n_jobs=1"] / med["search-n_jobs=-1"],
        "evaluate_beyond_predict_over_predict": (med["evaluate-eval"] - med["predict-eval"])
        / med["predict-eval"],
        "train_matrix_mb": x_mb,
    }
    (BENCH / "work" / f"train-eval-{args.rows}.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
