"""The exit-code audit: every error a user's input can cause, at every stage, is exit 2 with
a one-line cause naming the file, column or key, and writes nothing; exit 3 is left for
bugs in mlstage. One table of bad inputs, walked stage by stage through the real CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mlstage import evaluate, featurize, ingest, schema, stats, train

from ..conftest import cli, working_in, write, write_json

SPEC = {"format": "mlstage-features/1", "label": "y",
        "features": [{"column": "x", "transform": "standardize"}, {"column": "g", "transform": "one_hot"}]}  # fmt: skip
TRAIN = {
    "format": "mlstage-train/1",
    "task": "classification",
    "estimator": "LogisticRegression",
    "seed": 0,
}
EVAL = {"format": "mlstage-evaluate/1", "thresholds": {"accuracy": {"min": 0.0}}}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("exits")
    rng = np.random.default_rng(1)
    x = rng.normal(size=200)
    frame = pl.DataFrame({"x": x, "g": rng.choice(["a", "b"], 200), "y": np.where(x > 0, "p", "n")})
    with working_in(root):
        frame.write_csv("d.csv")
        ingest(["d.csv"], "data", split={"train": 7, "eval": 3})
        stats("data", "stats")
        schema("stats", "schema", label="y")
        featurize("data", "features", spec=write_json(root / "spec.json", SPEC))
        train("features", "model", config=write_json(root / "train.json", TRAIN))
        evaluate("model", "data", "evaluation", config=write_json(root / "eval.json", EVAL))
        write(root / "notjson.json", "{nope")
        write(root / "empty.csv", "")
        write(root / "ragged.csv", "a,b\n1,2\n3\n")
        write(root / "plain.txt", "hello\n")
        write_json(root / "wrongformat.json", {"format": "mlstage-nothing/1"})
        write(root / "obj.json", '{"x": 1}')
        frame.drop("x").write_csv("nox.csv")
        ingest(["nox.csv"], "nox")
    return root


def J(path: str, doc) -> str:
    """Write a JSON document beside the chain and return its name."""
    write_json(Path(path), doc)
    return path


# (stage, args builder, what the message must name). Each runs with -o OUT (when a stage writes).
CASES = [
    ("ingest", lambda: ["missing.csv"], "missing.csv"),
    ("ingest", lambda: ["empty.csv"], "empty.csv"),
    ("ingest", lambda: ["ragged.csv"], "ragged.csv: line 3"),
    ("ingest", lambda: ["d.csv", "--type", "x=number"], "x=number"),
    ("ingest", lambda: ["d.csv", "--type", "nocolumn=int"], "nocolumn"),
    ("ingest", lambda: ["d.csv", "--split", "train=-1", "--split", "eval=1"], "train"),
    (
        "ingest",
        lambda: ["d.csv", "--split-key", "nocolumn", "--split", "a=1", "--split", "b=1"],
        "nocolumn",
    ),
    ("ingest", lambda: ["d.csv", "--format", "xml"], "xml"),
    ("ingest", lambda: ["plain.txt"], "plain.txt"),
    ("ingest", lambda: ["obj.json"], "obj.json"),
    ("stats", lambda: ["nowhere"], "nowhere"),
    ("stats", lambda: ["--merge", "data", "stats"], "data"),
    ("stats", lambda: ["d.csv"], "d.csv"),
    ("stats", lambda: ["data", "--slice", "nocolumn"], "nocolumn"),
    ("stats", lambda: ["data", "--split", "nosplit"], "nosplit"),
    ("stats", lambda: ["model"], "model"),
    ("schema", lambda: ["stats", "--label", "nocolumn"], "nocolumn"),
    ("validate", lambda: ["data", "--schema", "notjson.json"], "notjson.json"),
    ("validate", lambda: ["data", "--schema", "wrongformat.json"], "wrongformat.json"),
    ("validate", lambda: ["data", "--schema", "schema", "--environment", "moon"], "moon"),
    (
        "featurize",
        lambda: ["data", "--spec", J("s1.json", {**SPEC, "label": "nocolumn"})],
        "nocolumn",
    ),
    (
        "featurize",
        lambda: [
            "data",
            "--spec",
            J("s2.json", {**SPEC, "features": [{"column": "x", "transform": "spin"}]}),
        ],
        "spin",
    ),
    (
        "featurize",
        lambda: [
            "data",
            "--spec",
            J("s3.json", {**SPEC, "features": [{"column": "g", "transform": "standardize"}]}),
        ],
        '"g"',
    ),
    (
        "featurize",
        lambda: [
            "data",
            "--spec",
            J(
                "s4.json",
                {
                    **SPEC,
                    "features": [
                        {"column": "x", "transform": "standardize", "impute": "mean", "bins": 3}
                    ],
                },
            ),
        ],
        "bins",
    ),
    ("featurize", lambda: ["data", "--spec", "notjson.json"], "notjson.json"),
    (
        "train",
        lambda: ["features", "--config", J("t1.json", {**TRAIN, "estimator": "os.system"})],
        "os.system",
    ),
    ("train", lambda: ["features", "--config", J("t2.json", {**TRAIN, "params": {"C": -1}})], "C"),
    (
        "train",
        lambda: ["features", "--config", J("t3.json", {**TRAIN, "params": {"nope": 1}})],
        "nope",
    ),
    (
        "train",
        lambda: [
            "features",
            "--config",
            J("t4.json", {**TRAIN, "task": "regression", "estimator": "Ridge"}),
        ],
        "regression",
    ),
    (
        "train",
        lambda: [
            "features",
            "--config",
            J("t5.json", {**TRAIN, "tune": {"space": {"C": {"loguniform": [0, 1]}}}}),
        ],
        "loguniform",
    ),
    (
        "train",
        lambda: [
            "features",
            "--config",
            J(
                "t6.json",
                {**TRAIN, "estimator": "KNeighborsClassifier", "params": {"n_neighbors": 999}},
            ),
        ],
        "n_neighbors",
    ),
    ("train", lambda: ["data", "--config", "train.json"], "data"),
    ("train", lambda: ["features", "--config", J("t7.json", {**TRAIN, "weight": "x"})], "weight"),
    ("featurize", lambda: ["nox", "--transform", "features"], '"x"'),
    ("validate", lambda: ["data", "--schema", "schema", "--baseline", "model"], "model"),
    (
        "evaluate",
        lambda: [
            "model",
            "data",
            "--config",
            J("e1.json", {**EVAL, "thresholds": {"mae": {"max": 1}}}),
        ],
        "mae",
    ),
    (
        "evaluate",
        lambda: ["model", "data", "--config", J("e2.json", {**EVAL, "slices": [["nocolumn"]]})],
        "nocolumn",
    ),
    (
        "evaluate",
        lambda: ["model", "data", "--config", J("e3.json", {**EVAL, "positive": "maybe"})],
        "maybe",
    ),
    (
        "evaluate",
        lambda: [
            "model",
            "data",
            "--config",
            J(
                "e4.json",
                {
                    **EVAL,
                    "slices": [["g"]],
                    "thresholds": {"accuracy": {"slices": {"g=zzz": {"min": 1}}}},
                },
            ),
        ],
        "g=zzz",
    ),
    (
        "evaluate",
        lambda: ["model", "data", "--split", "nosplit", "--config", "eval.json"],
        "nosplit",
    ),
    ("evaluate", lambda: ["data", "data", "--config", "eval.json"], "data"),
    ("predict", lambda: ["model", "data", "--keep", "nocolumn"], "nocolumn"),
    ("predict", lambda: ["model", "data", "--split", "nosplit"], "nosplit"),
    ("predict", lambda: ["model", "stats"], "stats"),
    ("predict", lambda: ["model", "nox"], '"x"'),
    ("evaluate", lambda: ["model", "nox", "--config", "eval.json"], '"x"'),
    (
        "monitor",
        lambda: ["--requests", "data", "--baseline", "stats", "--window", "fortnight"],
        "fortnight",
    ),
    ("monitor", lambda: ["--requests", "nowhere", "--baseline", "stats"], "nowhere"),
]
NO_OUTPUT = [
    ("whatif", lambda: ["model", "--row", "{nope"], "--row"),
    ("whatif", lambda: ["model", "--row", '{"x": "abc", "g": "a"}'], '"x"'),
    (
        "whatif",
        lambda: ["model", "--row", '{"x": 1, "g": "a"}', "--vary", "nocolumn=1,2"],
        "nocolumn",
    ),
    ("deploy", lambda: ["nowhere", "--evaluation", "evaluation", "--registry", "reg"], "nowhere"),
    ("deploy", lambda: ["model", "--evaluation", "data", "--registry", "reg"], "data"),
    ("show", lambda: ["@ffffffffff"], "ffffffffff"),
    ("lineage", lambda: ["nowhere"], "nowhere"),
    ("checkout", lambda: ["@ffffffffff", "-o", "co"], "ffffffffff"),
    ("report", lambda: ["nowhere", "-o", "r.html"], "nowhere"),
    ("report", lambda: ["model", "-o", "r.html"], "model"),
]


def _check(chain, stage, args, names, out: str | None):
    with working_in(chain):
        argv = [stage, *args()] + (["-o", out] if out else [])
        r = cli(*argv)
        assert r.exit_code == 2, (argv, r.exit_code, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert lines and lines[-1].startswith("error: "), r.stderr
        assert "internal error" not in r.stderr and "Traceback" not in r.stderr
        assert names in r.stderr, (names, r.stderr)
        assert r.stdout == ""
        if out:
            assert not Path(out).exists(), f"{stage} wrote {out} on bad input"


@pytest.mark.parametrize(
    "stage,args,names", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_bad_input_is_exit_2_naming_it_and_writes_nothing(chain, stage, args, names):
    _check(chain, stage, args, names, "out-bad")


@pytest.mark.parametrize(
    "stage,args,names", NO_OUTPUT, ids=[f"{c[0]}-{i}" for i, c in enumerate(NO_OUTPUT)]
)
def test_bad_input_to_commands_without_an_output(chain, stage, args, names):
    _check(chain, stage, args, names, None)


def test_every_stage_is_walked():
    from mlstage.cli import app

    walked = {c[0] for c in CASES + NO_OUTPUT}
    commands = {c.name for c in app.registered_commands}
    stages = {"ingest", "stats", "schema", "validate", "featurize", "train", "evaluate",
              "predict", "whatif", "deploy", "monitor", "report"}  # fmt: skip
    assert stages <= commands and stages <= walked, stages - walked
