"""The statistics artifact's files: `stats.json` (what people, `schema` and `validate` read)
and `sketches.json` (the mergeable summaries `stats --merge` combines; see `compute`),
written and read here only; and the training split's statistics that `schema`,
`validate --baseline`, `monitor` and the report compare with."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..core.jsonio import dumps_pretty
from ..data.splits import splits_of, training_split
from ..errors import BadInput, opt
from ..store.refs import load_input
from ..store.store import Store


def parse_slices(slices: list[str] | list[list[str]] | None) -> list[list[str]]:
    """`--slice sex --slice race` -> sex, race and their cross; `--slice sex,race` -> the cross only."""
    specs: list[list[str]] = []
    for s in slices or []:
        cols = [c.strip() for c in s.split(",")] if isinstance(s, str) else list(s)
        if not cols or any(not c for c in cols):
            raise BadInput(
                f"{opt('slices', '--slice')} {s!r}: name one column, or several joined by ','"
            )
        if len(set(cols)) != len(cols):
            raise BadInput(f"{opt('slices', '--slice')} {s!r}: a cross names a column twice")
        if cols not in specs:
            specs.append(cols)
    singles = [s[0] for s in specs if len(s) == 1]
    if len(singles) > 1 and singles not in specs:
        specs.append(singles)
    return specs


def check_summarisable(doc: dict) -> None:
    """A column whose mean or sd overflowed (values near the largest double, whose sum or
    squares pass it) is bad input naming it, not a crash where the JSON is written."""
    for split, s in doc["splits"].items():
        for col, c in s["columns"].items():
            for key in ("mean", "std", "min", "max"):
                value = c.get(key)
                if isinstance(value, float) and not math.isfinite(value):
                    raise BadInput(
                        f"split {split}: the {key} of the finite values is {value}: values as"
                        f" large as {max(abs(c['min']), abs(c['max'])):g} overflow a double's"
                        " range; if such a value marks a missing one, pass it to ingest's"
                        " --null, else rescale the column",
                        column=col,
                    )


def write_stats(tmp: Path, doc: dict, sketches: dict) -> dict[str, Any]:
    from ..core.documents import validate

    check_summarisable(doc)
    validate(doc, "mlstage-stats/1", str(tmp / "stats.json"))
    (tmp / "stats.json").write_text(dumps_pretty(doc))
    (tmp / "sketches.json").write_text(json.dumps(sketches, separators=(",", ":")))
    first: dict[str, Any] = next(iter(doc["splits"].values()), {"columns": {}})
    return {
        "splits": {n: s["rows"] for n, s in doc["splits"].items()},
        "columns": len(first["columns"]),
        "slices": len(first.get("slices", {})),
    }


def training_stats(st: Store, ref: str, role: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The `train` split's (else the only split's) statistics and sketches, read from a
    stats artifact or computed from a dataset (what `schema` and `validate --baseline` take)."""
    path, manifest, _ = load_input(st, ref, role, ("stats", "dataset"))
    if manifest["kind"] == "stats":
        doc = read_stats(path)
        sketches = json.loads((path / "sketches.json").read_text())
        name = training_split(doc["splits"], ref)
        return doc["splits"][name], sketches["splits"][name]
    from .merge import split_stats_of
    from .partition_cache import dataset_cache

    splits = splits_of(path, manifest)
    name = training_split(splits, ref)
    cache = dataset_cache(st.root, path, manifest, [])  # shared with `stats` of the dataset
    return split_stats_of(splits[name], manifest["summary"]["schema"], [], cache=cache)


def read_stats(path: Path) -> dict[str, Any]:
    """stats.json of a stats artifact directory, checked against its schema."""
    from ..core.documents import validate

    doc = json.loads((path / "stats.json").read_text())
    validate(doc, "mlstage-stats/1", str(path / "stats.json"))
    return doc
