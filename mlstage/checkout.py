"""`checkout`: write a stored artifact to a directory, atomically, as a stage would."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from .artifact import MANIFEST, read_manifest
from .errors import MlstageError
from .fsutil import file_lock, lock_path, recover, remove_tree, swap_into_place, temp_sibling
from .store import Store


def checkout(store: Store, ref: str, out: Path) -> tuple[dict[str, Any], bool]:
    """Returns the manifest and whether `out` changed."""
    src, manifest = store.load(ref)
    out.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(lock_path(out)):
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
