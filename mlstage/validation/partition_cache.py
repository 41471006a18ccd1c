"""Statistics of partitions already seen, kept in the store (`cache/stats/`).

A partition's statistics depend only on its bytes, the column types read, the slices and
the statistics algorithm: keyed by those, a daily `stats` run over a dataset that gained
one partition profiles that partition and merges the cached others (issue 17, spans).
Entries are plain JSON (floats round-trip exactly) written whole with a rename, so a
reader sees an entry or none; a damaged entry is ignored and recomputed. They live in a
folder named by the partition's sha256, which `gc` removes once no artifact in the store
holds that file. Deleting the folder is always safe: it only costs the next run its time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..core.storeloc import STATS_CACHE as FOLDER

# Part of every key: bump it when `compute.split_stats` gives other statistics of the
# same file (the stats stage's algorithm says when its merged output changes).
VERSION = 1


def dataset_cache(root: Path, path: Path, manifest: dict[str, Any], slices) -> PartitionStatsCache:
    """The cache for the partitions of the dataset at `path` (its manifest's sha256s),
    read with its schema's types and these slices."""
    digests = {path / f["path"]: f["sha256"] for f in manifest["files"]}
    context = {"types": manifest["summary"]["schema"], "slices": slices, "version": VERSION}
    return PartitionStatsCache(root, digests, context)


class PartitionStatsCache:
    """(block, sketch) statistics of partitions, by content hash and what they were read as."""

    def __init__(self, root: Path, digests: dict[Path, str], context: dict[str, Any]):
        self.folder = root / FOLDER
        self.digests = digests  # partition file -> its sha256 (from the dataset's manifest)
        # what the partitions are read as (types, slices, version): an entry's file name
        self.key = hashlib.sha256(json.dumps(context, sort_keys=True).encode()).hexdigest()

    def _entry(self, part: Path) -> Path | None:
        digest = self.digests.get(part)
        if digest is None:
            return None
        return self.folder / digest / f"{self.key}.json"  # by partition: `gc` drops dead ones

    def get(self, part: Path) -> tuple[dict, dict] | None:
        entry = self._entry(part)
        if entry is None:
            return None
        try:
            doc = json.loads(entry.read_text())
            return doc["stats"], doc["sketches"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, part: Path, found: tuple[dict, dict]) -> None:
        entry = self._entry(part)
        if entry is None:
            return
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            tmp = entry.with_name(f".{entry.name}.{os.getpid()}")
            tmp.write_text(json.dumps({"stats": found[0], "sketches": found[1]}))
            os.replace(tmp, entry)
        except OSError:  # a cache that cannot be written costs time, never the run
            pass
