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
    p = Path(str(ref))
    return str(ref).startswith("@") or (p.is_dir() and (p / "manifest.json").exists())


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


def splits_of(path: Path, manifest: dict[str, Any]) -> dict[str, Path]:
    """Split name -> Parquet file of a dataset (or features) artifact, in manifest order."""
    names = manifest["summary"].get("splits") or {}
    files = {
        f["path"][: -len(".parquet")]: path / f["path"]
        for f in manifest["files"]
        if f["path"].endswith(".parquet")
    }
    ordered = [n for n in names if n in files] + [n for n in files if n not in names]
    return {n: files[n] for n in ordered}


def choose_splits(available: dict[str, Path], wanted: str | None, ref: str) -> dict[str, Path]:
    if wanted is None:
        return available
    if wanted not in available:
        raise BadInput(
            f"no split {wanted!r}; the dataset has: {', '.join(available)}", file=str(ref)
        )
    return {wanted: available[wanted]}


def training_split(available: dict[str, Path], ref: str, name: str = "train") -> str:
    """The `train` split, else the only split, else bad input."""
    if name in available:
        return name
    if len(available) == 1:
        return next(iter(available))
    raise BadInput(
        f"no {name!r} split and more than one split ({', '.join(available)}); say which",
        file=str(ref),
    )
