"""The model registry: `REGISTRY/NAME/<N>/` model copies (TF Serving's layout) and
`REGISTRY/NAME/serving.json`, which says which version is served and keeps the history.

    {"format": "mlstage-serving/1", "version": 2,
     "history": [{"version": 1, "model": ID, "at": TIME, "action": "deploy", "message": ""}, ...]}

Every change happens under `REGISTRY/NAME/.lock`: a version directory is written
beside its place and renamed in, and serving.json is replaced by rename, so a
reader (the server) never sees half of either.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.artifact import MANIFEST, check_files, read_manifest, utc_now
from ..core.fsutil import file_lock, fsync_path, fsync_tree, remove_tree, write_bytes_durably
from ..core.jsonio import dumps_pretty
from ..errors import BadInput, CorruptArtifact, MlstageError

FORMAT = "mlstage-serving/1"


class DeployRefused(MlstageError):
    """A gate refused the deployment (exit 1): not blessed, or blessed for another model."""

    exit_code = 1


@dataclass
class DeployResult:
    registry: Path
    name: str
    version: int
    model: str
    action: str
    up_to_date: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "registry": str(self.registry),
            "name": self.name,
            "version": self.version,
            "model": self.model,
            "action": self.action,
            "up_to_date": self.up_to_date,
            "exit_code": 0,
        }


def read_serving(folder: Path) -> dict[str, Any] | None:
    path = folder / "serving.json"
    if not path.exists():
        return None
    if not path.is_file() or path.is_symlink() or path.stat().st_size > (16 << 20):
        raise BadInput("serving.json must be a regular file of a pointer's size", file=str(path))
    try:
        doc = json.loads(path.read_text())
    except ValueError as e:
        raise BadInput(f"serving.json is not valid JSON: {e}", file=str(path)) from None
    if doc.get("format") != FORMAT or not isinstance(doc.get("version"), int):
        raise BadInput(f"not a {FORMAT} file", file=str(path))
    return doc


def versions(folder: Path) -> dict[int, str]:
    """Version number -> model id, for every complete version directory."""
    out = {}
    for p in folder.iterdir() if folder.exists() else []:
        if p.is_dir() and p.name.isdigit() and (p / MANIFEST).exists():
            try:
                out[int(p.name)] = json.loads((p / MANIFEST).read_text())["id"]
            except (ValueError, KeyError):
                continue
    return dict(sorted(out.items()))


def model_names(registry: Path) -> list[str]:
    """Model folders: those with a serving.json."""
    if not registry.exists():
        return []
    return sorted(
        p.name for p in registry.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / "serving.json").exists()
    )  # fmt: skip


def choose_name(registry: Path, name: str | None) -> str:
    if name is not None:
        if not name or name.startswith(".") or "/" in name:
            raise BadInput(f"--name {name!r}: a model name is a plain directory name")
        return name
    names = model_names(registry)
    if len(names) == 1:
        return names[0]
    if not names:
        raise BadInput("the registry has no model yet: give --name", file=str(registry))
    raise BadInput(
        f"the registry has several models ({', '.join(names)}): give --name", file=str(registry)
    )


def _write_serving(folder: Path, doc: dict[str, Any]) -> None:
    tmp = folder / f".serving.json.{os.getpid()}"
    write_bytes_durably(tmp, dumps_pretty(doc).encode())
    os.replace(tmp, folder / "serving.json")
    fsync_path(folder)


def _point(
    folder: Path,
    serving: dict[str, Any] | None,
    version: int,
    model: str,
    action: str,
    message: str,
    evaluation: str | None = None,
) -> dict:
    doc = serving or {"format": FORMAT, "version": version, "history": []}
    doc["version"] = version
    entry = {
        "version": version,
        "model": model,
        "at": utc_now(),
        "action": action,
        "message": message,
    }
    # The evaluation that let the model in: `monitor --evaluation REGISTRY/NAME` compares
    # live traffic with the evaluation of the version actually served.
    evaluation = evaluation or served_evaluation(doc, version)
    if evaluation:
        entry["evaluation"] = evaluation
    doc["history"].append(entry)
    _write_serving(folder, doc)
    return doc


def served_evaluation(serving: dict[str, Any] | None, version: int | None = None) -> str | None:
    """The id of the evaluation recorded for `version` (default: the one served), if any."""
    if not serving:
        return None
    version = serving["version"] if version is None else version
    for h in reversed(serving["history"]):
        if h["version"] == version and h.get("evaluation"):
            return h["evaluation"]
    return None


def deploy(
    store,
    model_ref: str,
    evaluation_ref: str | None,
    registry: Path,
    *,
    name: str | None = None,
    allow_unblessed: bool = False,
    message: str = "",
) -> DeployResult:
    from .refs import load_input

    model_path, model_manifest, _ = load_input(store, model_ref, "model", ("model",))
    model_id = model_manifest["id"]
    action = "deploy"
    evaluation_id = None
    if evaluation_ref is None and not allow_unblessed:
        raise BadInput("give --evaluation EVALUATION (or --allow-unblessed, which is recorded)")
    if evaluation_ref is not None:
        eval_path, _, eval_in = load_input(store, evaluation_ref, "evaluation", ("evaluation",))
        blessing = json.loads((eval_path / "blessing.json").read_text())
        if blessing["model"] != model_id:
            if not allow_unblessed:
                raise DeployRefused(
                    f"refused: the evaluation is of model {blessing['model'][:12]}, not of {model_id[:12]}"
                )
            action = "deploy-unblessed"
        else:
            evaluation_id = eval_in.id  # recorded in serving.json for `monitor`
            if not blessing["blessed"]:
                if not allow_unblessed:
                    failed = [c for c in blessing["checks"] if c["passed"] is False]
                    what = ", ".join(
                        f"{c['metric']}{' on ' + c['slice'] if c['slice'] else ''}"
                        for c in failed[:3]
                    )
                    raise DeployRefused(
                        f"refused: the model is not blessed ({what} failed); --allow-unblessed overrides, on record"
                    )
                action = "deploy-unblessed"
    else:
        action = "deploy-unblessed"
    registry.mkdir(parents=True, exist_ok=True)
    name = choose_name(registry, name)
    folder = registry / name
    folder.mkdir(exist_ok=True)
    with file_lock(folder / ".lock"):
        serving = read_serving(folder)
        have = versions(folder)
        if serving and have.get(serving["version"]) == model_id:
            return DeployResult(
                registry, name, serving["version"], model_id, "none", up_to_date=True
            )
        existing = [v for v, m in have.items() if m == model_id]
        if existing:  # already in the registry: point back at it rather than copy it again
            version = existing[-1]
            action = "redeploy" if action == "deploy" else action
            _point(folder, serving, version, model_id, action, message, evaluation_id)
            return DeployResult(registry, name, version, model_id, action)
        version = max(have, default=0) + 1
        for leftover in folder.glob(".v*.tmp"):
            remove_tree(leftover)  # a version copy a killed deploy never finished
        tmp = folder / f".v{version}.tmp"
        tmp.mkdir()
        # Real copies, not hardlinks: a registry is self-contained (it may be shipped to a
        # serving host), and damage to one copy must not reach the store or other versions.
        for f in [x["path"] for x in model_manifest["files"]] + [MANIFEST]:
            shutil.copyfile(model_path / f, tmp / f, follow_symlinks=False)
            os.chmod(tmp / f, 0o444)
        copied = check_files(tmp, model_manifest)  # the copy is what will be served
        if copied:
            remove_tree(tmp)
            raise CorruptArtifact(f"{copied[0]}: the copy into the registry differs from the model")
        fsync_tree(tmp)
        os.rename(tmp, folder / str(version))
        fsync_path(folder)
        _point(folder, serving, version, model_id, action, message, evaluation_id)
    store.record_write(folder / str(version), read_manifest(folder / str(version)))
    return DeployResult(registry, name, version, model_id, action)


def rollback(
    registry: Path, *, name: str | None = None, to: int | None = None, message: str = ""
) -> DeployResult:
    name = choose_name(registry, name)
    folder = registry / name
    if not (folder / "serving.json").exists():  # before the lock, which would create the folder
        raise BadInput("nothing is served yet: no serving.json", file=str(folder))
    with file_lock(folder / ".lock"):
        serving = read_serving(folder)
        if serving is None:
            raise BadInput("nothing is served yet: no serving.json", file=str(folder))
        have = versions(folder)
        if to is None:
            earlier = [
                h["version"] for h in serving["history"] if h["version"] != serving["version"]
            ]
            if not earlier:
                raise BadInput(
                    "no earlier version in the history to roll back to", file=str(folder)
                )
            to = earlier[-1]
        if to not in have:
            raise BadInput(
                f"no version {to}; the registry has: {', '.join(map(str, have)) or 'none'}",
                file=str(folder),
            )
        if to == serving["version"]:
            return DeployResult(registry, name, to, have[to], "none", up_to_date=True)
        _point(folder, serving, to, have[to], "rollback", message)
    return DeployResult(registry, name, to, have[to], "rollback")
