"""The CLI through typer's CliRunner: exit codes, stdout/stderr discipline, --json, help."""

from __future__ import annotations

import json
from importlib.metadata import version

import pytest
import typer.main

from mlstage.cli import app

from ..conftest import cli, write


def _commands():
    group = typer.main.get_command(app)
    return group, sorted(group.commands)


def test_every_command_has_help_text():
    group, names = _commands()
    assert {
        "ingest",
        "log",
        "show",
        "lineage",
        "verify",
        "checkout",
        "diff",
        "gc",
        "reindex",
    } <= set(names)
    for name in names:
        cmd = group.commands[name]
        assert cmd.help and len(cmd.help.strip()) > 10, name
        for param in cmd.params:
            if param.param_type_name == "option" and param.name != "help":
                assert param.help, f"{name} {param.opts} has no help"
        result = cli(name, "--help")
        assert result.exit_code == 0 and "Usage" in result.stdout


def test_version():
    from mlstage import __version__

    r = cli("--version")
    assert r.exit_code == 0 and r.stdout == f"mlstage {__version__}\n"
    assert __version__ == version("mlstage")  # one version: the package metadata reads it


def test_ingest_json_line_then_up_to_date(tmp_path):
    write(tmp_path / "d.csv", "a,b\n1,x\n2,y\n")
    r = cli("ingest", "d.csv", "-o", "ds", "--json")
    assert r.exit_code == 0, r.stderr
    rec = json.loads(r.stdout)
    assert set(rec) >= {"kind", "id", "fingerprint", "path", "up_to_date", "exit_code", "rows"}
    assert rec["kind"] == "dataset" and rec["up_to_date"] is False and rec["rows"] == 2
    assert "wrote ds" in r.stderr
    again = cli("ingest", "d.csv", "-o", "ds", "--json")
    assert (
        json.loads(again.stdout)["up_to_date"] is True
        and json.loads(again.stdout)["id"] == rec["id"]
    )
    assert "up to date" in again.stderr


def test_quiet_prints_nothing_and_dry_run_writes_nothing(tmp_path):
    write(tmp_path / "d.csv", "a\n1\n")
    r = cli("ingest", "d.csv", "-o", "ds", "--dry-run")
    assert r.exit_code == 0 and "would run" in r.stderr and not (tmp_path / "ds").exists()
    r = cli("ingest", "d.csv", "-o", "ds", "--quiet")
    assert r.exit_code == 0 and r.stdout == "" and r.stderr == ""


@pytest.mark.parametrize(
    "args, message",
    [
        (["ingest", "nope.csv", "-o", "ds"], "error: nope.csv: no such file or directory"),
        (["ingest", "d.csv"], "error: missing option -o/--out DIR"),
        (
            ["ingest", "d.csv", "-o", "ds", "--split", "train=x", "--split", "b=1"],
            "is not a number",
        ),
        (["ingest", "d.csv", "-o", "-", "--split", "a=1", "--split", "b=1"], "give a directory"),
        (["show", "@zz"], "6 or more hex digits"),
    ],
)
def test_bad_input_is_exit_2_with_one_line_on_stderr_and_nothing_on_stdout(tmp_path, args, message):
    write(tmp_path / "d.csv", "a\n1\n")
    r = cli(*args, "--json") if args[0] == "ingest" else cli(*args)
    assert r.exit_code == 2
    assert r.stdout == ""
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "ds").exists()


def test_usage_error_is_exit_2():
    r = cli("ingest", "--no-such-option")
    assert r.exit_code == 2


def test_internal_error_is_exit_3_without_traceback(tmp_path, monkeypatch):
    import mlstage.stages.ingest as mod

    def boom(*a, **k):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(mod, "ingest", boom)
    write(tmp_path / "d.csv", "a\n1\n")
    r = cli("ingest", "d.csv", "-o", "ds")
    assert r.exit_code == 3
    assert "internal error: RuntimeError: kaboom" in r.stderr and "Traceback" not in r.stderr
    r = cli("ingest", "d.csv", "-o", "ds", "--debug")
    assert r.exit_code == 3 and "Traceback" in r.stderr


def test_log_show_lineage_verify_diff_outputs(tmp_path):
    write(tmp_path / "d.csv", "a,b\n1,x\n")
    first = json.loads(cli("ingest", "d.csv", "-o", "ds", "--json").stdout)
    write(tmp_path / "d.csv", "a,b\n1,x\n2,y\n")
    second = json.loads(cli("ingest", "d.csv", "-o", "ds", "--json").stdout)

    log = cli("log", "ds")
    lines = log.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == [second["id"][:12], first["id"][:12]]
    fields = lines[0].split("\t")
    assert fields[2] == "ingest" and fields[3] == str(tmp_path / "ds") and "rows=2" in fields[4]
    as_json = json.loads(cli("log", "ds", "--json").stdout)
    assert [w["id"] for w in as_json] == [second["id"], first["id"]]

    shown = json.loads(cli("show", "@" + first["id"][:8]).stdout)
    assert shown["id"] == first["id"] and shown["summary"]["rows"] == 1

    lineage = cli("lineage", "ds").stdout
    assert "dataset " + second["id"][:12] in lineage and "source: d.csv" in lineage

    v = cli("verify")
    assert v.exit_code == 0 and "0 problems" in v.stderr

    d = cli("diff", "@" + first["id"][:8], "ds", "--json")
    rows = {r["field"]: (r["a"], r["b"]) for r in json.loads(d.stdout)}
    assert rows["summary.rows"] == (1, 2)


def test_verify_exit_1_names_the_file(tmp_path):
    import os

    write(tmp_path / "d.csv", "a\n1\n")
    cli("ingest", "d.csv", "-o", "ds")
    target = tmp_path / "ds" / "data.parquet"
    os.chmod(target, 0o644)
    with open(target, "r+b") as f:
        f.seek(10)
        f.write(b"X")
    r = cli("verify", "ds")
    assert r.exit_code == 1 and "data.parquet" in r.stdout


def test_stdout_payload_is_an_arrow_stream(tmp_path):
    import io

    import pyarrow.ipc as ipc

    write(tmp_path / "d.csv", "a,b\n1,x\n2,y\n")
    from typer.testing import CliRunner

    from mlstage.cli import app as the_app

    r = CliRunner().invoke(the_app, ["ingest", "d.csv", "-o", "-"], catch_exceptions=False)
    assert r.exit_code == 0
    table = ipc.open_stream(io.BytesIO(r.stdout_bytes)).read_all()
    assert table.column("a").to_pylist() == [1, 2]
    assert "wrote " in r.stderr and ".mlstage/objects/" in r.stderr


def test_library_errors_name_parameters_the_way_each_caller_spells_them(tmp_path):
    """A Python caller reads `split_key`, the command line `--split-key`."""
    from mlstage import ingest
    from mlstage.errors import BadInput

    write(tmp_path / "d.csv", "a,b\n1,x\n")
    with pytest.raises(BadInput) as info:
        ingest([tmp_path / "d.csv"], "ds", split_key="a", split_order="a")
    assert str(info.value) == "split_key and split_order exclude each other"
    r = cli("ingest", "d.csv", "--split-key", "a", "--split-order", "a", "-o", "ds")
    assert (
        r.exit_code == 2 and r.stderr == "error: --split-key and --split-order exclude each other\n"
    )
    r = cli("ingest", "d.csv", "--type", "a=number", "-o", "ds")
    assert "--type a=number: unknown type" in r.stderr
