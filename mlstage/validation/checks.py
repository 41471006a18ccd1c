"""Checking data against a schema and a baseline: the anomalies of `anomalies.json`
(mlstage-anomalies/1) and the drift measures, one `Checker` for `validate` and `monitor`."""

from __future__ import annotations

import functools
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..core.documents import validate
from ..core.jsonio import dumps_pretty, jsonable
from .column_scan import Scanned, column_sources, merge_scanned, scan_on_worker
from .compute import LOW_CARDINALITY
from .drift import DEFAULT_SIGNIFICANCE, chi2_p_value, linf, warm_up_tests
from .held import held
from .ranges import EXAMPLES, out_of_range

ENVIRONMENTS = ("training", "serving")


def _pct(x: float) -> str:
    """A share for messages: whole percents, finer when that would round to 0% or 100%."""
    return f"{x:.0%}" if 0.01 <= x <= 0.99 or x in (0, 1) else f"{x:.2%}"


def _same(a, b) -> bool:
    """Equal, NaN to NaN included (examples are listed once)."""
    return a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)


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
        **test,
    ) -> None:
        """One anomaly; `test` adds a significance test's fields (test, p_value, n,
        n_baseline, significance) to a drift anomaly."""
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
                    **test,
                }
            )
        )

    def expected(self, name: str, spec: dict[str, Any]) -> bool:
        return self.env in spec.get("environments", ENVIRONMENTS)

    # -- per split ---------------------------------------------------------------------
    def check_split(
        self, split: str, source, types: dict[str, str], *, row_counts: bool = True, engine=None
    ) -> None:
        """Check one split: Parquet files (a split's partitions, read a column at a time)
        or a polars DataFrame.

        `row_counts=False` skips too_few_rows and row_count_change: `monitor` checks
        serving traffic, whose volume says nothing about the data's health. A cluster
        `engine` (`core.engine`) scans the columns on its workers (below).
        """
        import polars as pl

        # A small partition is read once, whole: a column at a time, each read parsed the
        # file's footer again, whose size grows with the columns (3,000 columns: 9 s)
        parts = [source] if isinstance(source, pl.DataFrame) else list(source)
        if engine is None or engine.local:  # a cluster's workers read the parts by path
            parts = held(parts)

        def column(name: str):
            """The column, one partition at a time."""
            for part in parts:
                if isinstance(part, pl.DataFrame):
                    yield part.get_column(name)
                else:
                    yield pl.read_parquet(part, columns=[name]).to_series()

        if isinstance(source, pl.DataFrame):
            rows = source.height
        else:
            rows = pl.scan_parquet(list(source)).select(pl.len()).collect().item()
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
        # the significance level is for the split as a whole (Bonferroni over the columns
        # compared): 15 columns tested at 1% each would call noise drift in 1 run of 7
        base_cols = (self.baseline or {}).get("columns", {})
        self._family = max(1, sum(1 for n in checked if n in base_cols))
        fitting = [n for n in checked if _fits(columns[n]["type"], types[n])]
        if self.baseline is not None:
            warm_up_tests()
        # Columns are read and scanned in parallel threads (polars and numpy release the
        # GIL), as `stats` does; anomalies are then added in column order, as before.
        # On a cluster `engine`, a task per column and partition (read by path; a frame's
        # column is sent), the partitions' scans merged in order: the same to the last bit.
        if engine is not None and not engine.local:
            jobs = [(n, columns[n], types[n], s) for n in fitting for s in column_sources(parts, n)]
            found = engine.map(functools.partial(scan_on_worker, self), jobs)
            per = len(parts)
            scans = {
                n: merge_scanned(found[i * per : (i + 1) * per]) for i, n in enumerate(fitting)
            }
        else:
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
                scan = lambda n: self.scan_column(n, columns[n], types[n], column(n))  # noqa: E731
                scans = dict(zip(fitting, pool.map(scan, fitting), strict=True))
        for name in checked:
            spec = columns[name]
            if name not in scans:
                self.add(
                    split,
                    name,
                    "type_mismatch",
                    f"{name}: the values are {types[name]}, the schema says {spec['type']}",
                    value=types[name],
                    threshold=spec["type"],
                )
                continue
            self.judge_column(split, name, spec, types[name], scans[name], rows)

    # -- per column ----------------------------------------------------------------------
    def scan_column(self, name: str, spec: dict[str, Any], dtype: str, chunks) -> Scanned:
        """One column read a partition at a time (`chunks`) into a ColumnScan, and its
        values outside the schema's range: memory holds one partition's column. Adds
        no anomaly (it runs in a worker thread)."""
        from .column_scan import MAX_INT_VALUES, ColumnScan

        base = (self.baseline or {}).get("columns", {}).get(name)
        drift_base, summary = None, []
        if base is not None and dtype in ("int", "float") and base["type"] in ("int", "float"):
            drift_base, summary = base, self.baseline_sketch(name).get("summary", [])
        elif base is not None and dtype in ("date", "datetime") and "epoch" in base:
            drift_base = base["epoch"]
            summary = self.baseline_sketch(name).get("epoch", {}).get("summary", [])
        is_label = name == self.schema.get("label")
        categorical = base is not None and base["type"] in ("string", "bool")
        scan = ColumnScan(
            dtype, drift_base, summary,
            track_ints=dtype == "int" and base is not None and "values" in base,
            int_cap=None if is_label else MAX_INT_VALUES,  # a label is compared by its classes
            count_values=("domain" in spec and dtype == "string") or categorical,
        )  # fmt: skip
        ranged = "min" in spec or "max" in spec
        outside, examples = 0, list[Any]()
        for series in chunks:
            scan.add(series)
            if ranged:
                n, found = out_of_range(spec, dtype, series, name)
                outside += n
                new = [x for x in found if not any(_same(x, e) for e in examples)]
                examples += new[: EXAMPLES - len(examples)]
        return Scanned(scan, outside, examples, base, drift_base, is_label)

    def judge_column(
        self, split: str, name: str, spec: dict[str, Any], dtype: str, scanned: Scanned, rows: int
    ) -> None:
        """The anomalies and drift measures of one scanned column."""
        scan, outside, examples = scanned.scan, scanned.outside, scanned.examples
        base, drift_base, is_label = scanned.base, scanned.drift_base, scanned.is_label
        present = scan.present
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
        counts = scan.value_counts()
        if "domain" in spec and dtype == "string" and present:
            domain = set(spec["domain"])
            out_values = [(v, c) for v, c in counts.items() if v not in domain]
            if out_values:
                frac = sum(c for _, c in out_values) / present
                limit = spec.get("max_out_of_domain", self.schema.get("max_out_of_domain", 0.01))
                shown = ", ".join(repr(v) for v, _ in out_values[:3])
                self.add(
                    split,
                    name,
                    "out_of_domain",
                    f"{name}: {_pct(frac)} of values are not in the domain, e.g. {shown}",
                    severity="warning" if frac < limit else "error",
                    value=frac,
                    threshold=limit,
                    metric="fraction",
                    examples=[v for v, _ in out_values[:EXAMPLES]],
                )
        if outside:
            lo, hi = spec.get("min"), spec.get("max")
            frac = outside / present if present else 1.0
            self.add(
                split,
                name,
                "out_of_range",
                f"{name}: {_pct(frac)} of values are outside [{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}], e.g. {', '.join(str(x) for x in examples[:3])}",
                value=frac,
                threshold=[lo, hi],
                metric="fraction",
                examples=[x.isoformat() if hasattr(x, "isoformat") else x for x in examples],
            )
        if base is None or scan.rows == 0:  # nothing to compare: too_few_rows says so
            return
        if scan.int_counts is not None and (is_label or len(scan.int_counts) <= LOW_CARDINALITY):
            # a 0/1 label or a rating: compared by its mix of values, as a category is
            ints = {str(v): c for v, c in sorted(scan.int_counts.items())}
            self.categorical_drift(split, name, base, ints, is_label)
        elif dtype in ("string", "bool") and base["type"] in ("string", "bool"):
            self.categorical_drift(split, name, base, counts, is_label)
        elif drift_base is not None:
            sketch = self.baseline_sketch(name)
            if dtype in ("date", "datetime"):
                sketch = sketch.get("epoch", {})
            unit = "date" if dtype in ("date", "datetime") else None
            self.numeric_drift(split, name, drift_base, sketch, scan, is_label, unit=unit)

    def _alpha(self, name: str) -> float:
        """The level one column's test must reach: the schema's family-wise level over
        the columns compared in this split (a column's own level is taken as given)."""
        per_col = self.drift_cfg.get("columns", {}).get(name, {})
        if "significance" in per_col:
            return per_col["significance"]
        family = self.drift_cfg.get("significance", DEFAULT_SIGNIFICANCE)
        return family / getattr(self, "_family", 1)

    def categorical_drift(self, split, name, base, counts, is_label) -> None:
        """L-infinity between value mixes, reported when it passes its threshold and a
        chi-squared test says the difference is more than sampling noise."""
        per_col = self.drift_cfg.get("columns", {}).get(name, {})
        distance, where = linf(base, counts)
        p = chi2_p_value(base, counts)
        n = sum(counts.values())
        self.drift[split][name] = {"linf": distance, "at": where, "test": "chi2", "p_value": p,
                                   "n": n, "n_baseline": base["count"],
                                   "significance": self._alpha(name), "drifted": False}  # fmt: skip
        limit = (
            self.drift_cfg.get("label_linf" if is_label else "categorical_linf")
            if "linf" not in per_col
            else per_col["linf"]
        )
        alpha = self._alpha(name)
        if limit is not None and distance > limit and (p is None or p < alpha):
            self.drift[split][name]["drifted"] = True
            kind = "label_drift" if is_label else "drift"
            what = "the class balance" if is_label else "the distribution"
            self.add(
                split,
                name,
                kind,
                f"{name}: {what} moved from the baseline (L-infinity {distance:.3f} > {limit:g}, largest at {where!r}:"
                f" {_pct(_freq(base, where))} -> {_pct(counts.get(str(where), 0) / max(1, n))};"
                f" chi-squared p {_p(p)} < {alpha:g})",
                value=distance,
                threshold=limit,
                metric="linf",
                examples=[where],
                test="chi2", p_value=p, n=n, n_baseline=base["count"], significance=alpha,
            )  # fmt: skip

    def numeric_drift(self, split, name, base, sketch, scan, is_label, unit=None) -> None:
        """Two rules, either of which reports drift: the shape (JSD, and PSI/KS when the
        schema sets them, on the baseline's quantile buckets) past its threshold with a
        Kolmogorov-Smirnov test rejecting, or the mean (SMD) past its threshold with
        Welch's t-test rejecting. The column's level is shared by its two tests."""
        from .drift import jensen_shannon, ks_p_value, mean_shift, psi

        per_col = self.drift_cfg.get("columns", {}).get(name, {})
        p_counts, q_counts = scan.bucket_counts()
        ks = scan.ks()
        n_base = int(sketch.get("n") or base.get("count") or 0)
        p = ks_p_value(ks, scan.n, n_base)
        smd, p_mean = mean_shift(base, n_base, scan.n, scan.mean, scan.variance)
        smd_limit = per_col.get("smd", self.drift_cfg.get("numeric_smd"))
        # Bonferroni within the column when both tests run; without a mean threshold (a
        # schema written before it existed) or a mean test (too few rows), KS has it all
        mean_rule = smd_limit is not None and p_mean is not None
        alpha = self._alpha(name) / (2 if mean_rule else 1)
        measures = {"jsd": jensen_shannon(p_counts, q_counts), "psi": psi(p_counts, q_counts), "ks": ks,
                    "test": "ks", "p_value": p, "smd": smd, "mean_test": "welch", "mean_p_value": p_mean,
                    "n": scan.n, "n_baseline": n_base, "significance": alpha,
                    "drifted": False}  # fmt: skip
        self.drift[split][name] = measures
        kind = "label_drift" if is_label else "drift"

        def moved() -> str:
            """What moved, for the message: the mean (a date for dates)."""
            import datetime as dt

            def show(x) -> str:
                if x is None:
                    return "no finite value"
                if unit == "date":
                    try:
                        return dt.datetime.fromtimestamp(x, dt.UTC).strftime("%Y-%m-%d")
                    except (ValueError, OverflowError, OSError):  # past year 9999
                        return f"{x:.4g} s since 1970"
                return f"{x:.4g}"

            return f"mean {show(base.get('mean'))} -> {show(scan.mean if scan.n else None)}"

        rules = [(m, per_col.get(m, self.drift_cfg.get(key)), "ks", p)
                 for m, key in (("jsd", "numeric_jsd"), ("psi", "psi"), ("ks", "ks"))]  # fmt: skip
        if mean_rule:
            rules.append(("smd", smd_limit, "welch", p_mean))
        for metric, limit, test, p_value in rules:
            value = measures[metric]
            if limit is None or value is None or value <= limit:
                continue
            if p_value is not None and p_value >= alpha:
                continue
            what = (
                f"the mean moved by {value:.3f} baseline standard deviations (> {limit:g}; {moved()};"
                f" Welch's t-test p {_p(p_value)} < {alpha:g})"
                if metric == "smd"
                else f"the distribution moved from the baseline ({metric.upper()} {value:.3f} > {limit:g};"
                f" {moved()}; {_ks(p_value, alpha)})"
            )
            measures["drifted"] = True
            self.add(
                split,
                name,
                kind,
                f"{name}: {what}",
                value=value,
                threshold=limit,
                metric=metric,
                test=test, p_value=p_value, n=scan.n, n_baseline=n_base, significance=alpha,
            )  # fmt: skip

    def baseline_sketch(self, name: str) -> dict[str, Any]:
        if self.baseline is None:
            return {}
        return (self.baseline.get("sketches") or {}).get("columns", {}).get(name, {})


def _ks(p: float | None, alpha: float) -> str:
    if p is None:
        return "no Kolmogorov-Smirnov test: no finite value on one side"
    return f"Kolmogorov-Smirnov p {_p(p)} < {alpha:g}"


def _p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.2g}"


def _freq(base: dict[str, Any], value) -> float:
    return dict(base["values"]).get(value, 0) / base["count"] if base["count"] else 0.0


ANOMALIES = "anomalies.json"


def write_anomalies(folder: Path, doc: dict[str, Any]) -> None:
    """`anomalies.json` (mlstage-anomalies/1), checked against its schema."""
    validate(doc, "mlstage-anomalies/1", str(folder / ANOMALIES))
    (folder / ANOMALIES).write_text(dumps_pretty(doc))


def read_anomalies(folder: Path) -> dict[str, Any]:
    return json.loads((folder / ANOMALIES).read_text())
