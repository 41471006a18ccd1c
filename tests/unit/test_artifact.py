"""The artifact layer: ids, fingerprints, atomic writes, the up-to-date rule, verify."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlstage.core.artifact import Input, artifact_id, fingerprint, read_manifest, validate_manifest
from mlstage.core.fsutil import recover, sibling, swap_into_place
from mlstage.errors import BadInput, CorruptArtifact
from mlstage.stages.base import StagePlan, run_stage
from mlstage.store.store import Store


def _plan(params=None, inputs=None) -> StagePlan:
    return StagePlan("test", "stats", 1, params or {"a": 1}, inputs or [])


def _produce(content: str = "hello", summary=None):
    def produce(tmp: Path) -> dict:
        (tmp / "payload.txt").write_text(content)
        return summary if summary is not None else {"rows": 1}

    return produce


def test_fingerprint_is_canonical_over_params_and_inputs():
    a = fingerprint("s", 1, {"x": 1, "y": [1, 2]}, [Input("data", "0" * 64, "p")])
    b = fingerprint("s", 1, {"y": [1, 2], "x": 1}, [Input("data", "0" * 64, "other/path")])
    assert a == b  # key order and input paths do not matter
    assert a != fingerprint("s", 2, {"x": 1, "y": [1, 2]}, [Input("data", "0" * 64, "p")])
    assert a != fingerprint("s", 1, {"x": 2, "y": [1, 2]}, [Input("data", "0" * 64, "p")])
    assert a != fingerprint("s", 1, {"x": 1, "y": [1, 2]}, [Input("data", "1" * 64, "p")])


def test_id_depends_on_fingerprint_and_payload_not_time(tmp_path):
    store = Store.open(tmp_path / "st")
    r1 = run_stage(_plan(), _produce(), tmp_path / "a", store=store)
    r2 = run_stage(_plan(), _produce(), tmp_path / "b", store=store)
    assert r1.manifest["id"] == r2.manifest["id"]
    r3 = run_stage(_plan(), _produce("other"), tmp_path / "c", store=store)
    assert r3.manifest["id"] != r1.manifest["id"]
    m = r1.manifest
    assert m["id"] == artifact_id(m["fingerprint"], m["files"])


def test_manifest_is_validated_on_read(tmp_path):
    store = Store.open(tmp_path / "st")
    r = run_stage(_plan(), _produce(), tmp_path / "a", store=store)
    m = dict(r.manifest)
    m["kind"] = "banana"
    with pytest.raises(BadInput, match=r"\$\.kind"):
        validate_manifest(m, "x")
    out = tmp_path / "copy"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({**r.manifest, "fingerprint": "f" * 64}))
    with pytest.raises(CorruptArtifact):
        read_manifest(out)


def test_up_to_date_leaves_output_untouched_and_repeats_the_result(tmp_path):
    store = Store.open(tmp_path / "st")
    out = tmp_path / "out"
    calls = []

    def produce(tmp):
        calls.append(1)
        (tmp / "anomalies.json").write_text("{}")
        return {"ok": False}

    first = run_stage(_plan(), produce, out, store=store)
    assert first.exit_code == 1 and not first.up_to_date
    before = (out.stat().st_mtime_ns, (out / "manifest.json").stat().st_mtime_ns)
    second = run_stage(_plan(), produce, out, store=store)
    assert second.up_to_date and second.exit_code == 1  # the failed gate is repeated
    assert len(calls) == 1
    assert (out.stat().st_mtime_ns, (out / "manifest.json").stat().st_mtime_ns) == before
    forced = run_stage(_plan(), produce, out, store=store, force=True)
    assert not forced.up_to_date and len(calls) == 2


def test_dry_run_writes_nothing(tmp_path):
    store = Store.open(tmp_path / "st")
    out = tmp_path / "out"
    r = run_stage(_plan(), _produce(), out, store=store, dry_run=True)
    assert r.would_run and not out.exists()
    run_stage(_plan(), _produce(), out, store=store)
    r = run_stage(_plan(), _produce(), out, store=store, dry_run=True)
    assert r.up_to_date and not r.would_run


def test_a_changed_payload_is_not_up_to_date(tmp_path):
    store = Store.open(tmp_path / "st")
    out = tmp_path / "out"
    run_stage(_plan(), _produce(), out, store=store)
    target = out / "payload.txt"
    os.chmod(target, 0o644)
    target.write_text("HELLO")  # same size, edited in place (and in the store: a hardlink)
    again = run_stage(_plan(), _produce(), out, store=store)
    assert not again.up_to_date
    assert (out / "payload.txt").read_text() == "hello"


def test_error_in_produce_keeps_previous_version_and_leaves_no_temp(tmp_path):
    store = Store.open(tmp_path / "st")
    out = tmp_path / "out"
    good = run_stage(_plan(), _produce(), out, store=store)

    def bad(tmp):
        (tmp / "payload.txt").write_text("partial")
        raise BadInput("broken input", file="x.csv", line=3, column="age")

    with pytest.raises(BadInput, match='x.csv: line 3, column "age": broken input'):
        run_stage(_plan({"a": 2}), bad, out, store=store)
    assert read_manifest(out)["id"] == good.manifest["id"]
    assert (out / "payload.txt").read_text() == "hello"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.tmp")] == []


def test_swap_replaces_a_non_empty_directory(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    new = tmp_path / ".out.tmp-1"
    new.mkdir()
    (new / "new.txt").write_text("new")
    swap_into_place(new, out)
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert not new.exists()


def test_recover_finishes_a_fallback_swap_cut_short(tmp_path):
    """The rename fallback: old moved aside, new not yet in place -> the new one wins."""
    out = tmp_path / "out"
    new = sibling(out, "tmp-9")
    old = sibling(out, "old-9")
    new.mkdir()
    (new / "v").write_text("2")
    old.mkdir()
    (old / "v").write_text("1")
    sibling(out, "swap.json").write_text(json.dumps({"new": new.name, "old": old.name}))
    recover(out)
    assert (out / "v").read_text() == "2"
    assert not new.exists() and not old.exists() and not sibling(out, "swap.json").exists()


def test_verify_names_an_edited_file(tmp_path):
    store = Store.open(tmp_path / "st")
    out = tmp_path / "out"
    run_stage(_plan(), _produce(), out, store=store)
    assert store.verify(out) == (1, [])
    os.chmod(out / "payload.txt", 0o644)
    (out / "payload.txt").write_text("tampered!")
    checked, problems = store.verify(out)
    assert checked == 1 and len(problems) == 1 and "payload.txt" in problems[0]


def test_hash_files_gives_each_files_sha256_in_order(tmp_path):
    import hashlib

    from mlstage.core.fsutil import hash_files

    contents = [b"", b"a", bytes(range(256)) * 5000, b"b" * (3 << 20)]
    paths = []
    for i, data in enumerate(contents):
        paths.append(tmp_path / f"f{i}")
        paths[-1].write_bytes(data)
    expected = [hashlib.sha256(c).hexdigest() for c in contents]
    assert hash_files(paths) == expected
    assert hash_files(paths[::-1]) == expected[::-1]
    assert hash_files(paths[:1]) == expected[:1] and hash_files([]) == []
