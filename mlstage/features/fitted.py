"""The fitted transform (`transform.json`, mlstage-transform/1): fit, apply to a table, apply to a row.

    {"format": "mlstage-transform/1",
     "spec": {...the spec as given...},
     "inputs": {"age": "int", "workclass": "string", ...},      raw columns the features read
     "label": {"column": "income", "type": "string", "classes": ["<=50K", ">50K"]},
     "passthrough": {"id": "int"},
     "entries": [{"entry": {...}, "impute_value": 38.0, "state": {...}, "outputs": [...]}, ...],
     "outputs": ["age", "workclass=Private", ...]}

Numbers in categorical columns are matched by their canonical text (`hashing`).
Missing means null, or NaN in a float column, everywhere (`mlstage.core.missing`):
`impute` fills both. An entry without `impute` whose transform would give NaN for a
missing value, on a column that had no missing value in training, is given a fill value
anyway (`"impute_value"` with `"imputed": "unseen"`: the median of a numeric column, else
the most frequent value), so a model trained without NaN never meets one at prediction.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..core.coltypes import utc_wall_time
from ..core.engine import local_cpus
from ..core.hashing import canonical_text
from ..core.missing import missing_as_null, none_if_missing
from ..errors import BadInput
from . import names
from .base import NUMERIC
from .spec import check_spec
from .training_column import BLOCK_ROWS, HOLD_BYTES, ORDERED, Column, Needs, blocks_of
from .transforms import TRANSFORMS

FORMAT = "mlstage-transform/1"
TRANSFORM_FILE = "transform.json"  # in a features artifact, and copied into the model


def _input_columns(entry: dict) -> list[str]:
    return list(entry["columns"]) if "columns" in entry else [entry["column"]]


def _impute_value(entry: dict, col: Column, how=None):
    how = how or entry.get("impute")
    if how is None:
        return None
    if isinstance(how, dict):
        value = how["constant"]
        if col.ctype in NUMERIC and not isinstance(value, int | float):
            raise BadInput(f"impute constant {value!r} is not a number", column=entry.get("column"))
        return value
    if col.present == 0:
        raise BadInput(f"impute {how}: the training split has no value", column=entry.get("column"))
    if how in ("mean", "median"):
        if col.ctype not in NUMERIC:
            raise BadInput(
                f"impute {how} needs a numeric column; this one is {col.ctype} (use mode or a constant)",
                column=entry.get("column"),
            )
        return float(col.moments.mean if how == "mean" else col.median())
    return _mode_of_counts(col.counts(), col.name)


def _mode(present):
    """The most frequent value of a series (see `_mode_of_counts`)."""
    return _mode_of_counts(present.drop_nulls().value_counts(name="__n"), present.name)


def _mode_of_counts(counts, name: str):
    """The most frequent value of value counts (a frame: NAME, "__n"); among ties, the one
    of least canonical text. Tie-broken in polars where its order is the text's (strings,
    booleans, dates, naive datetimes; integers by their text): a column of 800,000
    distinct timestamps, all tied, took 3 s as Python objects."""
    import polars as pl

    ties = counts.filter(pl.col("__n") == pl.col("__n").max()).get_column(name)
    dtype = ties.dtype
    if ties.len() == 1:
        return ties[0]
    if dtype in (pl.String, pl.Boolean, pl.Date) or (
        isinstance(dtype, pl.Datetime) and dtype.time_zone is None
    ):
        return ties.min()
    if dtype.is_integer():
        return ties[int(ties.cast(pl.String).arg_sort()[0])]
    return min(ties.to_list(), key=lambda v: str(canonical_text(v)))


def _jsonable(value):
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _needs(entries: list[dict[str, Any]], ctype: str) -> Needs:
    """What the entries on one column need to know of it (see `training_column`)."""
    numeric = ctype in ORDERED  # a date's or datetime's unseen fill is its median
    counts = quantiles = text = False
    distinct = 0
    for entry in entries:
        t = TRANSFORMS[entry["transform"]]
        how = entry.get("impute")
        counts |= how == "mode" or t.name in ("one_hot", "ordinal")
        # a NaN-giving transform without impute may be given the median (or mode) as a fill
        # for missing values training never saw: known only once the column is read
        unseen = how is None and t.nan_on_missing(entry)
        counts |= unseen and not numeric
        quantiles |= numeric and (how == "median" or t.name == "bucketize" or unseen)
        text |= t.name in ("counts", "tfidf")
        if t.name == "bucketize":
            distinct = max(distinct, entry.get("buckets", 10))
    return Needs(counts=counts, quantiles=quantiles, tokens=text, distinct=distinct)


def _column_groups(features: list[dict[str, Any]]) -> dict[str | None, list[int]]:
    """The entries fitted together: by input column (None: those fitted without data)."""
    groups: dict[str | None, list[int]] = {}
    for i, entry in enumerate(features):
        key = None if TRANSFORMS[entry["transform"]].multi else _input_columns(entry)[0]
        groups.setdefault(key, []).append(i)
    return groups


def _fit_entry(entry: dict[str, Any], col: Column | None) -> dict[str, Any]:
    """One spec entry fitted on its column's training summary (None for a transform of
    several columns, which fits without data)."""
    t = TRANSFORMS[entry["transform"]]
    fitted: dict[str, Any]
    if t.multi or col is None:
        fitted = {"entry": entry, "impute_value": None, "state": t.fit(entry, None)}
    else:
        value = _impute_value(entry, col)
        fitted = {
            "entry": entry,
            "impute_value": _jsonable(value),
            "state": t.fit(entry, col.filled(value)),
        }
        if value is None and col.missing == 0 and col.rows and t.nan_on_missing(entry):
            if col.ctype in NUMERIC:
                fill = _impute_value(entry, col, "median")
            elif col.ctype in ORDERED:
                fill = col.temporal_median()
            else:
                fill = _impute_value(entry, col, "mode")
            fitted["impute_value"] = _jsonable(fill)
            fitted["imputed"] = "unseen"
    _check_finite(entry, fitted, col)
    out = t.outputs(entry, fitted["state"])
    if entry.get("indicator"):
        out = out + [names.indicator(_input_columns(entry)[0])]
    fitted["outputs"] = out
    return fitted


def _check_finite(entry: dict[str, Any], fitted: dict[str, Any], col: Column | None) -> None:
    """A fitted number that overflowed (the mean or sd of values near the largest double,
    whose sum or squares pass it) is bad input naming the column, not a crash where the
    transform is written as JSON."""
    found = [
        (k, v)
        for k, v in [("impute value", fitted["impute_value"]), *fitted["state"].items()]
        if isinstance(v, float) and not math.isfinite(v)
    ]
    if found:
        key, value = found[0]
        ends = [abs(v) for v in (col.low, col.high) if v is not None] if col else []
        raise BadInput(
            f"{entry['transform']}: the fitted {key} is {value}: training values"
            + (f" as large as {max(ends):g}" if ends else "")
            + " overflow a double's range; if such a value marks a missing one, pass it to"
            " ingest's --null, else rescale the column",
            column=_input_columns(entry)[0],
        )


class FittedTransform:
    def __init__(self, doc: dict[str, Any]):
        self.doc = doc
        self.inputs: dict[str, str] = doc["inputs"]
        self.label: dict[str, Any] | None = doc.get("label")
        self.passthrough: dict[str, str] = doc.get("passthrough", {})
        self.entries: list[dict[str, Any]] = doc["entries"]
        self.outputs: list[str] = doc["outputs"]
        self._row: Callable | None = None

    # -- fitting ----------------------------------------------------------------------
    @classmethod
    def fit(cls, spec: dict[str, Any], train_path, types: dict[str, str]) -> FittedTransform:
        """Fit every entry on the training split (Parquet files: its partitions) of
        columns typed `types`."""
        import polars as pl

        check_spec(spec, types)
        if pl.scan_parquet(train_path).select(pl.len()).collect().item() == 0:
            raise BadInput("the training split is empty; there is nothing to fit")
        features = spec["features"]
        columns = {c for e in features for c in _input_columns(e)}

        rows = pl.scan_parquet(train_path).select(pl.len()).collect().item()
        groups = _column_groups(features)
        needs = {c: _needs([features[i] for i in ix], types[c]) for c, ix in groups.items() if c}
        threads = local_cpus()
        # a column of more than a block is held whole (one pass for its quantiles) when the
        # columns held at once, one a thread, stay within the budget together
        held_at_once = min(threads, sum(n.quantiles for n in needs.values()))
        fits = rows * 8 * max(held_at_once, 1) <= HOLD_BYTES
        hold_rows = rows if rows > BLOCK_ROWS and fits else 0

        def fit_column(name: str | None, indices: list[int]) -> list[tuple[int, Any]]:
            """Fit the entries on one column (None: entries fitted without data), each
            result or the error it raised."""
            col = None
            done: list[tuple[int, Any]] = []
            try:
                if name is not None:
                    blocks = blocks_of(train_path, name, rows)
                    col = Column.read(name, types[name], blocks, needs[name], hold_rows)
            except Exception as e:  # raised below, at the first of these entries
                return [(i, e) for i in indices]
            for i in indices:
                try:
                    done.append((i, _fit_entry(features[i], col)))
                except Exception as e:  # raised below in the spec's order
                    done.append((i, e))
            return done

        # The entries on one column are fitted together, the columns in parallel threads
        # (polars and numpy release the GIL): memory holds a block of a column per
        # thread, not the table. Results and errors are taken in the spec's order,
        # whoever ran first.
        with ThreadPoolExecutor(max_workers=threads) as pool:
            found = dict(
                item for done in pool.map(lambda g: fit_column(*g), groups.items()) for item in done
            )
        entries, outputs = [], []
        for i in range(len(features)):
            if isinstance(found[i], Exception):
                raise found[i]
            entries.append(found[i])
            outputs += found[i]["outputs"]
        clash = [c for c in spec.get("passthrough", []) if c in outputs]
        if clash:
            raise BadInput(
                f'passthrough "{clash[0]}" has the name of a feature output; pass a copy of the'
                " column under another name"
            )
        twice = sorted({o for o in outputs if outputs.count(o) > 1})
        if twice:
            raise BadInput(f"two features write the same output column: {', '.join(twice[:5])}")
        label = None
        if spec.get("label"):
            label = {"column": spec["label"], "type": types[spec["label"]], "classes": None}
            if types[spec["label"]] in ("string", "bool"):
                seen: set[str] = set()
                for block in blocks_of(train_path, spec["label"], rows)():
                    seen.update(
                        str(canonical_text(v)) for v in block.drop_nulls().unique().to_list()
                    )
                label["classes"] = sorted(seen)
        doc = {
            "format": FORMAT,
            "spec": spec,
            "inputs": {c: types[c] for c in sorted(columns, key=list(types).index)},
            "label": label,
            "passthrough": {c: types[c] for c in spec.get("passthrough", [])},
            "entries": entries,
            "outputs": outputs,
        }
        return cls(doc)

    # -- batch --------------------------------------------------------------------------
    def check_columns(
        self, types: dict[str, str], where: str, *, need_label: bool, passthrough: bool = True
    ) -> None:
        """Every input the transform reads, with a compatible type."""
        wanted = dict(self.inputs) | (self.passthrough if passthrough else {})
        if need_label and self.label:
            wanted[self.label["column"]] = self.label["type"]
        for col, t in wanted.items():
            if col not in types:
                raise BadInput(f'no column "{col}", which the features need', file=where)
            if types[col] != t and not (t == "float" and types[col] == "int"):
                raise BadInput(
                    f"the column is {types[col]}, the transform was fitted on {t}",
                    file=where,
                    column=col,
                )

    def input_of(self, output: str) -> str:
        """The (first) input column of the entry that writes `output`."""
        entry = next(f["entry"] for f in self.entries if output in f["outputs"])
        return _input_columns(entry)[0]

    def check_values(self, lf, where: str, file: str | None = None) -> None:
        """Values a transform refuses (negative input to log), named before anything is
        written: the batch paths (featurize, predict, evaluate) refuse what the row path
        (serve, whatif) refuses, rather than writing NaN features for them."""
        import polars as pl

        from .transforms import negative

        logs = [f["entry"]["column"] for f in self.entries if f["entry"]["transform"] == "log"]
        if not logs:
            return
        first = (
            lf.select(pl.col(c).filter(pl.col(c) < 0).first().alias(c) for c in logs)
            .collect()
            .row(0, named=True)
        )
        for col, value in first.items():
            if value is not None:
                raise BadInput(str(negative(col, value, where).reason), file=file, column=col)

    def exprs(self, schema: dict[str, Any]) -> list:
        """polars expressions for every output (Float32), from raw columns typed as `schema`."""
        import polars as pl

        out = []
        for fitted in self.entries:
            entry, state = fitted["entry"], fitted["state"]
            t = TRANSFORMS[entry["transform"]]
            cols = _input_columns(entry)
            xs = []
            for c in cols:
                x = missing_as_null(c, schema.get(c))
                if fitted["impute_value"] is not None:
                    x = x.fill_null(_parse_impute(fitted["impute_value"], self.inputs[c]))
                if t.text_input:
                    x = x.cast(pl.String)
                xs.append(x)
            values = t.exprs(entry, state, xs if t.multi else xs[0])
            if entry.get("indicator"):
                values.append(
                    missing_as_null(cols[0], schema.get(cols[0])).is_null().cast(pl.Float64)
                )
            out += [
                v.cast(pl.Float32).alias(name)
                for v, name in zip(values, fitted["outputs"], strict=True)
            ]
        return out

    def label_expr(self):
        import polars as pl

        col = self.label["column"]
        if self.label["classes"] is None:
            return pl.col(col)
        mapping = {c: i for i, c in enumerate(self.label["classes"])}
        return pl.col(col).cast(pl.String).replace_strict(mapping, return_dtype=pl.Int32).alias(col)

    def apply_lazy(self, lf, *, with_label: bool, passthrough: bool = True):
        import polars as pl

        carried = [pl.col(c) for c in self.passthrough] if passthrough else []
        exprs = carried + self.exprs(lf.collect_schema())
        if with_label and self.label:
            exprs.append(self.label_expr())
        return lf.select(exprs)

    # -- one row ------------------------------------------------------------------------
    def row_function(self) -> Callable[[dict[str, Any]], list[float]]:
        """A function from a raw row {column: value} (values already of their types) to features."""
        if self._row is not None:
            return self._row
        steps = []
        for fitted in self.entries:
            entry = fitted["entry"]
            t = TRANSFORMS[entry["transform"]]
            cols = _input_columns(entry)
            fn = t.row(entry, fitted["state"])
            fill = (
                None
                if fitted["impute_value"] is None
                else _parse_impute(fitted["impute_value"], self.inputs[cols[0]])
            )
            steps.append((t.multi, cols, fn, fill, bool(entry.get("indicator"))))

        def apply(row: dict[str, Any]) -> list[float]:
            out: list[float] = []
            for multi, cols, fn, fill, indicator in steps:
                if multi:
                    out += fn([none_if_missing(row.get(c)) for c in cols])
                    continue
                v = none_if_missing(row.get(cols[0]))
                out += fn(fill if v is None and fill is not None else v)
                if indicator:
                    out.append(1.0 if v is None else 0.0)
            return out

        self._row = apply
        return apply


def _parse_impute(value, ctype: str):
    if ctype == "date" and isinstance(value, str):
        return dt.date.fromisoformat(value)
    if ctype == "datetime" and isinstance(value, str):
        return utc_wall_time(value)  # an aware fill (an older dataset's) too
    return value


def read_transform_doc(folder: Path) -> dict[str, Any]:
    """`transform.json` of a features or model artifact."""
    import json

    return json.loads((folder / TRANSFORM_FILE).read_text())


def write_transform_doc(folder: Path, doc: dict[str, Any]) -> None:
    from ..core.jsonio import dumps_pretty

    (folder / TRANSFORM_FILE).write_text(dumps_pretty(doc))
