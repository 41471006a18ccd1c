"""What verified reads cost (issue 14): every stage now checks the files of each artifact
it reads against the manifest. Measured against the same commands of a reference
mlstage without the checks (a git worktree of an earlier commit), side by side,
interleaved, whole processes:

- `stats` up to date (the input dataset checked through the hash cache);
- `stats` on `@id` (the store's copy of the dataset: its first read hashes it, later
  reads hit the cache) — the first timed run pays the full hash, so the median shows
  the cached cost; the first run is reported apart;
- `stats` doing its work (the input checked once, then the statistics computed).

    git worktree add /tmp/mlstage-ref <commit>
    .venv/bin/python bench/verified_reads.py --ref /tmp/mlstage-ref --rows 1000000 --repeats 7
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def run(code_root: Path, args: list[str], cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(code_root), "MLSTAGE_STORE": str(cwd / ".mlstage")}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mlstage", *args, "-q"], cwd=cwd, env=env, check=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", type=Path, required=True, help="a checkout of the reference version")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--work", type=Path, default=HERE / "work" / "verified")
    a = ap.parse_args()
    data = HERE / "data" / f"synth_{a.rows}.csv"
    if not data.exists():
        data.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, str(HERE / "gen_data.py"), "--rows", str(a.rows), "-o", str(data)],
            check=True,
        )
    sides = {"mlstage": ROOT, "reference": a.ref}
    dirs = {}
    for name, code in sides.items():
        d = a.work / name
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        run(code, ["ingest", str(data), "-o", "ds"], d)
        run(code, ["stats", "ds", "-o", "st"], d)
        dirs[name] = d
    ids = {
        n: (d / "ds" / "manifest.json").read_text().split('"id": "')[1][:12]
        for n, d in dirs.items()
    }
    times: dict[str, dict[str, list[float]]] = {
        n: {"up to date": [], "@id up to date": [], "work": []} for n in sides
    }
    first_at_id = {}
    for r in range(a.repeats):
        for name, code in sides.items():
            d = dirs[name]
            times[name]["up to date"].append(run(code, ["stats", "ds", "-o", "st"], d))
            t = run(code, ["stats", f"@{ids[name]}", "-o", "st_id"], d)
            if r == 0:
                first_at_id[name] = t
                t = run(code, ["stats", f"@{ids[name]}", "-o", "st_id"], d)
            times[name]["@id up to date"].append(t)
            times[name]["work"].append(run(code, ["stats", "ds", "-o", "st", "--force"], d))
    print(f"{a.rows:,} rows, medians of {a.repeats} interleaved runs (s):")
    print("| | mlstage | reference | ratio |\n|---|---|---|---|")
    for what in ("up to date", "@id up to date", "work"):
        m = statistics.median(times["mlstage"][what])
        ref = statistics.median(times["reference"][what])
        print(f"| stats, {what} | {m:.3f} | {ref:.3f} | {m / ref:.2f} |")
    print(
        f"| stats on @id, first run (hashes the stored dataset once) | {first_at_id['mlstage']:.3f}"
        f" | {first_at_id['reference']:.3f} | {first_at_id['mlstage'] / first_at_id['reference']:.2f} |"
    )


if __name__ == "__main__":
    main()
