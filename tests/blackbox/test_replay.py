"""The up-to-date shortcut (`core.replay`), with the real command as Make runs it: an
up-to-date stage answered from its record prints and exits exactly as the full run
does, and any change to what it read sends the command down the full path."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from ..conftest import mlstage_exe, write
from ..conftest import run_mlstage as run_without_shortcut

RACY_WAIT = 1.1  # files younger than a second are never recorded (core.replay.RACY_NS)
ON = {"MLSTAGE_NO_SHORTCUT": ""}  # run_mlstage turns the shortcut off; these tests test it


def run_mlstage(*args: str, cwd: Path, env: dict | None = None, check=None):
    return run_without_shortcut(*args, cwd=cwd, env={**ON, **(env or {})}, check=check)


def _answered(*args: str, cwd: Path, env: dict | None = None) -> tuple[bool, int]:
    """Run the command in a fresh process; whether it was answered before typer loaded."""
    code = (
        "import sys\n"
        f"sys.argv = ['mlstage', *{list(args)!r}]\n"
        "from mlstage.cli import main\n"
        "try:\n    main()\n    code = 0\nexcept SystemExit as e:\n    code = e.code\n"
        "print('ANSWERED' if 'typer' not in sys.modules else 'RAN', code, file=sys.__stderr__)\n"
    )
    python = str(Path(mlstage_exe()).parent / "python")
    proc = subprocess.run(
        [python, "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **ON, **(env or {})},
    )
    how, exit_code = proc.stderr.strip().splitlines()[-1].split()
    return how == "ANSWERED", int(exit_code)


def _records(cwd: Path) -> list[Path]:
    return sorted((cwd / ".mlstage" / "cache" / "replay").glob("*.json"))


def _dataset(cwd: Path) -> None:
    write(cwd / "a.csv", "x,y,c\n" + "".join(f"{i},{i % 7}.5,{'abc'[i % 3]}\n" for i in range(60)))
    run_mlstage("ingest", "a.csv", "-o", "ds", cwd=cwd, check=0)
    run_mlstage("stats", "ds", "-o", "st", cwd=cwd, check=0)


def test_an_up_to_date_run_is_answered_with_the_full_runs_output_and_exit(tmp_path):
    _dataset(tmp_path)
    time.sleep(RACY_WAIT)
    full = run_mlstage("stats", "ds", "-o", "st", "--json", cwd=tmp_path, check=0)
    assert json.loads(full.stdout)["up_to_date"] is True
    assert len(_records(tmp_path)) == 1
    again = run_mlstage("stats", "ds", "-o", "st", "--json", cwd=tmp_path, check=0)
    assert (again.stdout, again.stderr) == (full.stdout, full.stderr)
    assert _answered("stats", "ds", "-o", "st", "--json", cwd=tmp_path) == (True, 0)
    # another command line, variable or flag is another question
    assert _answered("stats", "ds", "-o", "st", cwd=tmp_path)[0] is False
    assert (
        _answered("stats", "ds", "-o", "st", "--json", cwd=tmp_path, env={"MLSTAGE_X": "1"})[0]
        is False
    )
    assert _answered("stats", "ds", "-o", "st", "--json", "--force", cwd=tmp_path)[0] is False
    assert _answered("stats", "ds", "-o", "st", "--json", "--dry-run", cwd=tmp_path)[0] is False


def test_a_run_right_after_a_write_is_not_recorded(tmp_path):
    # A file changed within the clock tick of the record could change again unseen. The
    # payload's time is set ahead of the record's, so a slow machine (a run taking more
    # than the tick after the write) still sees a racy file.
    _dataset(tmp_path)
    payload = next((tmp_path / "ds").glob("*.parquet"))
    ahead = time.time_ns() + 60 * 10**9
    os.utime(payload, ns=(ahead, ahead))
    run_mlstage("stats", "ds", "-o", "st", cwd=tmp_path, check=0)
    assert _records(tmp_path) == []
    # the same run once the file is older than the tick is recorded
    os.utime(payload, ns=(time.time_ns() - 5 * 10**9,) * 2)
    time.sleep(RACY_WAIT)
    run_mlstage("stats", "ds", "-o", "st", cwd=tmp_path, check=0)
    assert len(_records(tmp_path)) == 1


def test_a_payload_rewritten_with_its_size_and_mtime_kept_is_seen(tmp_path):
    _dataset(tmp_path)
    time.sleep(RACY_WAIT)
    run_mlstage("stats", "ds", "-o", "st", cwd=tmp_path, check=0)
    assert _answered("stats", "ds", "-o", "st", cwd=tmp_path) == (True, 0)
    payload = tmp_path / "ds" / "data.parquet"
    st = payload.stat()
    data = bytearray(payload.read_bytes())
    data[len(data) // 2] ^= 0xFF
    payload.write_bytes(bytes(data))
    os.utime(payload, ns=(st.st_atime_ns, st.st_mtime_ns))
    answered, code = _answered("stats", "ds", "-o", "st", cwd=tmp_path)
    assert (answered, code) == (False, 2)  # the full path refuses the changed input


def test_a_changed_spec_named_on_the_command_line_reruns(tmp_path):
    _dataset(tmp_path)
    spec = tmp_path / "spec.json"
    write(
        spec,
        json.dumps(
            {
                "format": "mlstage-features/1",
                "features": [{"column": "x", "transform": "standardize"}],
            }
        ),
    )
    run_mlstage("featurize", "ds", "--spec", "spec.json", "-o", "ft", cwd=tmp_path, check=0)
    time.sleep(RACY_WAIT)
    run_mlstage("featurize", "ds", "--spec", "spec.json", "-o", "ft", cwd=tmp_path, check=0)
    assert _answered("featurize", "ds", "--spec", "spec.json", "-o", "ft", cwd=tmp_path)[0]
    write(
        spec,
        json.dumps(
            {"format": "mlstage-features/1", "features": [{"column": "x", "transform": "minmax"}]}
        ),
    )
    proc = run_mlstage(
        "featurize", "ds", "--spec", "spec.json", "-o", "ft", "--json", cwd=tmp_path, check=0
    )
    assert json.loads(proc.stdout)["up_to_date"] is False


def test_a_new_file_matching_a_glob_is_ingested(tmp_path):
    (tmp_path / "in").mkdir()
    write(tmp_path / "in" / "a.csv", "x\n1\n2\n")
    run_mlstage("ingest", "in/*.csv", "-o", "ds", cwd=tmp_path, check=0)
    time.sleep(RACY_WAIT)
    run_mlstage("ingest", "in/*.csv", "-o", "ds", cwd=tmp_path, check=0)
    assert _answered("ingest", "in/*.csv", "-o", "ds", cwd=tmp_path)[0]
    write(tmp_path / "in" / "b.csv", "x\n3\n")
    proc = run_mlstage("ingest", "in/*.csv", "-o", "ds", "--json", cwd=tmp_path, check=0)
    record = json.loads(proc.stdout)
    assert record["up_to_date"] is False and record["rows"] == 3


def test_a_failed_gate_is_answered_with_its_exit_code(tmp_path):
    _dataset(tmp_path)
    run_mlstage("schema", "st", "-o", "sc", cwd=tmp_path, check=0)
    write(tmp_path / "b.csv", "x,y,c\n1,0.5,zzz\n2,1.5,zzz\n")
    run_mlstage("ingest", "b.csv", "-o", "new", cwd=tmp_path, check=0)
    args = ("validate", "new", "--schema", "sc", "-o", "an")
    run_mlstage(*args, cwd=tmp_path, check=1)
    time.sleep(RACY_WAIT)
    full = run_mlstage(*args, cwd=tmp_path, check=1)
    assert _answered(*args, cwd=tmp_path) == (True, 1)
    again = run_mlstage(*args, cwd=tmp_path, check=1)
    assert (again.stdout, again.stderr) == (full.stdout, full.stderr)


def test_gc_clears_the_records(tmp_path):
    _dataset(tmp_path)
    time.sleep(RACY_WAIT)
    run_mlstage("stats", "ds", "-o", "st", cwd=tmp_path, check=0)
    assert _records(tmp_path)
    stray = tmp_path / ".mlstage" / "cache" / "replay" / "not-a-record"
    stray.mkdir()  # gc removes records, files; a folder there is left, and no crash
    run_mlstage("gc", cwd=tmp_path, check=0)
    assert _records(tmp_path) == [] and stray.is_dir()


def test_the_two_streams_are_replayed_in_their_order(tmp_path):
    # `make > log 2>&1`: the table (stderr), the JSON line (stdout), then the status line
    _dataset(tmp_path)
    time.sleep(RACY_WAIT)
    args = [mlstage_exe(), "stats", "ds", "-o", "st", "--json"]
    env = {**os.environ, **ON}

    def merged() -> bytes:
        return subprocess.run(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, check=True).stdout  # fmt: skip

    full = merged()
    assert _answered("stats", "ds", "-o", "st", "--json", cwd=tmp_path)[0]
    assert merged() == full


def test_a_link_pointed_elsewhere_is_seen(tmp_path):
    # in.csv -> current/a.csv, current -> release-1: repointing `current` leaves the link
    # and release-1's files as they were; what ingest reads is another file
    for release, rows in (("release-1", 2), ("release-2", 3)):
        (tmp_path / release).mkdir()
        write(tmp_path / release / "a.csv", "x\n" + "".join(f"{i}\n" for i in range(rows)))
    (tmp_path / "current").symlink_to("release-1")
    (tmp_path / "in.csv").symlink_to("current/a.csv")
    run_mlstage("ingest", "in.csv", "-o", "ds", cwd=tmp_path, check=0)
    time.sleep(RACY_WAIT)
    run_mlstage("ingest", "in.csv", "-o", "ds", cwd=tmp_path, check=0)
    assert _answered("ingest", "in.csv", "-o", "ds", cwd=tmp_path)[0]
    (tmp_path / "current").unlink()
    (tmp_path / "current").symlink_to("release-2")
    assert _answered("ingest", "in.csv", "-o", "ds", cwd=tmp_path)[0] is False
    proc = run_mlstage("ingest", "in.csv", "-o", "ds", "--json", cwd=tmp_path, check=0)
    assert json.loads(proc.stdout)["rows"] == 3


def test_stdin_and_devices_are_never_recorded(tmp_path):
    # `ingest /dev/stdin < a.csv`: the link's target is whatever stdin is next time
    write(tmp_path / "a.csv", "x\n1\n2\n")
    args = [mlstage_exe(), "ingest", "--format", "csv", "/dev/stdin", "-o", "ds"]
    for _ in range(2):
        with open(tmp_path / "a.csv", "rb") as stdin:
            proc = subprocess.run(args, cwd=tmp_path, env={**os.environ, **ON}, stdin=stdin,
                                  capture_output=True)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        time.sleep(RACY_WAIT)
    assert _records(tmp_path) == []


def test_a_repair_is_not_replayed(tmp_path):
    # an up-to-date run that rebuilt a damaged index says so once; the next run, with
    # nothing to repair, must not say it again
    _dataset(tmp_path)
    time.sleep(RACY_WAIT)
    (tmp_path / ".mlstage" / "index.sqlite").write_bytes(b"not a database")
    first = run_mlstage("stats", "ds", "-o", "st", cwd=tmp_path, check=0)
    assert b"damaged" in first.stderr
    assert _records(tmp_path) == []
    time.sleep(RACY_WAIT)
    run_mlstage("stats", "ds", "-o", "st", cwd=tmp_path, check=0)
    again = run_mlstage("stats", "ds", "-o", "st", cwd=tmp_path, check=0)
    assert b"damaged" not in again.stderr


def test_a_record_someone_else_could_write_is_not_used(tmp_path):
    _dataset(tmp_path)
    time.sleep(RACY_WAIT)
    run_mlstage("stats", "ds", "-o", "st", cwd=tmp_path, check=0)
    (record,) = _records(tmp_path)
    assert record.stat().st_mode & 0o777 == 0o600
    record.chmod(0o666)
    assert _answered("stats", "ds", "-o", "st", cwd=tmp_path)[0] is False
