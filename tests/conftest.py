from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data"


# The layers: each folder of tests/ is a pytest marker (pyproject.toml lists them).
# `make test-fast` runs the quick ones; `make test` runs them all.
SLOW_LAYERS = {"blackbox", "serve", "loop", "browser", "matrix", "s3"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        layer = Path(str(item.path)).parent.name
        if layer != "tests":
            item.add_marker(getattr(pytest.mark, layer))
        if layer in SLOW_LAYERS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test runs in its own directory with its own store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLSTAGE_STORE", raising=False)
    monkeypatch.delenv("MLSTAGE_FAULT", raising=False)
    monkeypatch.delenv("MLSTAGE_ENGINE", raising=False)  # a cluster only where a test asks
    yield


@pytest.fixture
def adult_small(tmp_path) -> Path:
    """The first 2,000 rows of UCI Adult (missing values are '?')."""
    path = tmp_path / "adult_small.csv"
    with open(SAMPLE / "adult.csv") as src, open(path, "w") as dst:
        for i, line in enumerate(src):
            if i > 2000:
                break
            dst.write(line)
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_json(path: Path, content) -> Path:
    import json

    return write(path, json.dumps(content))


@contextmanager
def working_in(path: Path) -> Iterator[Path]:
    """chdir for a block (module-scoped fixtures build there, before the per-test chdir)."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield path
    finally:
        os.chdir(old)


def cli(*args: str, input: str | bytes | None = None):
    """Run the CLI in-process (typer's CliRunner); stdout and stderr kept apart."""
    from mlstage.cli import app

    return CliRunner().invoke(app, list(args), input=input, catch_exceptions=False)


def mlstage_exe() -> str:
    exe = shutil.which("mlstage", path=str(Path(sys.executable).parent)) or shutil.which("mlstage")
    assert exe, "the mlstage command is not installed"
    return exe


def run_mlstage(
    *args: str, cwd: Path, env: dict | None = None, input: bytes | None = None, check=None
):
    """Run the installed `mlstage` command as Make would; the up-to-date shortcut off
    (tests/blackbox/test_replay.py turns it on), so a test's later steps never depend on
    how long after a write its up-to-date run came."""
    full_env = {**os.environ, "MLSTAGE_NO_SHORTCUT": "1", **(env or {})}
    proc = subprocess.run(
        [mlstage_exe(), *args], cwd=cwd, env=full_env, input=input, capture_output=True
    )
    if check is not None:
        assert proc.returncode == check, proc.stderr.decode()
    return proc


def build_model_chain(root: Path, rows: int = 1500) -> dict[str, str]:
    """In `root` (the current directory): the first `rows` of UCI Adult ingested (`ds`),
    described (`st`, `sc`) and validated (`an`), featurized (`feat`), a tuned model `m`
    and a dummy `m2`, `ev` (m's evaluation, blessed) and `ev2` (m2's), and the registry
    `reg/income`: m2 deployed without an evaluation (version 1), then m (version 2, served).
    Returns each name's artifact id. For the model card's tests."""
    import json

    from mlstage import featurize, ingest, stats, train, validate
    from mlstage.stages.deploy import deploy
    from mlstage.stages.evaluate import evaluate
    from mlstage.stages.schema import schema
    from mlstage.store.store import Store

    with open(SAMPLE / "adult.csv") as src, open(root / "adult_small.csv", "w") as dst:
        for i, line in enumerate(src):
            if i > rows:
                break
            dst.write(line)
    ingest(["adult_small.csv"], "ds", null=["?"], split={"train": 8, "eval": 2})
    stats("ds", "st", slices=["sex"])
    schema("st", "sc", label="income")
    validate("ds", "an", schema="sc", baseline="st")
    spec = {"format": "mlstage-features/1", "label": "income", "features": [
        {"column": "age", "transform": "standardize"},
        {"column": "hours-per-week", "transform": "standardize"},
        {"column": "sex", "transform": "one_hot"},
        {"column": "race", "transform": "one_hot"}]}  # fmt: skip
    featurize("ds", "feat", spec=write_json(root / "spec.json", spec))
    base = {"format": "mlstage-train/1", "task": "classification", "seed": 0}
    tune = {"search": "random", "n_iter": 3, "cv": 3, "n_jobs": 1,
            "space": {"C": {"loguniform": [0.01, 100]}}}  # fmt: skip
    train("feat", "m", config=write_json(root / "lr.json",
                                         {**base, "estimator": "LogisticRegression", "tune": tune}))  # fmt: skip
    train("feat", "m2", config=write_json(root / "dummy.json",
                                          {**base, "estimator": "DummyClassifier"}))  # fmt: skip
    ev = {"format": "mlstage-evaluate/1", "slices": [["sex"], ["race"]], "sensitive": ["sex"],
          "thresholds": {"accuracy": {"min": 0.5, "on": "lower"},
                         "demographic_parity_difference": {"max": 0.9}}}  # fmt: skip
    evaluate("m", "ds", "ev", config=write_json(root / "ev.json", ev))
    evaluate("m2", "ds", "ev2", config=root / "ev.json")
    store = Store.open()
    deploy(store, "m2", None, root / "reg", name="income", allow_unblessed=True)
    deploy(store, "m", "ev", root / "reg", name="income")
    names = ("ds", "st", "sc", "an", "feat", "m", "m2", "ev", "ev2")
    return {n: json.loads((root / n / "manifest.json").read_text())["id"] for n in names}
