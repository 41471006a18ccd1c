"""`deploy`: put a blessed model into the registry and point its name at it; `rollback`.

A version is copied whole beside its place (real copies, verified) and renamed in, then
`serving.json` is replaced by rename (`store.registry` owns both formats), all under
`REGISTRY/NAME/.lock`, so a reader (the server) never sees half of either.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.artifact import MANIFEST, check_files, read_manifest
from ..core.fsutil import file_lock, fsync_path, fsync_tree, remove_tree
from ..core.outputs import owner
from ..errors import BadInput, CorruptArtifact, ExitCode, MlstageError, opt
from ..model.evaluation_files import read_blessing
from ..store.registry import choose_name, point, read_serving, versions


class DeployRefused(MlstageError):
    """A gate refused the deployment (exit 1): not blessed, or blessed for another model."""

    exit_code = ExitCode.GATE


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
    from ..store.refs import load_input

    model_path, model_manifest, _ = load_input(store, model_ref, "model", ("model",))
    model_id = model_manifest["id"]
    action = "deploy"
    evaluation_id = None
    if evaluation_ref is None and not allow_unblessed:
        raise BadInput(
            f"give {opt('evaluation_ref', '--evaluation')} (or {opt('allow_unblessed')}, which is recorded)"
        )
    if evaluation_ref is not None:
        eval_path, _, eval_in = load_input(store, evaluation_ref, "evaluation", ("evaluation",))
        blessing = read_blessing(eval_path)
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
                        f"refused: the model is not blessed ({what} failed); {opt('allow_unblessed')} overrides, on record"
                    )
                action = "deploy-unblessed"
    else:
        action = "deploy-unblessed"
    held = owner(registry / "x")  # the registry itself, or a folder above it
    if held is not None and held[0] != "a registry model folder":
        raise BadInput(
            f"{opt('registry')} {registry}: is inside {held[0]} {held[1]}; keep registries outside"
        )
    registry.mkdir(parents=True, exist_ok=True)
    name = choose_name(registry, name)
    folder = registry / name
    folder.mkdir(exist_ok=True)
    with file_lock(folder / ".lock"):
        serving = read_serving(folder)
        # versions holding this model whose files are intact: a damaged copy (or one whose
        # model file was replaced by a link) is never pointed at again; a fresh copy is made
        have = versions(folder)
        same = [v for v, m in have.items() if m == model_id]
        if serving and serving["version"] in same:  # the served copy first, then the newest
            same.remove(serving["version"])
            same.append(serving["version"])
        # only the copy that would be pointed at is re-hashed
        copy = next(
            (v for v in reversed(same) if not check_files(folder / str(v), model_manifest)), None
        )
        if serving and serving["version"] == copy:
            return DeployResult(
                registry, name, serving["version"], model_id, "none", up_to_date=True
            )
        if copy is not None:  # already in the registry: point back at it, not copy it again
            version = copy
            action = "redeploy" if action == "deploy" else action
            point(folder, serving, version, model_id, action, message, evaluation_id)
            return DeployResult(registry, name, version, model_id, action)
        # the next number no folder holds yet (a user's folder named 3 is left alone)
        taken = [int(p.name) for p in folder.iterdir() if p.name.isdigit()]
        version = max([*have, *taken], default=0) + 1
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
        point(folder, serving, version, model_id, action, message, evaluation_id)
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
        point(folder, serving, to, have[to], "rollback", message)
    return DeployResult(registry, name, to, have[to], "rollback")
