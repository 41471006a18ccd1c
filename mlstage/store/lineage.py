"""The lineage of an artifact: the tree of its inputs back to the raw sources."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import Store


def lineage(store: Store, manifest: dict[str, Any]) -> dict[str, Any]:
    """The tree of inputs back to raw sources, as nested dicts."""

    def node(
        m: dict[str, Any], role: str | None, path: str | None, seen: frozenset
    ) -> dict[str, Any]:
        children = []
        for inp in m["inputs"]:
            parent = store.manifest(inp["id"]) if inp["id"] not in seen else None
            if parent is not None:
                children.append(node(parent, inp["role"], inp["path"], seen | {inp["id"]}))
            else:
                # A leaf: a raw source, a user-written file (spec, config, schema),
                # or an artifact that is not in this store.
                is_file = inp["role"] == "source" or Path(inp["path"]).is_file()
                children.append(
                    {
                        "role": inp["role"],
                        "id": inp["id"],
                        "path": inp["path"],
                        "kind": "file" if is_file else "missing",
                        "inputs": [],
                    }
                )
        return {
            "role": role,
            "id": m["id"],
            "kind": m["kind"],
            "stage": m["stage"],
            "path": path,
            "created": m["created"],
            "inputs": children,
        }

    return node(manifest, None, None, frozenset({manifest["id"]}))


def children(store: Store, parent: str, *, role: str, kind: str) -> list[dict[str, Any]]:
    """The artifacts of `kind` in the index that take `parent` as their input of `role`
    (the statistics of a dataset, the evaluations of a model), oldest first: ordered by
    creation time, then id, so the last is the newest and ties resolve the same way."""
    rows = store.db.execute(
        "SELECT DISTINCT a.id, a.created FROM edges e JOIN artifacts a ON a.id = e.child"
        " WHERE e.parent=? AND e.role=? AND a.kind=? ORDER BY a.created, a.id",
        (parent, role, kind),
    ).fetchall()
    return [{"id": r[0], "created": r[1]} for r in rows]
