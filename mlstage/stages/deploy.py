"""`deploy`: put a blessed model into the registry and point a label at it (`stable`
by default; a canary, a shadow); `promote`; `rollback`.

A version is copied whole beside its place (real copies, verified), checked in a real
server (`serving.check`), and renamed in; then `serving.json` is replaced by rename
(`store.registry` owns both formats), all under `REGISTRY/NAME/.lock`, so a reader (the
server) never sees half of either, and a version that fails its check is never pointed at.
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
from ..core.s3url import as_s3, is_s3
from ..errors import BadInput, CorruptArtifact, ExitCode, MlstageError, opt
from ..model.evaluation_files import read_blessing
from ..store.registry import (
    CANARY,
    SHADOW,
    STABLE,
    check_label,
    choose_name,
    entry_label,
    labels_of,
    point,
    pointed,
    read_serving,
    unlabel,
    versions,
)


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
    label: str = STABLE
    check: Any = None  # the pre-push check's summary, "skipped", or None (nothing pointed)

    def as_json(self) -> dict[str, Any]:
        return {
            "registry": str(self.registry),
            "name": self.name,
            "version": self.version,
            "model": self.model,
            "label": self.label,
            "action": self.action,
            "up_to_date": self.up_to_date,
            "check": self.check,
            "exit_code": 0,
        }


@dataclass
class CheckOptions:
    """The pre-push check: `skip` is recorded in the history; `latency_ms` bounds the
    single-row requests' p95; `rows` is the sample's size."""

    skip: bool = False
    latency_ms: float = 500.0
    rows: int = 200


def deploy(
    store,
    model_ref: str,
    evaluation_ref: str | None,
    registry: Path,
    *,
    name: str | None = None,
    allow_unblessed: bool = False,
    message: str = "",
    label: str = STABLE,
    canary: float | None = None,
    shadow: bool = False,
    check: CheckOptions | None = None,
) -> DeployResult:
    """Point `label` (or a canary taking `canary` percent of unlabelled traffic, or a
    shadow) at the model's version, copying it in first when the registry lacks it."""
    check = check or CheckOptions()
    label = _label_for(label, canary, shadow)
    model_path, model_manifest, action, evaluation_id, eval_manifest = _gate(
        store, model_ref, evaluation_ref, allow_unblessed
    )
    model_id = model_manifest["id"]
    if is_s3(registry):  # object storage: conditional writes instead of a lock and rename
        if label != STABLE:
            raise BadInput(
                f"{opt('registry')} {registry}: only the {STABLE} label is deployed to object"
                " storage so far (no --label, --canary or --shadow there)"
            )
        return _deploy_s3(store, model_path, model_manifest, action, evaluation_id,
                          eval_manifest, as_s3(registry), name, message, check)  # fmt: skip
    held = owner(registry / "x")  # the registry itself, or a folder above it
    if held is not None and held[0] != "a registry model folder":
        raise BadInput(
            f"{opt('registry')} {registry}: is inside {held[0]} {held[1]}; keep registries outside"
        )
    registry.mkdir(parents=True, exist_ok=True)
    name = choose_name(registry, name)
    folder = registry / name
    folder.mkdir(exist_ok=True)
    if canary is not None:
        action = action.replace("deploy", "canary")
    elif shadow:
        action = action.replace("deploy", "shadow")
    with file_lock(folder / ".lock"):
        serving = read_serving(folder)
        labels = labels_of(serving)
        if label != STABLE and serving is None:
            raise BadInput(
                f"nothing is served yet: deploy a {STABLE} version before a {label}",
                file=str(folder),
            )
        # versions holding this model whose files are intact: a damaged copy (or one whose
        # model file was replaced by a link) is never pointed at again; a fresh copy is made
        have = versions(folder)
        same = [v for v, m in have.items() if m == model_id]
        current = labels.get(label)
        if current in same:  # the label's copy first, then the newest
            same.remove(current)
            same.append(current)
        # only the copy that would be pointed at is re-hashed
        copy = next(
            (v for v in reversed(same) if not check_files(folder / str(v), model_manifest)), None
        )
        if label in (CANARY, SHADOW) and copy is not None and copy == labels.get(STABLE):
            raise BadInput(
                f"version {copy} (model {model_id[:12]}) is already {STABLE}: a {label} of it"
                " compares nothing",
                file=str(folder),
            )
        running = serving.get(CANARY) if serving and label == CANARY else None
        if (
            copy is not None
            and copy == current
            and (running is None or running["percent"] == canary)
        ):
            return DeployResult(registry, name, copy, model_id, "none", True, label)
        if copy is not None:  # already in the registry: point back at it, not copy it again
            version, where, tmp = copy, folder / str(copy), None
            if action == "deploy":
                action = "redeploy"
        else:
            # the next number no folder holds yet (a user's folder named 3 is left alone)
            taken = [int(p.name) for p in folder.iterdir() if p.name.isdigit()]
            version = max([*have, *taken], default=0) + 1
            tmp = where = _copy_in(folder, version, model_path, model_manifest)
        try:
            outcome = _pre_push(store, where, eval_manifest, check)
        except BaseException:
            if tmp is not None:
                remove_tree(tmp)
            raise
        if tmp is not None:
            os.rename(tmp, folder / str(version))
            fsync_path(folder)
        doc = serving
        if doc is not None and label == CANARY:
            doc[CANARY] = {"version": version, "percent": canary}
        elif doc is not None and label == SHADOW:
            doc[SHADOW] = {"version": version}
        point(folder, doc, version, model_id, action, message, evaluation_id,
              label=label, extra={"check": outcome})  # fmt: skip
        if doc is not None and label == STABLE:
            _end_runs_of(folder, doc, version, model_id)
    if tmp is not None:
        store.record_write(folder / str(version), read_manifest(folder / str(version)))
    return DeployResult(registry, name, version, model_id, action, False, label, outcome)


