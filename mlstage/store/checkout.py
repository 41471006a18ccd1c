"""`checkout`: write a stored artifact to a directory, atomically, as a stage would."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from ..core.artifact import MANIFEST, check_files, read_manifest
from ..core.fsutil import file_lock, recover, remove_tree, swap_into_place, temp_sibling
from ..core.outputs import check_output
from ..errors import CorruptArtifact, MlstageError
from .store import Store


def checkout(store: Store, ref: str, out: Path) -> tuple[dict[str, Any], bool]:
    """Returns the manifest and whether `out` changed."""
    src, manifest = store.load(ref)
    check_output(out, store_root=store.root, kind=manifest["kind"])
    problems = check_files(src, manifest)
    if problems:
        raise CorruptArtifact(
            f"{problems[0]}; the stored copy of {manifest['id'][:12]} is damaged:"
            " rerun the stage that made it to repair it"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(store.output_lock(out)):
        recover(out)
        try:
            if read_manifest(out)["id"] == manifest["id"] and store.intact(out, manifest):
                return manifest, False
        except MlstageError:
            pass
        tmp = temp_sibling(out)
        tmp.mkdir()
        try:
            for name in [f["path"] for f in manifest["files"]] + [MANIFEST]:
                try:
                    os.link(src / name, tmp / name)
                except OSError:
                    shutil.copy2(src / name, tmp / name)
            swap_into_place(tmp, out)
        finally:
            remove_tree(tmp)
        store.add(out, manifest)
        store.record_write(out, manifest)
    return manifest, True
