"""The JSON Schemas' two validators agree: jsonschema-rs decides whether a document is
valid (fast), jsonschema words the problem of one that is not. A document the fast one
accepted and jsonschema would refuse would pass unchecked: every real document of a
pipeline, and many mutations of each, get the same verdict from both."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import jsonschema_rs
import pytest

from mlstage import featurize, ingest, stats, train, validate
from mlstage.core.documents import SCHEMA_FILES, _fast, _validator
from mlstage.core.documents import validate as check
from mlstage.errors import BadInput
from mlstage.stages.evaluate import evaluate
from mlstage.stages.schema import schema

from ..conftest import SAMPLE, write_json

ODD_VALUES = [
    None,
    "x",
    "",
    -1,
    0,
    1.5,
    -0.5,
    2**70,
    math.nan,
    math.inf,
    True,
    [],
    {},
    [1],
    {"a": 1},
]


def _documents(root: Path) -> list[dict]:
    with open(SAMPLE / "adult.csv") as src, open(root / "a.csv", "w") as dst:
        dst.writelines(line for i, line in enumerate(src) if i <= 600)
    ingest(["a.csv"], "ds", null=["?"], split={"train": 8, "eval": 2})
    stats("ds", "st", slices=["sex"])
    schema("st", "sc", label="income", infer_ranges=True)
    validate("ds", "an", schema="sc", baseline="st")
    spec = write_json(root / "spec.json", {"format": "mlstage-features/1", "label": "income",
        "features": [{"column": "age", "transform": "bucketize", "buckets": 4},
                     {"column": "sex", "transform": "one_hot", "impute": "mode"}]})  # fmt: skip
    featurize("ds", "feat", spec=spec)
    cfg = write_json(root / "t.json", {"format": "mlstage-train/1", "task": "classification",
        "seed": 0, "estimator": "LogisticRegression",
        "tune": {"search": "grid", "cv": 2, "space": {"C": [0.1, 1.0]}}})  # fmt: skip
    train("feat", "m", config=cfg)
    ev = write_json(root / "e.json", {"format": "mlstage-evaluate/1", "slices": [["sex"]],
        "sensitive": ["sex"], "positive": ">50K",
        "thresholds": {"accuracy": {"min": 0.5, "slices": {"sex=Male": {"min": 0.1}}}}})  # fmt: skip
    evaluate("m", "ds", "ev", config=ev)
    docs = []
    for f in sorted(root.rglob("*.json")):
        try:
            doc = json.loads(f.read_text())
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("format") in SCHEMA_FILES:
            docs.append(doc)
    return docs


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node[:3]):
            yield from _paths(v, (*prefix, i))


def _mutations(doc, most: int = 24):
    paths = list(_paths(doc))[1:]
    for path in paths[:: max(1, len(paths) // most)]:  # spread over the document
        if path == ("format",):
            continue
        for value in ODD_VALUES:
            changed = copy.deepcopy(doc)
            parent = changed
            for p in path[:-1]:
                parent = parent[p]
            parent[path[-1]] = value
            yield changed
        if isinstance(path[-1], str):
            dropped = copy.deepcopy(doc)
            parent = dropped
            for p in path[:-1]:
                parent = parent[p]
            del parent[path[-1]]
            yield dropped
            extra = copy.deepcopy(doc)
            parent = extra
            for p in path[:-1]:
                parent = parent[p]
            if isinstance(parent, dict):
                parent["zz_unknown"] = 1
                yield extra


def _fast_verdict(doc, fmt) -> bool | None:
    try:
        return _fast(fmt).is_valid(doc)
    except (ValueError, TypeError, OverflowError):
        return None  # undecided: the document is checked by jsonschema


def test_both_validators_give_every_document_and_its_mutations_one_verdict(tmp_path):
    docs = _documents(tmp_path)
    assert {d["format"] for d in docs} >= {
        "mlstage-artifact/1", "mlstage-stats/1", "mlstage-schema/1", "mlstage-anomalies/1",
        "mlstage-features/1", "mlstage-train/1", "mlstage-evaluate/1",
    }  # fmt: skip
    checked = refused = 0
    for doc in docs:
        fmt = doc["format"]
        assert _fast(fmt).is_valid(doc) and not list(_validator(fmt).iter_errors(doc))
        for i, changed in enumerate(_mutations(doc)):
            slow = _validator(fmt).is_valid(changed)
            # the fast verdict is final only when it accepts: it must never accept what
            # jsonschema refuses (it refuses NaN, which jsonschema takes for a number,
            # and then jsonschema decides, as before)
            assert not (_fast_verdict(changed, fmt) and not slow), (
                fmt, json.dumps(changed, default=str)[:300])  # fmt: skip
            if i % 7 == 0:  # and mlstage's own check agrees (it words the refusals)
                try:
                    check(changed, fmt, "doc.json")
                    assert slow
                except BadInput:
                    assert not slow
            checked += 1
            refused += not slow
    assert checked > 2_000 and refused > 700  # the mutations did break documents


def test_an_invalid_document_is_named_in_jsonschemas_words(tmp_path):
    doc = {"format": "mlstage-features/1", "label": "y",
           "features": [{"column": "x", "transform": "clip", "min": "low", "max": 1}]}  # fmt: skip
    assert not _fast("mlstage-features/1").is_valid(doc)
    with pytest.raises(BadInput, match=r"at \$\.features\[0\]\.min"):
        check(doc, "mlstage-features/1", "spec.json")
    with pytest.raises(jsonschema_rs.ValidationError):
        _fast("mlstage-features/1").validate(doc)
