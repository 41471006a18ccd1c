"""The artifact: a directory holding `manifest.json` and payload files.

    id          = sha256 of canonical JSON {"fingerprint", "files": [[name, sha256], ...]}
    fingerprint = sha256 of canonical JSON {"stage", "algorithm", "params", "inputs": [[role, id], ...]}

The fingerprint says what a stage would compute (so a rerun can be skipped
before any work); the id says what it did compute.
"""

from __future__ import annotations

import json
import os
import platform
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import BadInput, CorruptArtifact, ExitCode
from ..version import __version__
from .fsutil import hash_files, is_regular_file, sha256_file
from .jsonio import dumps_pretty, sha256_json

FORMAT = "mlstage-artifact/1"
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 64 << 20

# Versions recorded in every manifest: read from package metadata, never by
# importing the package (that would make `--help` and up-to-date runs slow).
_ENV_PACKAGES = ("polars", "pyarrow", "numpy", "scikit-learn", "jsonschema", "typer")


@dataclass(frozen=True)
class Input:
    role: str
    id: str
    path: str

    def as_json(self) -> dict[str, str]:
        return {"role": self.role, "id": self.id, "path": self.path}


def fingerprint(stage: str, algorithm: int, params: dict[str, Any], inputs: list[Input]) -> str:
    return sha256_json(
        {
            "stage": stage,
            "algorithm": algorithm,
            "params": params,
            "inputs": [[i.role, i.id] for i in inputs],
        }
    )


def artifact_id(fp: str, files: list[dict[str, Any]]) -> str:
    return sha256_json(
        {"fingerprint": fp, "files": sorted([f["path"], f["sha256"]] for f in files)}
    )


