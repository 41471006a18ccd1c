"""Progress on long work: what stages report (a recorder stands in for rich's bars), and
that the CLI shows it only on a terminal and never under --quiet."""

from __future__ import annotations

import io
import sys

import polars as pl

from mlstage import featurize, ingest, predict, stats, train
from mlstage.core import progress

from ..conftest import cli, write_json


class Recorder:
    def __init__(self):
        self.tasks: dict[int, dict] = {}

    def add_task(self, description, total=None):
        self.tasks[len(self.tasks)] = {"description": description, "total": total, "done": 0,
                                       "open": True}  # fmt: skip
        return len(self.tasks) - 1

    def advance(self, task_id, n):
        self.tasks[task_id]["done"] += n

    def remove_task(self, task_id):
        self.tasks[task_id]["open"] = False


def test_stages_report_their_steps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    n = 2_500
    pl.DataFrame(
        {"x": [float(i % 97) for i in range(n)], "y": [i % 3 == 0 for i in range(n)]}
    ).write_csv("t.csv")
    rec = Recorder()
    monkeypatch.setattr(progress, "_progress", rec)
    ingest(["t.csv"], "ds", partition_rows=1_000)
    stats("ds", "st")
    spec = {"format": "mlstage-features/1", "label": "y",
            "features": [{"column": "x", "transform": "standardize"}]}  # fmt: skip
    featurize("ds", "f", spec=write_json(tmp_path / "s.json", spec))
    cfg = {"format": "mlstage-train/1", "task": "classification", "estimator": "LogisticRegression",
           "seed": 0, "tune": {"search": "grid", "cv": 2, "space": {"C": [0.1, 1.0]}}}  # fmt: skip
    train("f", "m", config=write_json(tmp_path / "c.json", cfg))
    predict("m", "ds", "p")
    seen = {t["description"]: t for t in rec.tasks.values()}
    assert all(not t["open"] for t in rec.tasks.values())  # every task ended
    ingested = next(t for d, t in seen.items() if d.startswith("ingest: 1 source(s)"))
    assert ingested["total"] is None  # polars converts in one call: a spinner
    split = next(t for d, t in seen.items() if d.startswith("stats: split "))
    assert split["total"] == split["done"] == 3  # 2,500 rows in 1,000-row partitions
    assert seen["train: grid search, 2-fold"]["total"] is None
    assert seen["predict: rows"]["total"] == seen["predict: rows"]["done"] == n


def test_progress_is_silent_off_a_terminal_and_under_quiet(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pl.DataFrame({"x": [1, 2, 3]}).write_csv("t.csv")
    shown = []
    real = progress.shown_on_stderr

    def spy(enabled):
        shown.append(enabled)
        return real(False)

    monkeypatch.setattr(progress, "shown_on_stderr", spy)
    assert cli("ingest", "t.csv", "-o", "a").exit_code == 0  # CliRunner: not a terminal

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    from typer.main import get_command

    from mlstage.cli.commands import app  # noqa: F401  (registers the commands)

    command = get_command(__import__("mlstage.cli", fromlist=["app"]).app)
    for args in (["ingest", "t.csv", "-o", "b"], ["ingest", "t.csv", "-o", "c", "--quiet"]):
        try:
            command.main(args, standalone_mode=False)
        except SystemExit:
            pass
    assert shown == [False, True, False]
