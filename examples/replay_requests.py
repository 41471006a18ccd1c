#!/usr/bin/env python3
"""Replay rows of a CSV file to a running `mlstage serve` as production traffic would.

    replay_requests.py CSV URL [--rows N] [--skip N] [--batch N] [--label COLUMN]
                       [--drift] [--null VALUE] [--feedback FILE]

Sends N rows (after skipping the first --skip) in batches to URL (a TF Serving
`:predict` address), each batch with its own X-Request-ID. The label column is left
out of the requests; with --feedback its values are written to FILE as the labels
that "arrive later" (columns request_id, row, label), for `monitor --feedback FILE
--join request_id --join row`. --drift shifts the traffic the way a changed
population would (ages +20 years, hours-per-week +15) so that `monitor` notices.
Only the standard library: it runs with any python3.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import urllib.request


def typed(value: str, nulls: set[str]):
    if value in nulls or value == "":
        return None
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("url")
    ap.add_argument("--rows", type=int, default=500)
    ap.add_argument("--skip", type=int, default=0)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--label", default="income")
    ap.add_argument("--null", action="append", default=["?"])
    ap.add_argument("--drift", action="store_true")
    ap.add_argument("--feedback")
    ap.add_argument("--tag", default="replay", help="prefix of the request ids")
    args = ap.parse_args()
    nulls = set(args.null)
    with open(args.csv, newline="") as f:
        rows = list(csv.DictReader(f))[args.skip : args.skip + args.rows]
    feedback = []
    for start in range(0, len(rows), args.batch):
        batch = rows[start : start + args.batch]
        instances = []
        for r in batch:
            inst = {k: typed(v, nulls) for k, v in r.items() if k != args.label}
            if args.drift:
                inst["age"] = (inst["age"] or 40) + 20
                inst["hours-per-week"] = (inst["hours-per-week"] or 40) + 15
            instances.append(inst)
        rid = f"{args.tag}-{start // args.batch:05d}"
        req = urllib.request.Request(
            args.url,
            data=json.dumps({"instances": instances}).encode(),
            headers={"content-type": "application/json", "x-request-id": rid},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            json.load(resp)
        feedback += [(rid, i, r[args.label]) for i, r in enumerate(batch)]
    if args.feedback:
        with open(args.feedback, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["request_id", "row", args.label])
            w.writerows(feedback)
    print(f"sent {len(rows)} rows in {-(-len(rows) // args.batch)} requests", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
