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
SLOW_LAYERS = {"blackbox", "serve", "loop", "browser", "matrix"}


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
