"""Checking data against a schema and a baseline: the anomalies of `anomalies.json`
(mlstage-anomalies/1) and the drift measures, one `Checker` for `validate` and `monitor`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.documents import validate
from ..core.jsonio import dumps_pretty, jsonable
from .drift import linf

ENVIRONMENTS = ("training", "serving")


EXAMPLES = 10


def _pct(x: float) -> str:
    return f"{x:.0%}" if x >= 0.01 or x == 0 else f"{x:.2%}"


def _fits(schema_type: str, data_type: str) -> bool:
    return schema_type == data_type or (schema_type == "float" and data_type == "int")


class Checker:
    def __init__(self, schema: dict[str, Any], environment: str, baseline: dict[str, Any] | None):
        self.schema = schema
        self.env = environment
        self.baseline = baseline
        self.drift_cfg = schema.get("drift", {})
        self.anomalies: list[dict[str, Any]] = []
        self.drift: dict[str, dict[str, Any]] = {}

    def add(
        self,
        split: str,
        column: str | None,
        type_: str,
        description: str,
        *,
        severity: str = "error",
        value=None,
        threshold=None,
        metric: str | None = None,
        examples: list | None = None,
    ) -> None:
        severity = self.schema.get("severity", {}).get(type_, severity)
        self.anomalies.append(
            jsonable(
                {
                    "split": split,
                    "column": column,
                    "type": type_,
                    "severity": severity,
                    "description": description,
                    "value": value,
                    "threshold": threshold,
                    "metric": metric,
                    "examples": examples or [],
                }
            )
        )

    def expected(self, name: str, spec: dict[str, Any]) -> bool:
        return self.env in spec.get("environments", ENVIRONMENTS)

    # -- per split ---------------------------------------------------------------------
    def check_split(
        self, split: str, source, types: dict[str, str], *, row_counts: bool = True
    ) -> None:
        """Check one split: a Parquet file (read a column at a time) or a polars DataFrame.

        `row_counts=False` skips too_few_rows and row_count_change: `monitor` checks
        serving traffic, whose volume says nothing about the data's health.
        """
        import polars as pl

        def column(name: str):
            if isinstance(source, pl.DataFrame):
                return source.get_column(name)
            return pl.read_parquet(source, columns=[name]).to_series()

        if isinstance(source, pl.DataFrame):
            rows = source.height
        else:
            rows = pl.scan_parquet(source).select(pl.len()).collect().item()
        min_rows = self.schema.get("min_rows", 1)
        if row_counts and rows < min_rows:
            self.add(
                split,
                None,
                "too_few_rows",
                f"{rows} rows, fewer than the {min_rows} the schema asks for",
                value=rows,
                threshold=min_rows,
                metric="rows",
            )
        ratio_max = self.schema.get("max_row_count_ratio")
        if row_counts and self.baseline is not None and ratio_max:
            base_rows = self.baseline["rows"]
            ratio = rows / base_rows if base_rows else float("inf")
            if ratio > ratio_max or ratio < 1 / ratio_max:
                self.add(
                    split,
                    None,
                    "row_count_change",
                    f"{rows} rows against {base_rows} in the baseline (x{ratio:.2f}; allowed x{1 / ratio_max:.2f} to x{ratio_max:g})",
                    value=ratio,
                    threshold=ratio_max,
                    metric="row_count_ratio",
                )
        columns = self.schema["columns"]
        for name, spec in columns.items():
            if self.expected(name, spec) and name not in types:
                self.add(split, name, "missing_column", f"{name}: the column is missing")
        for name in types:
            if name not in columns:
                self.add(
                    split,
                    name,
                    "unexpected_column",
                    f"{name}: a column the schema does not know",
                    severity="warning",
                )
        checked = [
            n
            for n in types
            if n in columns and (self.expected(n, columns[n]) or n == self.schema.get("label"))
        ]
        self.drift[split] = {}
        for name in checked:
            spec = columns[name]
            if not _fits(spec["type"], types[name]):
                self.add(
                    split,
                    name,
                    "type_mismatch",
                    f"{name}: the values are {types[name]}, the schema says {spec['type']}",
                    value=types[name],
                    threshold=spec["type"],
                )
                continue
            self.check_column(split, name, spec, types[name], column(name), rows)

    # -- per column ----------------------------------------------------------------------
    def check_column(
        self, split: str, name: str, spec: dict[str, Any], dtype: str, series, rows: int
    ) -> None:
        import numpy as np
        import polars as pl

        present = series.len() - series.null_count()
        if rows and "min_presence" in spec and present / rows < spec["min_presence"]:
            self.add(
                split,
                name,
                "low_presence",
                f"{name}: {_pct(present / rows)} of rows have a value, the schema asks for at least {_pct(spec['min_presence'])}",
                value=present / rows,
                threshold=spec["min_presence"],
                metric="presence",
            )
        counts: dict[str, int] = {}
        if dtype in ("string", "bool"):
            vc = (
                series.drop_nulls()
                .cast(pl.String)
                .value_counts(name="__n")
                .sort(["__n", series.name], descending=[True, False])
            )
            counts = dict(zip(vc[series.name].to_list(), vc["__n"].to_list(), strict=True))
        if "domain" in spec and dtype == "string" and present:
            domain = set(spec["domain"])
            outside = [(v, c) for v, c in counts.items() if v not in domain]
            if outside:
                frac = sum(c for _, c in outside) / present
                limit = spec.get("max_out_of_domain", self.schema.get("max_out_of_domain", 0.01))
                shown = ", ".join(repr(v) for v, _ in outside[:3])
                self.add(
                    split,
                    name,
                    "out_of_domain",
                    f"{name}: {_pct(frac)} of values are not in the domain, e.g. {shown}",
                    severity="warning" if frac < limit else "error",
                    value=frac,
                    threshold=limit,
                    metric="fraction",
                    examples=[v for v, _ in outside[:EXAMPLES]],
                )
        values = None
        if dtype in ("int", "float"):
            v = series.drop_nulls().cast(pl.Float64).to_numpy()
            nan = int(np.isnan(v).sum())
            values = np.sort(v[np.isfinite(v)])
            inf = int(v.size - values.size - nan)
        if "min" in spec or "max" in spec:
            self.check_range(split, name, spec, dtype, series, present)
        if self.baseline is None or name not in self.baseline["columns"]:
            return
        base = self.baseline["columns"][name]
        is_label = name == self.schema.get("label")
        per_col = self.drift_cfg.get("columns", {}).get(name, {})
        if dtype in ("string", "bool") and base["type"] in ("string", "bool"):
            distance, where = linf(base, counts)
            self.drift[split][name] = {"linf": distance, "at": where}
            limit = (
                self.drift_cfg.get("label_linf" if is_label else "categorical_linf")
                if "linf" not in per_col
                else per_col["linf"]
            )
            if limit is not None and distance > limit:
                kind = "label_drift" if is_label else "drift"
                what = "the class balance" if is_label else "the distribution"
                self.add(
                    split,
                    name,
                    kind,
                    f"{name}: {what} moved from the baseline (L-infinity {distance:.3f} > {limit:g}, largest at {where!r}:"
                    f" {_pct(_freq(base, where))} -> {_pct(counts.get(str(where), 0) / max(1, sum(counts.values())))})",
                    value=distance,
                    threshold=limit,
                    metric="linf",
                    examples=[where],
                )
        elif values is not None and base["type"] in ("int", "float"):
            from ..validation.drift import bucket_counts, jensen_shannon, ks_statistic, psi

            missing = series.null_count() + nan + inf
            p, q = bucket_counts(base, values, missing)
            measures = {
                "jsd": jensen_shannon(p, q),
                "psi": psi(p, q),
                "ks": ks_statistic(self.baseline_sketch(name).get("summary", []), values),
            }
            self.drift[split][name] = measures
            kind = "label_drift" if is_label else "drift"
            for metric, default in (("jsd", "numeric_jsd"), ("psi", "psi"), ("ks", "ks")):
                limit = per_col.get(metric, self.drift_cfg.get(default))
                value = measures[metric]
                if limit is not None and value is not None and value > limit:
                    self.add(
                        split,
                        name,
                        kind,
                        f"{name}: the distribution moved from the baseline ({metric.upper()} {value:.3f} > {limit:g};"
                        f" mean {base['mean']:.4g} -> {float(values.mean()) if values.size else float('nan'):.4g})",
                        value=value,
                        threshold=limit,
                        metric=metric,
                    )

    def check_range(
        self, split: str, name: str, spec: dict[str, Any], dtype: str, series, present: int
    ) -> None:
        import polars as pl

        col = pl.col(series.name)
        lo, hi = spec.get("min"), spec.get("max")
        if dtype in ("date", "datetime"):
            col = col.cast(pl.String) if dtype == "date" else col.dt.to_string("%Y-%m-%dT%H:%M:%S")
        cond = pl.lit(False)
        if lo is not None:
            cond = cond | (col < lo)
        if hi is not None:
            cond = cond | (col > hi)
        frame = series.to_frame().filter(cond.fill_null(False))
        if frame.height:
            frac = frame.height / present if present else 1.0
            examples = frame.to_series().unique(maintain_order=True).head(EXAMPLES).to_list()
            shown = ", ".join(str(x) for x in examples[:3])
            self.add(
                split,
                name,
                "out_of_range",
                f"{name}: {_pct(frac)} of values are outside [{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}], e.g. {shown}",
                value=frac,
                threshold=[lo, hi],
                metric="fraction",
                examples=[x.isoformat() if hasattr(x, "isoformat") else x for x in examples],
            )

    def baseline_sketch(self, name: str) -> dict[str, Any]:
        if self.baseline is None:
            return {}
        return (self.baseline.get("sketches") or {}).get("columns", {}).get(name, {})


def _freq(base: dict[str, Any], value) -> float:
    return dict(base["values"]).get(value, 0) / base["count"] if base["count"] else 0.0


ANOMALIES = "anomalies.json"


def write_anomalies(folder: Path, doc: dict[str, Any]) -> None:
    """`anomalies.json` (mlstage-anomalies/1), checked against its schema."""
    validate(doc, "mlstage-anomalies/1", str(folder / ANOMALIES))
    (folder / ANOMALIES).write_text(dumps_pretty(doc))


def read_anomalies(folder: Path) -> dict[str, Any]:
    return json.loads((folder / ANOMALIES).read_text())