def _gate(store, model_ref: str, evaluation_ref: str | None, allow_unblessed: bool):
    """The model, and whether its evaluation lets it in: (model folder, manifest, action,
    evaluation id, evaluation manifest); DeployRefused (exit 1) when it does not."""
    from ..store.refs import load_input

    model_path, model_manifest, _ = load_input(store, model_ref, "model", ("model",))
    model_id = model_manifest["id"]
    action = "deploy"
    evaluation_id = eval_manifest = None
    if evaluation_ref is None and not allow_unblessed:
        raise BadInput(
            f"give {opt('evaluation_ref', '--evaluation')} (or {opt('allow_unblessed')}, which is recorded)"
        )
    if evaluation_ref is not None:
        eval_path, eval_manifest, eval_in = load_input(
            store, evaluation_ref, "evaluation", ("evaluation",)
        )
        blessing = read_blessing(eval_path)
        if blessing["model"] != model_id:
            if not allow_unblessed:
                raise DeployRefused(
                    f"refused: the evaluation is of model {blessing['model'][:12]}, not of {model_id[:12]}"
                )
            action, eval_manifest = "deploy-unblessed", None
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
    return model_path, model_manifest, action, evaluation_id, eval_manifest


def _label_for(label: str, canary: float | None, shadow: bool) -> str:
    if canary is not None and shadow:
        raise BadInput(f"{opt('canary')} and {opt('shadow')} are two deploys: give one")
    if canary is not None or shadow:
        if label != STABLE:
            raise BadInput(
                f"{opt('canary')} and {opt('shadow')} set their own label; leave out {opt('label')}"
            )
        if canary is not None and not (0 < canary <= 100):  # NaN fails too
            raise BadInput(f"{opt('canary')} {canary}: a percentage in (0, 100]")
        return CANARY if canary is not None else SHADOW
    check_label(label)
    if label in (CANARY, SHADOW):
        raise BadInput(
            f"{opt('label')} {label}: use {opt(label)} to start a {label}"
            + (" (with its percentage)" if label == CANARY else "")
        )
    return label


