"""Human output: rich on stderr (colour only on a terminal), plain text when piped.

stdout carries data only: `--json` records, inspection results, payloads.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULT = {True: "pass", False: "FAIL", None: "skipped"}  # a check's `passed`, for people


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def stdout_console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def short_id(artifact_id: str | None) -> str:
    return (artifact_id or "")[:12]


def summary_text(summary: dict[str, Any] | None) -> str:
    """A one-line rendering of a manifest summary: scalars and small mappings."""
    if not summary:
        return ""
    parts = []
    for key, value in summary.items():
        if isinstance(value, bool):
            parts.append(f"{key}={'true' if value else 'false'}")
        elif isinstance(value, int | float | str) or value is None:
            parts.append(f"{key}={value}")
        elif (
            isinstance(value, dict)
            and len(value) <= 6
            and all(isinstance(v, int | float | str | bool) for v in value.values())
        ):
            parts.append(f"{key}=" + ",".join(f"{k}:{v}" for k, v in value.items()))
    return " ".join(parts)


def print_json_line(record: Any) -> None:
    sys.stdout.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
    sys.stdout.flush()


def print_json(record: Any) -> None:
    """Indented on a terminal, compact when piped."""
    if sys.stdout.isatty():
        sys.stdout.write(json.dumps(record, indent=2, default=str) + "\n")
    else:
        print_json_line(record)


def print_table(columns: list[str], rows: list[list[Any]], *, title: str | None = None) -> None:
    """A rich table on a terminal; tab-separated lines (no header) when piped."""
    if sys.stdout.isatty():
        from rich.table import Table

        table = Table(*columns, title=title)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        stdout_console().print(table)
    else:
        for row in rows:
            sys.stdout.write("\t".join("" if v is None else str(v) for v in row) + "\n")


def lineage_lines(
    node: dict[str, Any], prefix: str = "", last: bool = True, root: bool = True
) -> list[str]:
    if node["kind"] in ("file", "missing"):
        label = (
            f"{node['role']}: {node['path']}  sha256:{short_id(node['id'])}"
            if node["kind"] == "file"
            else f"{node['role']}: {node['path']}  {short_id(node['id'])} (not in the store)"
        )
    else:
        role = f"{node['role']}: " if node.get("role") else ""
        where = f"  {node['path']}" if node.get("path") else ""
        label = f"{role}{node['kind']} {short_id(node['id'])} ({node['stage']}, {node['created']}){where}"
    lines = [label if root else prefix + ("└── " if last else "├── ") + label]
    child_prefix = "" if root else prefix + ("    " if last else "│   ")
    for i, child in enumerate(node["inputs"]):
        lines += lineage_lines(child, child_prefix, i == len(node["inputs"]) - 1, root=False)
    return lines


def _num(x) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def stats_table(path) -> None:
    """Key statistics of the first split, on stderr."""
    from rich.table import Table

    doc = json.loads(Path(path).read_text())
    if not doc["splits"]:
        return
    name, split = next(iter(doc["splits"].items()))
    table = Table(
        "column",
        "type",
        "missing",
        "mean / unique",
        "min",
        "median / top",
        "max",
        title=f"split {name}: {split['rows']:,} rows",
    )
    for col, s in split["columns"].items():
        total = s["count"] + s["missing"]
        missing = f"{s['missing'] / total:.1%}" if total else ""
        if s["type"] in ("int", "float"):
            table.add_row(
                col,
                s["type"],
                missing,
                _num(s["mean"]),
                _num(s["min"]),
                _num(s["quantiles"].get("0.5")),
                _num(s["max"]),
            )
        elif s["type"] in ("string", "bool"):
            top = s["values"][0][0] if s["values"] else ""
            table.add_row(col, s["type"], missing, f"{s['unique']:,} values", "", top, "")
        else:
            table.add_row(col, s["type"], missing, "", s.get("min") or "", "", s.get("max") or "")
    stderr_console().print(table)


def anomalies_table(path) -> None:
    """The anomalies found, on stderr (errors in red on a terminal)."""
    from rich.table import Table

    doc = json.loads(Path(path).read_text())
    if not doc["anomalies"]:
        stderr_console().print("no anomalies", markup=False)
        return
    table = Table("split", "column", "type", "severity", "description")
    for a in doc["anomalies"]:
        style = "red" if a["severity"] == "error" else "yellow"
        table.add_row(
            a["split"], a["column"] or "", a["type"], a["severity"], a["description"], style=style
        )
    stderr_console().print(table)


def blessing_table(path) -> None:
    """Every check of an evaluation, failures in red, on stderr."""
    from rich.table import Table

    doc = json.loads(Path(path).read_text())
    if not doc["checks"]:
        stderr_console().print("no thresholds: blessed by default", markup=False)
        return
    table = Table("metric", "slice", "value", "threshold", "result")
    for c in doc["checks"]:
        result = RESULT[c["passed"]]
        value = _num(c["value"]) if not isinstance(c["value"], list) else str(c["value"])
        if c.get("kind") == "change" and "baseline_value" in c:
            value = f"{_num(c['value'])} (baseline {_num(c['baseline_value'])}, change {_num(c['change'])})"
        threshold = ", ".join(f"{k} {v}" for k, v in c["threshold"].items())
        note = f" ({c['note']})" if c.get("note") else ""
        style = "red" if c["passed"] is False else None
        table.add_row(
            c["metric"], c["slice"] or "overall", value, threshold, result + note, style=style
        )
    stderr_console().print(table)


def monitor_table(path) -> None:
    """What monitor found: input anomalies, prediction drift, live metrics, the verdict."""
    doc = json.loads(Path(path).read_text())
    console = stderr_console()
    req = doc["requests"]
    window = req["window"]
    span = f" from {window['since']} to {window['until']}" if window else ""
    console.print(f"{req['rows']} requests{span} in {req['files']} files", markup=False)
    if doc["anomalies"]:
        anomalies_table(path)
    preds = doc.get("predictions") or {}
    for name, m in (preds.get("measures") or {}).items():
        flag = "DRIFT" if name in preds["drifted"] else "ok"
        console.print(
            f"predictions {name}: {m['metric']} {_num(m['value'])} (threshold {_num(m['threshold'])}) {flag}",
            markup=False,
        )
    live = doc.get("live")
    if live:
        console.print(
            f"feedback: {live['joined']} of {live['feedback_rows']} labels joined", markup=False
        )
        for c in live["checks"]:
            result = RESULT[c["passed"]]
            console.print(
                f"  live {c['metric']} {_num(c['value'])} (evaluation {_num(c['evaluation_value'])},"
                f" threshold {c['threshold']}) {result}",
                markup=False,
            )
    cmp = doc.get("comparison")
    if cmp:
        for key in ("stable", "candidate"):
            side = cmp[key]
            live = ((side.get("live") or {}).get("metrics")) or {}
            est = ((side.get("estimated") or {}).get("metrics")) or {}
            headline = ("accuracy", "roc_auc", "f1", "r2", "mae", "rmse")
            shown = ", ".join(f"{m} {_num(live[m])}" for m in headline if live.get(m) is not None)
            shown += (" " if shown else "") + ", ".join(
                f"estimated {m} {_num(v)}" for m, v in sorted(est.items())
            )
            console.print(
                f"{key} version {side['version']}: {side['rows']} rows; {shown or 'no metrics'}",
                markup=False,
            )
        diff = cmp["difference"]
        if diff.get("p_value") is not None:
            console.print(
                f"predictions differ: {diff['test']} p {_num(diff['p_value'])}"
                + (f", agreement {diff['agreement']:.2%}" if "agreement" in diff else ""),
                markup=False,
            )
        style = "bold red" if cmp["verdict"] == "rollback" else "bold green"
        console.print(f"verdict: {cmp['verdict']} the {cmp['role']}", style=style, markup=False)
        for r in cmp["reasons"]:
            console.print(f"  - {r}", markup=False)
    if doc["retrain"]:
        console.print("retrain: yes", style="bold red", markup=False)
        for r in doc["reasons"]:
            console.print(f"  - {r}", markup=False)
    else:
        console.print("retrain: no", markup=False)


def table_to_stdout(parquet_paths) -> None:
    """Stream Parquet files (one, or a split's partitions in order) to stdout as one Arrow
    IPC stream, batch by batch."""
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    paths = list(parquet_paths)
    with pq.ParquetFile(paths[0]) as first:
        schema = first.schema_arrow
    with ipc.new_stream(sys.stdout.buffer, schema) as writer:
        for path in paths:  # one file open at a time: a split may have thousands
            with pq.ParquetFile(path) as pf:
                for batch in pf.iter_batches():
                    writer.write_batch(batch)
    sys.stdout.buffer.flush()
