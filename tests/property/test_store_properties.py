"""A property of the store (issue 14): whatever sequence of writes, killed writers, project
moves, tamperings, `gc` and `reindex` happens, no artifact a path still holds is lost, and
no changed file is ever read without exit 2."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlstage import ingest
from mlstage.core.artifact import read_manifest
from mlstage.errors import BadInput
from mlstage.stages.stats import stats
from mlstage.store.store import Store

from ..conftest import run_mlstage

OUTS = ("a", "b", "nested/c")
CONTENTS = ("x,y\n1,p\n2,n\n", "x,y\n1,p\n2,n\n3,p\n", "x,y\n5,n\n")

ops = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(OUTS), st.integers(0, len(CONTENTS) - 1)),
    st.tuples(
        st.just("kill"), st.sampled_from(OUTS), st.sampled_from(["produced", "stored", "swapped"])
    ),
    st.tuples(st.just("move")),
    st.tuples(st.just("tamper"), st.sampled_from(OUTS)),
    st.tuples(st.just("gc")),
    st.tuples(st.just("reindex")),
)


def _source(root: Path, k: int) -> Path:
    path = root / f"src{k}.csv"
    path.write_text(CONTENTS[k])
    return path


def _check(root: Path, tampered: set[str]) -> None:
    store = Store.open(root / ".mlstage")
    for out in OUTS:
        folder = root / out
        if not (folder / "manifest.json").exists():
            continue
        m = read_manifest(folder)
        # nothing a path holds is lost from the store (gc keeps it, moves keep it)
        assert (store.object_dir(m["id"]) / "manifest.json").exists(), out
        try:
            stats(folder, None, store=store)
            read_ok = True
        except BadInput as e:
            assert "changed since it was written" in str(e) or "bytes, the manifest says" in str(e)
            read_ok = False
        assert read_ok == (out not in tampered), (out, tampered)
    store.close()


# derandomize: CI runs the same 12 histories every time (160 random ones passed locally);
# drop it to explore new ones.
@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.lists(ops, min_size=3, max_size=9))
@pytest.mark.slow
def test_random_histories_lose_nothing_and_read_nothing_changed(history):
    base = Path(tempfile.mkdtemp(prefix="mlstage-prop-"))
    root = base / "proj0"
    root.mkdir()
    old_cwd = os.getcwd()
    moves = 0
    tampered: set[str] = set()
    try:
        os.chdir(root)
        for op in history:
            if op[0] == "write":
                _, out, k = op
                ingest([_source(root, k)], root / out, store=root / ".mlstage")
                tampered.discard(out)  # a rerun rewrites (and repairs) the path
            elif op[0] == "kill":
                _, out, point = op
                _source(root, 0)
                run_mlstage("ingest", "src0.csv", "-o", out, "--force", cwd=root,
                            env={"MLSTAGE_FAULT": point, "MLSTAGE_STORE": str(root / ".mlstage")})  # fmt: skip
                if point == "swapped":
                    tampered.discard(out)  # the new version is in place, whole
            elif op[0] == "move":
                moves += 1
                new = base / f"proj{moves}"
                os.chdir(base)
                shutil.move(root, new)
                root = new
                os.chdir(root)
            elif op[0] == "tamper":
                part = root / op[1] / "data.parquet"
                if part.exists():
                    os.chmod(part, 0o644)
                    data = bytearray(part.read_bytes())
                    data[len(data) // 2] = (data[len(data) // 2] + 1) % 256  # twice is not undone
                    part.write_bytes(bytes(data))
                    # outputs holding the same artifact share its (store's) files
                    tampered.update(
                        out for out in OUTS
                        if (root / out / "data.parquet").exists()
                        and os.path.samefile(root / out / "data.parquet", part)
                    )  # fmt: skip
            elif op[0] == "gc":
                Store.open(root / ".mlstage").gc(grace=0)
            else:
                Store.open(root / ".mlstage").reindex()
            _check(root, tampered)
    finally:
        os.chdir(old_cwd)
        shutil.rmtree(base, ignore_errors=True)
