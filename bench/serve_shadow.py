"""The stable path's latency with and without a shadow running (issue 19: at most 5% more).

    python bench/serve_shadow.py [--rounds 5] [--requests 2000] [--out bench/work/shadow.json]

Builds serve_load.py's two models (untimed), deploys one as stable, starts `mlstage serve
--log-dir`, and measures in interleaved rounds (the order alternating) single-row
latency on one keep-alive connection (p50, p99 of --requests after 200 warm-up) and the
throughput of 4 client processes for 5 s, with no shadow and with the second model as a
shadow (`deploy --shadow` / `deploy --rollback --label shadow` between rounds). The
shadow's copies are counted in the logs afterwards, so a round that dropped them shows.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import MLSTAGE, build, latency, python_load, wait_ready  # noqa: E402


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shadow_of(port: int) -> int | None:
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("GET", "/v1/models/income")
    doc = json.loads(c.getresponse().read())
    return (doc.get("shadow") or {}).get("version")


def set_shadow(work: Path, port: int, on: bool) -> None:
    if (shadow_of(port) is not None) == on:
        return
    if on:
        args = ["deploy", "m_b", "--evaluation", "e_b", "--shadow", "--skip-check"]
    else:
        args = ["deploy", "--rollback", "--label", "shadow"]
    subprocess.run([MLSTAGE, *args, "--registry", "reg", "--quiet"], cwd=work, check=True)
    for _ in range(100):
        if (shadow_of(port) is not None) == on:
            return
        time.sleep(0.1)
    sys.exit("the server did not see the shadow change")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlstage-shadow-"))
    build(work)
    port = free_port()
    logs = work / "logs"
    server = subprocess.Popen(
        [MLSTAGE, "serve", "--registry", "reg", "--port", str(port), "--log-dir", str(logs)],
        cwd=work,
        stderr=open(work / "serve.log", "wb"),
    )
    results: dict[str, list[dict]] = {"off": [], "on": []}
    try:
        wait_ready(port)
        set_shadow(work, port, True)  # untimed: the shadow process starts and loads
        latency(port, 500)
        time.sleep(3)
        for k in range(args.rounds):
            for state in ("off", "on") if k % 2 == 0 else ("on", "off"):
                set_shadow(work, port, state == "on")
                lat = latency(port, args.requests)
                load = python_load(port, 5.0, clients=4)
                results[state].append({**lat, "requests_per_s": load["requests_per_s"],
                                       "failed": load["failed"]})  # fmt: skip
                print(state, json.dumps(results[state][-1]), flush=True)
        c = http.client.HTTPConnection("127.0.0.1", port)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        counts = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
                  if line.startswith("mlstage_shadow_")}  # fmt: skip
    finally:
        server.terminate()
        server.wait(30)
    import polars as pl

    logged = pl.concat(
        [pl.read_parquet(f) for f in sorted(logs.glob("requests-*.parquet"))], how="diagonal"
    )
    shadow_rows = (
        logged.filter(pl.col("shadow").fill_null(False)).height if "shadow" in logged.columns else 0
    )
    med = {s: {m: statistics.median(r[m] for r in rs) for m in ("p50_ms", "p99_ms", "requests_per_s")}
           for s, rs in results.items()}  # fmt: skip
    summary = {
        "rounds": args.rounds,
        "median": med,
        "p50_ratio": med["on"]["p50_ms"] / med["off"]["p50_ms"],
        "p99_ratio": med["on"]["p99_ms"] / med["off"]["p99_ms"],
        "throughput_ratio": med["on"]["requests_per_s"] / med["off"]["requests_per_s"],
        "answered_rows": logged.height - shadow_rows,
        "shadow_rows": shadow_rows,
        "failed": sum(r["failed"] for rs in results.values() for r in rs),
        "shadow_copies": counts.get("mlstage_shadow_copies"),
        "shadow_dropped": counts.get("mlstage_shadow_dropped"),
    }
    print(json.dumps(summary, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps({"summary": summary, "rounds": results}, indent=1))


if __name__ == "__main__":
    main()
