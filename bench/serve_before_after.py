"""What the serving limits cost: the server of an earlier commit against this one, side
by side, on the same model and the same load client.

    .venv/bin/python bench/serve_before_after.py --before f1da07c [--rounds 5] [--seconds 10]

The earlier commit is checked out (once) as a git worktree in bench/work/ and its server
started with that tree first on PYTHONPATH; everything else (the venv, the model built
by serve_load.build, the registry) is shared. Rounds are interleaved, alternating which
server goes first, and each round measures, per server: single-row latency (2,000
sequential requests on one keep-alive connection: p50, p99) and throughput (8 client
processes for --seconds). Medians over rounds are reported, with the ratio new/before.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve_load  # noqa: E402

ROOT = serve_load.ROOT


def worktree(rev: str) -> Path:
    sha = subprocess.run(["git", "rev-parse", rev], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()  # fmt: skip
    path = ROOT / "bench" / "work" / f"before-{sha[:12]}"
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), sha], cwd=ROOT, check=True)
    return path


def measure(code: Path | None, work: Path, port: int, seconds: float) -> dict:
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    server = subprocess.Popen(
        [serve_load.MLSTAGE, "serve", "--registry", "reg", "--port", str(port)],
        cwd=work, env=env, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        serve_load.wait_ready(port)
        lat = serve_load.latency(port)
        load = serve_load.python_load(port, seconds)
        return {**lat, "requests_per_s": load["requests_per_s"], "failed": load["failed"]}
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, help="the commit to compare with")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--port", type=int, default=8797)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/work/serve_before_after.json")
    args = ap.parse_args()
    before = worktree(args.before)
    work = Path(tempfile.mkdtemp(prefix="mlstage-serve-ba-"))
    runs: dict[str, list[dict]] = {"before": [], "new": []}
    try:
        serve_load.build(work)
        for r in range(args.rounds):
            order = [("before", before), ("new", None)]
            for name, code in order if r % 2 == 0 else order[::-1]:
                runs[name].append(measure(code, work, args.port, args.seconds))
                print(name, json.dumps(runs[name][-1]), flush=True)
                time.sleep(1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {
        name: {
            k: statistics.median(x[k] for x in rs) for k in ("p50_ms", "p99_ms", "requests_per_s")
        }
        for name, rs in runs.items()
    }
    ratios = [
        n["requests_per_s"] / b["requests_per_s"]
        for n, b in zip(runs["new"], runs["before"], strict=True)
    ]
    res = {"before": args.before, "rounds": args.rounds, "seconds": args.seconds, "runs": runs,
           "median": med, "throughput_ratio_new_over_before": statistics.median(ratios)}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))
    print(json.dumps({"median": med, "ratio": res["throughput_ratio_new_over_before"]}, indent=2))


if __name__ == "__main__":
    main()
