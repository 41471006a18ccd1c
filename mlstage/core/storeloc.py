"""Where the store is: --store, else MLSTAGE_STORE, else a .mlstage/ found upwards.

Plain `os.path`, no other import: the up-to-date shortcut (`replay`) finds the store
before anything else is loaded.
"""

from __future__ import annotations

import os

STORE_DIRNAME = ".mlstage"
# A store's folder holds this file (written when the store is made): no command treats a
# folder without it (or, for stores made before it, without objects/ and index.sqlite)
# as a store, so a typo in --store never lets gc or reindex delete a user's files.
STORE_MARKER = "mlstage-store"
# Per-partition statistics `stats` keeps (validation.partition_cache; `gc` prunes them)
STATS_CACHE = os.path.join("cache", "stats")


def find_store_root(explicit: str | os.PathLike | None = None, near: str | None = None) -> str:
    """--store, else MLSTAGE_STORE, else the first .mlstage/ up from `near`, then from
    the current directory, else a new .mlstage/ in the current directory (absolute)."""
    if explicit:
        return os.path.abspath(explicit)
    env = os.environ.get("MLSTAGE_STORE")
    if env:
        return os.path.abspath(env)
    cwd = os.getcwd()
    for start in [p for p in (near, cwd) if p is not None]:
        d = os.path.abspath(start)
        while True:
            if os.path.isdir(os.path.join(d, STORE_DIRNAME)):
                return os.path.join(d, STORE_DIRNAME)
            parent = os.path.dirname(d)
            if parent == d:
                break
            d = parent
    return os.path.join(cwd, STORE_DIRNAME)
