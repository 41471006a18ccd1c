"""Reading dataset artifacts and the artifacts given to a stage as inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.artifact import Input
from ..core.jsonio import read_config, sha256_json
from ..errors import BadInput
from .store import Store


def load_input(
    store: Store, ref: str, role: str, kinds: tuple[str, ...]
) -> tuple[Path, dict[str, Any], Input]:
    """An artifact given to a stage: its directory, manifest and lineage record."""
    path, manifest = store.load(str(ref))
    if manifest["kind"] not in kinds:
        raise BadInput(
            f"this is a {manifest['kind']} artifact; expected {' or '.join(kinds)}", file=str(ref)
        )
    store.check_input(path, manifest, str(ref))  # never read a changed file under an old id
    return path, manifest, Input(role, manifest["id"], str(ref))


def is_artifact_ref(ref: str) -> bool:
    """Whether REF names an artifact (@id, or a directory with a manifest) rather than a file."""
    from ..core.s3url import is_s3

    p = Path(str(ref))
    return str(ref).startswith("@") or is_s3(ref) or (p.is_dir() and (p / "manifest.json").exists())


def load_document(store: Store, ref: str, role: str, payload: str, kind: str) -> tuple[Any, Input]:
    """A user-editable document (schema, spec, config): a JSON/TOML file or an artifact directory.

    A plain file is identified by the sha256 of its parsed content as canonical
    JSON, so reformatting it changes nothing.
    """
    if is_artifact_ref(ref):
        path, _, inp = load_input(store, str(ref), role, (kind,))
        return read_config(path / payload), inp
    content = read_config(Path(str(ref)))
    return content, Input(role, sha256_json(content), str(ref))