def _copy_in(folder: Path, version: int, model_path: Path, model_manifest: dict) -> Path:
    """A verified copy of the model beside its place (`.vN.tmp`), for the caller to rename in."""
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
    return tmp


def _pre_push(store, where: Path, eval_manifest, check: CheckOptions):
    """The pre-push check's summary for the history ("skipped" when skipped); a failure
    is DeployRefused (exit 1) with its reason."""
    from ..model.artifact import read_signature
    from ..serving.check import CheckFailed, rows_from_evaluation, rows_from_signature, run_check

    if check.skip:
        return "skipped"
    signature = read_signature(where)
    frame, source = None, "evaluation"
    if eval_manifest is not None:
        frame = rows_from_evaluation(store, eval_manifest, signature, check.rows)
    if frame is None:
        frame, source = rows_from_signature(signature, check.rows), "signature"
    try:
        return run_check(where, frame, source=source, latency_ms=check.latency_ms)
    except CheckFailed as e:
        raise DeployRefused(
            f"refused: the pre-push check failed: {e} ({opt('skip_check')} skips it, on record)"
        ) from None


def _end_runs_of(folder: Path, doc: dict, version: int, model_id: str) -> None:
    """A canary or shadow of the version now stable has nothing left to compare."""
    for run in (CANARY, SHADOW):
        if (doc.get(run) or {}).get("version") == version:
            unlabel(folder, doc, run, model_id, f"end-{run}", f"version {version} is now {STABLE}")


def promote(
    registry: Path, *, name: str | None = None, label: str | None = None, message: str = ""
) -> DeployResult:
    """Point `stable` at the canary's version (or the shadow's, or `label`'s) and end the
    canary: its version was checked when it was deployed, and loads verify its files."""
    name = choose_name(registry, name)
    folder = registry / name
    if not (folder / "serving.json").exists():
        raise BadInput("nothing is served yet: no serving.json", file=str(folder))
    with file_lock(folder / ".lock"):
        serving = read_serving(folder)
        assert serving is not None
        labels = labels_of(serving)
        if label is None:
            label = next((x for x in (CANARY, SHADOW) if x in labels), None)
            if label is None:
                raise BadInput(
                    f"no canary or shadow runs: nothing to promote ({opt('label')} names another)",
                    file=str(folder),
                )
        elif label not in labels:
            raise BadInput(f"no label {label!r}; labels: {', '.join(labels)}", file=str(folder))
        version, have = labels[label], versions(folder)
        if version not in have:
            raise BadInput(
                f"label {label} points to version {version}, which is gone", file=str(folder)
            )
        if version == serving["version"]:
            _end_runs_of(folder, serving, version, have[version])
            return DeployResult(registry, name, version, have[version], "none", True)
        damaged = check_files(folder / str(version), read_manifest(folder / str(version)))
        if damaged:
            raise CorruptArtifact(
                f"version {version} is damaged ({damaged[0]}): not promoted; deploy its model again"
            )
        checked = next((h.get("check") for h in reversed(serving["history"])
                        if h["version"] == version and "check" in h), "skipped")  # fmt: skip
        point(folder, serving, version, have[version], "promote", message,
              extra={"from": label, "check": checked})  # fmt: skip
        _end_runs_of(folder, serving, version, have[version])
    return DeployResult(registry, name, version, have[version], "promote", check=checked)


