"""Never destroy what mlstage does not own, never trust the store blindly (issue 14):
safe outputs, verified reads, a store that survives moves and damage, exit codes."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mlstage import featurize, ingest, stats, train
from mlstage.errors import BadInput
from mlstage.store.store import Store

from ..conftest import cli, run_mlstage, write, write_json

SPEC = {"format": "mlstage-features/1", "label": "y",
        "features": [{"column": "x", "transform": "standardize"}]}  # fmt: skip
TRAIN = {
    "format": "mlstage-train/1",
    "task": "classification",
    "estimator": "LogisticRegression",
    "seed": 0,
}


def _data(path: Path, n: int = 200) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    pl.DataFrame({"x": x, "y": np.where(x > 0, "p", "n")}).write_csv(path)
    return path


def _writable(path: Path) -> None:
    os.chmod(path, 0o644)


def _tamper(path: Path) -> None:
    """Edit a payload file in place, keeping its size (as a careless user would)."""
    _writable(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


# -- outputs ----------------------------------------------------------------------------


def test_o_never_replaces_a_folder_mlstage_does_not_own(tmp_path):
    _data(tmp_path / "d.csv")
    mine = tmp_path / "mine"
    write(mine / "notes.txt", "precious")
    r = cli("ingest", "d.csv", "-o", "mine")
    assert (
        r.exit_code == 2 and "holds files that are not an mlstage artifact (notes.txt)" in r.stderr
    )
    assert (mine / "notes.txt").read_text() == "precious"
    # the project root, the current directory, a parent of it
    for out in (".", str(tmp_path), str(tmp_path.parent)):
        r = cli("ingest", "d.csv", "-o", out)
        assert r.exit_code == 2 and "current directory" in r.stderr, (out, r.stderr)
    assert (tmp_path / "d.csv").exists()
    # an empty folder is fine; an artifact is replaced by its new version
    (tmp_path / "empty").mkdir()
    assert cli("ingest", "d.csv", "-o", "empty").exit_code == 0
    # an artifact folder into which the user put a file of their own
    write(tmp_path / "empty" / "mine.txt", "x")
    _data(tmp_path / "d.csv", 150)
    r = cli("ingest", "d.csv", "-o", "empty")
    assert (
        r.exit_code == 2 and "mine.txt" in r.stderr and (tmp_path / "empty" / "mine.txt").exists()
    )
    # a file
    r = cli("ingest", "d.csv", "-o", "d.csv")
    assert r.exit_code == 2 and "is a file" in r.stderr and (tmp_path / "d.csv").stat().st_size > 0


def test_o_never_writes_onto_the_store_or_an_input(tmp_path):
    _data(tmp_path / "d.csv")
    ds = ingest(["d.csv"], "data")
    for out in (".mlstage", f".mlstage/objects/{ds.manifest['id']}", ".mlstage/objects"):
        r = cli("stats", "data", "-o", out)
        assert r.exit_code == 2 and "the store" in r.stderr, (out, r.stderr)
    r = cli("stats", "data", "-o", "data")
    assert r.exit_code == 2 and "own input" in r.stderr
    assert json.loads((tmp_path / "data" / "manifest.json").read_text())["kind"] == "dataset"
    write(tmp_path / "raw" / "d.csv", (tmp_path / "d.csv").read_text())
    r = cli("ingest", "raw/d.csv", "-o", "raw")
    assert (
        r.exit_code == 2 and "holds an input" in r.stderr and (tmp_path / "raw" / "d.csv").exists()
    )
    assert cli("verify").exit_code == 0
    # a stage may replace an input of the kind it writes: schema --update S -o S
    stats("data", "st")
    assert cli("schema", "st", "-o", "sc").exit_code == 0
    assert cli("schema", "st", "--update", "sc", "-o", "sc").exit_code == 0


def test_checkout_and_report_follow_the_same_rules(tmp_path):
    _data(tmp_path / "d.csv")
    ds = ingest(["d.csv"], "data")
    stats("data", "st")
    write(tmp_path / "mine" / "keep.txt", "x")
    r = cli("checkout", f"@{ds.manifest['id'][:10]}", "-o", "mine")
    assert r.exit_code == 2 and (tmp_path / "mine" / "keep.txt").exists()
    r = cli("report", "st", "-o", "mine")
    assert r.exit_code == 2 and "is a directory" in r.stderr
    write(tmp_path / "page.html", "<html>my own page</html>")
    r = cli("report", "st", "-o", "page.html")
    assert r.exit_code == 2 and (tmp_path / "page.html").read_text() == "<html>my own page</html>"
    assert cli("report", "st", "-o", "r.html").exit_code == 0
    assert cli("report", "st", "-o", "r.html").exit_code == 0  # its own page: replaced


# -- verified reads ---------------------------------------------------------------------


def test_a_changed_payload_is_never_read_under_its_old_id(tmp_path):
    _data(tmp_path / "d.csv")
    ds = ingest(["d.csv"], "data")
    part = tmp_path / "data" / "data.parquet"
    _tamper(part)
    r = cli("stats", "data", "-o", "st")
    assert (
        r.exit_code == 2
        and "data.parquet" in r.stderr
        and "changed since it was written" in r.stderr
    )
    assert "rerun the stage" in r.stderr  # the store shares the file: its copy is damaged too
    assert not (tmp_path / "st").exists()
    # checkout of the damaged stored copy refuses rather than hand it back
    r = cli("checkout", f"@{ds.manifest['id']}", "-o", "copy")
    assert r.exit_code == 2 and not (tmp_path / "copy").exists()
    # rerunning the stage repairs the path and the stored object
    assert cli("ingest", "d.csv", "-o", "data").exit_code == 0
    assert cli("verify").exit_code == 0
    assert cli("stats", "data", "-o", "st").exit_code == 0


def test_a_changed_large_split_is_found_among_several_hashed_at_once(tmp_path):
    """Files over the store's small-file size, not yet hashed by this store, are hashed
    in threads together: a changed one among them is still named."""
    rng = np.random.default_rng(1)
    pl.DataFrame({"x": rng.normal(size=400_000), "y": rng.integers(0, 2, 400_000)}).write_csv(
        tmp_path / "big.csv"
    )
    ingest(["big.csv"], "data", split=["a=1", "b=1"], store="s1")
    parts = sorted((tmp_path / "data").glob("*.parquet"))
    assert len(parts) == 2 and all(p.stat().st_size > (1 << 20) for p in parts)
    # another store has no hash of them cached: it reads both, in threads
    assert cli("stats", "data", "-o", "ok", "--store", "s2").exit_code == 0
    _tamper(parts[1])
    r = cli("stats", "data", "-o", "st", "--store", "s3")
    assert r.exit_code == 2 and parts[1].name in r.stderr and parts[0].name not in r.stderr
    assert "changed since it was written" in r.stderr and not (tmp_path / "st").exists()


def test_a_hand_edited_schema_in_an_artifact_is_refused(tmp_path):
    _data(tmp_path / "d.csv")
    ingest(["d.csv"], "data")
    stats("data", "st")
    assert cli("schema", "st", "-o", "sc").exit_code == 0
    doc = tmp_path / "sc" / "schema.json"
    _writable(doc)
    text = doc.read_text().replace('"min_rows": 1', '"min_rows": 9')
    doc.write_text(text)
    r = cli("validate", "data", "--schema", "sc", "-o", "an")
    assert r.exit_code == 2 and "schema.json" in r.stderr


def test_a_copy_outside_the_store_is_restored_by_checkout(tmp_path):
    _data(tmp_path / "d.csv")
    ds = ingest(["d.csv"], "data")
    # break the hardlink (as a copy tool or an editor that rewrites files would), then change it
    part = tmp_path / "data" / "data.parquet"
    data = part.read_bytes()
    part.unlink()
    part.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    r = cli("stats", "data", "-o", "st")
    assert r.exit_code == 2 and f"mlstage checkout @{ds.manifest['id'][:12]} -o data" in r.stderr
    assert cli("checkout", f"@{ds.manifest['id'][:12]}", "-o", "data").exit_code == 0
    assert cli("stats", "data", "-o", "st").exit_code == 0


def test_links_to_devices_are_never_followed(tmp_path):
    _data(tmp_path / "d.csv")
    ingest(["d.csv"], "data")
    featurize("data", "f", spec=write_json(tmp_path / "s.json", SPEC))
    train("f", "m", config=write_json(tmp_path / "t.json", TRAIN))
    part = tmp_path / "data" / "data.parquet"
    part.unlink()
    part.symlink_to("/dev/zero")
    start = time.monotonic()
    r = cli("stats", "data", "-o", "st")
    assert r.exit_code == 2 and "not a regular file" in r.stderr
    model = tmp_path / "m" / "model.skops"
    model.unlink()
    model.symlink_to("/dev/zero")
    r = cli("deploy", "m", "--registry", "reg", "--allow-unblessed")
    assert r.exit_code == 2 and "not a regular file" in r.stderr
    r = cli("predict", "m", "data", "-o", "p")
    assert r.exit_code == 2
    assert time.monotonic() - start < 30


def test_a_refused_model_file_is_bad_input_not_a_gate(tmp_path):
    _data(tmp_path / "d.csv")
    ingest(["d.csv"], "data")
    featurize("data", "f", spec=write_json(tmp_path / "s.json", SPEC))
    train("f", "m", config=write_json(tmp_path / "t.json", TRAIN))
    _tamper(tmp_path / "m" / "model.skops")
    for args in (["predict", "m", "data", "-o", "p"], ["whatif", "m", "--row", '{"x": 1}'],
                 ["evaluate", "m", "data", "--config", str(write_json(tmp_path / "e.json", {"format": "mlstage-evaluate/1"})), "-o", "e"]):  # fmt: skip
        r = cli(*args)
        assert r.exit_code == 2 and "model.skops" in r.stderr, (args, r.stderr)
    assert cli("verify").exit_code == 1  # verify reports what it finds with exit 1


# -- a store that survives moves and damage ----------------------------------------------


@pytest.mark.slow
def test_moving_the_project_keeps_log_lineage_and_gc_right(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    _data(proj / "d.csv")
    run_mlstage("ingest", "d.csv", "-o", "data", cwd=proj, check=0)
    run_mlstage("stats", "data", "-o", "st", cwd=proj, check=0)
    moved = tmp_path / "renamed"
    shutil.move(proj, moved)
    log = run_mlstage("log", "st", cwd=moved, check=0).stdout.decode()
    assert log.count("\n") == 1 and str(moved / "st") in log
    assert run_mlstage("lineage", "st", cwd=moved, check=0).stdout
    assert run_mlstage("gc", "--grace", "0", cwd=moved, check=0)
    assert run_mlstage("verify", cwd=moved, check=0)
    assert (
        run_mlstage("stats", "data", "-o", "st", cwd=moved, check=0)
        .stderr.decode()
        .find("up to date")
        >= 0
    )


def test_gc_keeps_what_a_manifest_under_the_root_names_whatever_the_journal_says(tmp_path):
    _data(tmp_path / "d.csv")
    ingest(["d.csv"], "data")
    st = Store.open()
    st.journal.write_text("")  # the journal lost (or a path logged by another name)
    st.reindex()
    assert st.gc(grace=0) == []
    assert cli("stats", "data", "-o", "st").exit_code == 0


def test_gc_stops_at_a_damaged_serving_json_and_deletes_nothing(tmp_path):
    # the models and evaluations a damaged registry history names are unknown: gc must
    # not guess them dead
    _data(tmp_path / "d.csv")
    first = ingest(["d.csv"], "data").manifest["id"]
    _data(tmp_path / "d.csv", n=50)
    ingest(["d.csv"], "data")  # the first version is now held by no path
    assert cli("checkout", "data", "-o", "reg/income/1").exit_code == 0
    write(tmp_path / "reg/income/serving.json", "{torn")
    r = cli("gc", "--grace", "0")
    assert r.exit_code == 2 and "gc stops" in r.stderr and "serving.json" in r.stderr
    assert (Store.open().objects / first).is_dir()  # nothing deleted


def test_reindex_skips_an_unreadable_manifest_and_keeps_the_index(tmp_path):
    _data(tmp_path / "d.csv")
    ingest(["d.csv"], "data")
    stats("data", "st")
    st = Store.open()
    bad = st.objects / ("f" * 64)
    bad.mkdir()
    write(bad / "manifest.json", "{torn")
    r = cli("reindex")
    assert r.exit_code == 1 and "ffffffff" in r.stderr and "2 artifacts indexed" in r.stderr
    assert len(cli("log").stdout.strip().splitlines()) == 2


def test_a_garbage_index_is_rebuilt_on_open(tmp_path):
    _data(tmp_path / "d.csv")
    ingest(["d.csv"], "data")
    index = tmp_path / ".mlstage" / "index.sqlite"
    for p in (index, Path(f"{index}-wal"), Path(f"{index}-shm")):
        p.unlink(missing_ok=True)
    index.write_bytes(b"this is not a database" * 100)
    r = cli("log")
    assert r.exit_code == 0 and len(r.stdout.strip().splitlines()) == 1
    assert "the index is damaged" in r.stderr
    assert cli("reindex").exit_code == 0
    sqlite3.connect(index).execute("SELECT count(*) FROM writes").fetchone()


def test_a_torn_journal_line_does_not_swallow_the_next_write(tmp_path):
    _data(tmp_path / "d.csv")
    ingest(["d.csv"], "data")
    journal = tmp_path / ".mlstage" / "journal.jsonl"
    with open(journal, "ab") as f:
        f.write(b'{"at": "2026-01-01T00:00:00Z", "pa')  # a writer killed mid-line
    stats("data", "st")
    r = cli("reindex")
    assert r.exit_code == 1 and "torn" in r.stderr
    assert len(cli("log").stdout.strip().splitlines()) == 2


# -- exit codes -------------------------------------------------------------------------


def test_store_paths_that_are_not_usable_are_bad_input(tmp_path, monkeypatch):
    _data(tmp_path / "d.csv")
    write(tmp_path / "afile", "x")
    monkeypatch.setenv("MLSTAGE_STORE", str(tmp_path / "afile"))
    r = cli("ingest", "d.csv", "-o", "data")
    assert r.exit_code == 2 and "afile" in r.stderr and "directory" in r.stderr
    monkeypatch.setenv("MLSTAGE_STORE", "/proc/mlstage-store")
    r = cli("ingest", "d.csv", "-o", "data")
    assert r.exit_code == 2 and "/proc/mlstage-store" in r.stderr


def test_disk_full_is_named_as_such(tmp_path):
    from mlstage.errors import DiskFull, is_disk_full

    assert is_disk_full(OSError(28, "No space left on device"))
    assert "no space left on the device" in str(DiskFull(tmp_path))
    with pytest.raises(BadInput):
        ingest([_data(tmp_path / "d.csv")], ".")


# -- a hostile review's findings (each failed before its fix) ------------------------------


def test_a_store_option_naming_a_users_folder_deletes_nothing(tmp_path):
    _data(tmp_path / "d.csv")
    write(tmp_path / "mine" / "tmp" / "sub" / "a.txt", "precious")
    write(tmp_path / "mine" / "objects" / "chair" / "chair.obj", "mesh")
    for args in (["reindex", "--store", "mine"], ["gc", "--grace", "0", "--store", "mine"],
                 ["ingest", "d.csv", "-o", "ds", "--store", "mine"]):  # fmt: skip
        r = cli(*args)
        assert r.exit_code == 2 and "is not an mlstage store" in r.stderr, (args, r.stderr)
    assert (tmp_path / "mine" / "tmp" / "sub" / "a.txt").read_text() == "precious"
    assert (tmp_path / "mine" / "objects" / "chair" / "chair.obj").exists()
    ingest(["d.csv"], "ds")
    r = cli("stats", "ds", "-o", "st", "--store", "ds")  # an artifact is no store either
    assert r.exit_code == 2


def test_outputs_never_land_in_another_store_a_registry_or_an_artifact(tmp_path):
    _data(tmp_path / "d.csv")
    ds = ingest(["d.csv"], "data")
    other = Store.open(tmp_path / "other")
    obj = f".mlstage/objects/{ds.manifest['id']}"
    r = cli("stats", "data", "--store", str(other.root), "-o", obj)
    assert r.exit_code == 2 and "inside the store" in r.stderr
    featurize("data", "f", spec=write_json(tmp_path / "s.json", SPEC))
    train("f", "m", config=write_json(tmp_path / "t.json", TRAIN))
    r = cli("deploy", "m", "--registry", "reg", "--name", "m", "--allow-unblessed")
    assert r.exit_code == 0, r.stderr
    r = cli("train", "f", "--config", "t.json", "-o", "reg/m/1", "--force")
    assert r.exit_code == 2 and "registry model folder" in r.stderr
    for args in (["deploy", "m", "--registry", ".mlstage/objects", "--allow-unblessed"],
                 ["deploy", "m", "--registry", "data", "--allow-unblessed"]):  # fmt: skip
        r = cli(*args)
        assert r.exit_code == 2 and "keep registries outside" in r.stderr, r.stderr
    stats("data", "st")
    for out in (f"{obj}/r.html", ".mlstage/r.html", "data/r.html"):
        r = cli("report", "st", "-o", out)
        assert r.exit_code == 2 and "is inside" in r.stderr, (out, r.stderr)
    assert cli("verify").exit_code == 0


def test_verify_names_an_object_holding_another_id(tmp_path):
    _data(tmp_path / "d.csv")
    ds = ingest(["d.csv"], "data")
    stats("data", "st")
    objects = tmp_path / ".mlstage" / "objects"
    wrong = objects / ("0" * 64)
    os.rename(objects / ds.manifest["id"], wrong)
    r = cli("verify")
    assert r.exit_code == 1 and "not the one its name says" in r.stdout


def test_fifos_where_files_are_expected_never_hang(tmp_path):
    _data(tmp_path / "d.csv")
    ds = ingest(["d.csv"], "data")
    stats("data", "st")
    (tmp_path / "co").mkdir()
    os.mkfifo(tmp_path / "co" / "manifest.json")
    start = time.monotonic()
    r = cli("checkout", f"@{ds.manifest['id'][:10]}", "-o", "co")
    assert r.exit_code == 2
    os.mkfifo(tmp_path / "page.html")
    r = cli("report", "st", "-o", "page.html")
    assert r.exit_code == 2 and "not a regular file" in r.stderr
    (tmp_path / "junk").mkdir()
    os.mkfifo(tmp_path / "junk" / "manifest.json")
    assert cli("gc", "--grace", "0", "--dry-run").exit_code == 0
    assert time.monotonic() - start < 30


def test_deploy_skips_a_version_folder_it_did_not_write(tmp_path):
    _data(tmp_path / "d.csv")
    ingest(["d.csv"], "data")
    featurize("data", "f", spec=write_json(tmp_path / "s.json", SPEC))
    train("f", "m", config=write_json(tmp_path / "t.json", TRAIN))
    write(tmp_path / "reg" / "income" / "1" / "notes.txt", "mine")
    r = cli("deploy", "m", "--registry", "reg", "--name", "income", "--allow-unblessed")
    assert r.exit_code == 0 and "version 2" in r.stderr
    assert (tmp_path / "reg" / "income" / "1" / "notes.txt").read_text() == "mine"


def test_an_identical_rerun_shares_the_stores_read_only_files(tmp_path):
    _data(tmp_path / "d.csv")
    ingest(["d.csv"], "a")
    ingest(["d.csv"], "b")  # the same artifact: the object exists already
    part = tmp_path / "b" / "data.parquet"
    # one file for the store's copy and both outputs, with no write bit
    assert part.stat().st_nlink == 3 and part.stat().st_mode & 0o222 == 0
    assert os.path.samefile(part, tmp_path / "a" / "data.parquet")