@cache
def environment() -> dict[str, str]:
    from importlib import metadata

    env = {"python": platform.python_version(), "platform": sys.platform}
    for name in _ENV_PACKAGES:
        try:
            env[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return env


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def validate_manifest(manifest: Any, where: str) -> None:
    from .documents import validate

    try:
        validate(manifest, FORMAT, where)
    except BadInput as e:
        raise BadInput(f"not a valid mlstage manifest: {e.reason}", file=where) from None


def build_manifest(
    *,
    kind: str,
    stage: str,
    fp: str,
    params: dict[str, Any],
    inputs: list[Input],
    payload_dir: Path,
    summary: dict[str, Any],
) -> dict[str, Any]:
    names = [n for n in sorted(os.listdir(payload_dir)) if n != MANIFEST]
    for name in names:
        if not (payload_dir / name).is_file():
            raise CorruptArtifact(f"{payload_dir / name}: artifact payloads are plain files")
    digests = hash_files([payload_dir / n for n in names])
    files = [
        {"path": n, "sha256": d, "bytes": (payload_dir / n).stat().st_size}
        for n, d in zip(names, digests, strict=True)
    ]
    manifest = {
        "format": FORMAT,
        "kind": kind,
        "id": artifact_id(fp, files),
        "fingerprint": fp,
        "stage": stage,
        "created": utc_now(),
        "mlstage_version": __version__,
        "params": params,
        "inputs": [i.as_json() for i in inputs],
        "files": files,
        "environment": environment(),
        "summary": summary,
    }
    validate_manifest(manifest, str(payload_dir / MANIFEST))
    return manifest


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return dumps_pretty(manifest).encode()


def claimed_id(artifact_dir: Path) -> str | None:
    """The id an artifact directory's manifest claims, unchecked (None if there is none
    to read): enough to see that the version there is the one already logged, without
    the schema validator's import on a stage's path to its data."""
    path = artifact_dir / MANIFEST
    if not is_regular_file(path, MAX_MANIFEST_BYTES):
        return None
    try:
        found = json.loads(path.read_bytes()).get("id")
    except (OSError, ValueError, UnicodeDecodeError, AttributeError):
        return None
    return found if isinstance(found, str) else None


def read_manifest(artifact_dir: Path) -> dict[str, Any]:
    """Read and validate the manifest of an artifact directory."""
    path = artifact_dir / MANIFEST
    try:
        os.lstat(path)  # a missing manifest, or a file where the directory should be
        if not is_regular_file(path, MAX_MANIFEST_BYTES):
            raise BadInput(
                "not a regular file of a manifest's size (a link, device or fifo?)", file=str(path)
            )
        manifest = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise BadInput(
            "not an mlstage artifact (no manifest.json)", file=str(artifact_dir)
        ) from None
    except NotADirectoryError:
        raise BadInput(
            "is a file; an mlstage artifact (a directory with a manifest.json) is expected here"
            " (raw files go to `mlstage ingest`)",
            file=str(artifact_dir),
        ) from None
    except IsADirectoryError:
        raise BadInput("manifest.json is a directory", file=str(artifact_dir)) from None
    except PermissionError:
        raise BadInput(
            "cannot read manifest.json: permission denied", file=str(artifact_dir)
        ) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise BadInput(f"manifest is not valid JSON: {e}", file=str(path)) from None
    validate_manifest(manifest, str(path))
    want = artifact_id(manifest["fingerprint"], manifest["files"])
    if want != manifest["id"]:
        raise CorruptArtifact(f"{path}: id does not match the fingerprint and files it lists")
    return manifest


def checked_manifest(data: bytes, where: str) -> dict[str, Any]:
    """A manifest read from elsewhere than a file (object storage), validated as
    `read_manifest` validates one: JSON, its schema, and its id against what it lists."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise BadInput("not a manifest: larger than a manifest may be", file=where)
    try:
        manifest = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadInput(f"manifest is not valid JSON: {e}", file=where) from None
    validate_manifest(manifest, where)
    if artifact_id(manifest["fingerprint"], manifest["files"]) != manifest["id"]:
        raise CorruptArtifact(f"{where}: id does not match the fingerprint and files it lists")
    return manifest


def file_problem(path: Path, entry: dict[str, Any], digest: Callable[[Path], str]) -> str | None:
    """What is wrong with one payload file against its manifest entry (None: nothing).

    A payload is a regular file, never followed through a link (a link to /dev/zero
    would be read forever); its size must match before anything is read.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "missing"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a link, device or fifo); payloads are plain files"
    if st.st_size != entry["bytes"]:
        return f"{st.st_size} bytes, the manifest says {entry['bytes']}"
    if digest(path) != entry["sha256"]:
        return "changed since it was written (its sha256 differs from the manifest's)"
    return None


def check_files(
    artifact_dir: Path, manifest: dict[str, Any], *, digest: Callable[[Path], str] = sha256_file
) -> list[str]:
    """Problems with the payload files, each with what is wrong (empty when every file
    matches). `digest` gives a file's sha256: re-hashed by default (the store passes its
    cache)."""
    out = []
    for f in manifest["files"]:
        p = artifact_dir / f["path"]
        problem = file_problem(p, f, digest)
        if problem:
            out.append(f"{p}: {problem}")
    return out


def gate_exit_code(summary: dict[str, Any]) -> int:
    """A stage's recorded result: 1 when its gate failed (`ok` or `blessed` false) or
    `monitor` calls for retraining (`retrain` true); 4 when `monitor` saw no traffic
    (`no_traffic` true), which is neither health nor a call to retrain; with a
    `verdict` (`monitor --compare`), 1 for `rollback` and 0 for `promote`."""
    if summary.get("no_traffic") is True:
        return ExitCode.NO_TRAFFIC
    if "verdict" in summary:  # monitor --compare: the verdict alone (1: roll back)
        return ExitCode.GATE if summary["verdict"] == "rollback" else ExitCode.OK
    failed = summary.get("ok") is False or summary.get("blessed") is False
    return ExitCode.GATE if failed or summary.get("retrain") is True else ExitCode.OK