def rollback(
    registry: Path,
    *,
    name: str | None = None,
    to: int | None = None,
    message: str = "",
    label: str = STABLE,
) -> DeployResult:
    """Point `label` back at its previous version (or `to`); a canary or a shadow ends."""
    url = as_s3(registry)
    if url is not None:  # object storage: stable only so far (no canary or shadow there)
        if label != STABLE:
            raise BadInput(f"--label {label}: a registry in object storage has only stable")
        from ..store import s3registry as s3r

        name, v, model, how = s3r.rollback(url, name, to, message)
        return DeployResult(url, name, v, model, how, how == "none", STABLE)  # type: ignore[arg-type]
    name = choose_name(registry, name)
    folder = registry / name
    if not (folder / "serving.json").exists():  # before the lock, which would create the folder
        raise BadInput("nothing is served yet: no serving.json", file=str(folder))
    with file_lock(folder / ".lock"):
        serving = read_serving(folder)
        if serving is None:
            raise BadInput("nothing is served yet: no serving.json", file=str(folder))
        have, labels = versions(folder), labels_of(serving)
        if label not in labels:
            raise BadInput(f"no label {label!r}; labels: {', '.join(labels)}", file=str(folder))
        if label in (CANARY, SHADOW):
            if to is not None:
                raise BadInput(f"a {label} ends on rollback: {opt('to')} is for other labels")
            v = labels[label]
            unlabel(folder, serving, label, have.get(v, "?"), "rollback", message)
            return DeployResult(registry, name, v, have.get(v, "?"), f"end-{label}", label=label)
        if to is None:
            earlier = [
                h["version"]
                for h in serving["history"]
                if entry_label(h) == label and h["version"] != labels[label]
            ]
            if not earlier:
                raise BadInput(
                    f"no earlier version of {label} in the history to roll back to",
                    file=str(folder),
                )
            to = earlier[-1]
        if to not in have:
            raise BadInput(
                f"no version {to}; the registry has: {', '.join(map(str, have)) or 'none'}",
                file=str(folder),
            )
        if to == labels[label]:
            return DeployResult(registry, name, to, have[to], "none", True, label)
        point(folder, serving, to, have[to], "rollback", message, label=label)
        if label == STABLE:
            _end_runs_of(folder, serving, to, have[to])
    return DeployResult(registry, name, to, have[to], "rollback", label=label)


def _deploy_s3(store, model_path: Path, model_manifest: dict, action: str,
               evaluation_id: str | None, eval_manifest, registry, name: str | None,
               message: str, check: CheckOptions) -> DeployResult:  # fmt: skip
    """Deploy into a registry in object storage (`store.s3registry` has the protocol): a
    version number claimed with If-None-Match (a loser takes the next), serving.json
    replaced with If-Match (a loser re-reads it and adds its entry)."""
    from ..store import s3registry as s3r

    s3r.client.probe(registry)
    name = s3r.choose_name(registry, name)
    folder = registry.join(name)
    model_id = model_manifest["id"]
    outcome, known, claimed = None, {}, None
    for _ in range(200):
        doc, etag = s3r.read_serving_s3(folder)
        known, highest = s3r.versions_s3(folder, known)
        same = [v for v, m in known.items() if m == model_id]
        if claimed is None and doc is not None and doc["version"] in same:
            return DeployResult(registry, name, doc["version"], model_id, "none", True)
        if outcome is None:
            outcome = _pre_push(store, model_path, eval_manifest, check)
        if claimed is not None:
            version, how = claimed, action
        elif same:  # already in the registry: point back at it
            version, how = same[-1], ("redeploy" if action == "deploy" else action)
        else:
            version = highest + 1
            while not s3r.claim_version(folder, version, model_id):
                version += 1  # another deploy holds it: the next number
            s3r.upload_version(folder.join(str(version)), model_path, model_manifest)
            claimed, how = version, action
            known[version] = model_id
        doc = pointed(doc, version, model_id, how, message, evaluation_id,
                      label=STABLE, extra={"check": outcome})  # fmt: skip
        if s3r.put_serving(folder, doc, etag):
            if claimed is not None:
                store.record_write(folder.join(str(version)), model_manifest)
            return DeployResult(registry, name, version, model_id, how, False, STABLE, outcome)
    raise BadInput(f"{folder}: serving.json kept changing; 200 tries failed")
