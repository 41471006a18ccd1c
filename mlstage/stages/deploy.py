"""`deploy`: put a blessed model into the registry and point a label at it (`stable`
by default; a canary, a shadow); `promote`; `rollback`.

What each changes in `serving.json` is decided by `store.release`, the same rules for a
local registry and one in object storage; this module makes the version present and
checked, and hands the decision to the registry's `update`:

- local: a version is copied whole beside its place (real copies, verified), checked in
  a real server (`serving.check`), and renamed in; then `serving.json` is replaced by
  rename, all under `REGISTRY/NAME/.lock` (`store.registry.update`), so a reader (the
  server) never sees half of either, and a version that fails its check is never
  pointed at;
- object storage: the model is checked from its local files, then a version number is
  claimed and the files uploaded; `serving.json` is replaced with If-Match, and decided
  anew from the file read again when another writer won (`store.s3registry.update`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ..core.artifact import MANIFEST, check_files, read_manifest
from ..core.fsutil import fsync_path, fsync_tree, remove_tree
from ..core.outputs import owner
from ..core.s3url import S3Url, as_s3, cache_root
from ..errors import BadInput, CorruptArtifact, ExitCode, MlstageError, opt
from ..model.artifact import SIGNATURE_FILE, read_signature
from ..model.evaluation_files import read_blessing
from ..store.registry import (
    CANARY,
    SHADOW,
    STABLE,
    check_label,
    choose_name,
    damage_of,
    labels_of,
    update,
)
from ..store.release import (
    Damage,
    Decide,
    Decision,
    deploy_target,
    deployed,
    promoted,
    rolled_back,
)


class DeployRefused(MlstageError):
    """A gate refused the deployment (exit 1): not blessed, or blessed for another model."""

    exit_code = ExitCode.GATE


@dataclass
class DeployResult:
    registry: Path | S3Url
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
    allow_new_signature: bool = False,
) -> DeployResult:
    """Point `label` (or a canary taking `canary` percent of unlabelled traffic, or a
    shadow) at the model's version, copying it in first when the registry lacks it; a
    model whose task, label or inputs differ from the stable version's is refused unless
    `allow_new_signature` (its clients would break)."""
    label = _label_for(label, canary, shadow)
    path, manifest, action, evaluation_id, eval_manifest = _gate(
        store, model_ref, evaluation_ref, allow_unblessed
    )
    req = _Request(path, manifest, action, evaluation_id, eval_manifest, label, canary,
                   message, check or CheckOptions(), allow_new_signature)  # fmt: skip
    # the history will name both: a gc running now must not take them meanwhile
    for named in (manifest, eval_manifest):
        if named is not None:
            store.hold(named)
    url = as_s3(registry)
    if url is not None:  # object storage: conditional writes instead of a lock and rename
        return _deploy_s3(store, req, url, name)
    held = owner(registry / "x")  # the registry itself, or a folder above it
    if held is not None and held[0] != "a registry model folder":
        raise BadInput(
            f"{opt('registry')} {registry}: is inside {held[0]} {held[1]}; keep registries outside"
        )
    registry.mkdir(parents=True, exist_ok=True)
    name = choose_name(registry, name)
    folder = registry / name
    folder.mkdir(exist_ok=True)

    def add(target: int | None, have: dict[int, str]) -> tuple[int, Any]:
        """The version checked in a server and present: an intact copy already here, or
        a new one copied beside its place, checked, and renamed in."""
        if target is not None:
            return target, _pre_push(store, folder / str(target), req.eval_manifest, req.check)
        # the next number no folder holds yet (a user's folder named 3 is left alone)
        taken = [int(p.name) for p in folder.iterdir() if p.name.isdigit()]
        version = max([*have, *taken], default=0) + 1
        tmp = _copy_in(folder, version, req.path, req.manifest)
        try:
            outcome = _pre_push(store, tmp, req.eval_manifest, req.check)
        except BaseException:
            remove_tree(tmp)
            raise
        os.rename(tmp, folder / str(version))
        fsync_path(folder)
        added.append(version)
        return version, outcome

    added: list[int] = []

    def signature_of(version: int) -> dict[str, Any] | None:
        try:
            return read_signature(folder / str(version))
        except (OSError, ValueError):
            return None

    done = update(folder, req.step(damage_of(folder, req.manifest), str(folder), add, added,
                                   signature_of))  # fmt: skip
    if done.version in added:
        store.record_write(folder / str(done.version), read_manifest(folder / str(done.version)))
    return DeployResult(registry, name, done.version, done.model, done.action, done.up_to_date,
                        done.label, done.check)  # fmt: skip


# (the version to point at, None for a new copy; the versions present) -> the version
# now present and checked, and the check's outcome
Add = Callable[[int | None, dict[int, str]], tuple[int, Any]]


@dataclass
class _Request:
    """What a deploy asks: the model that passed the gate, and where to point it."""

    path: Path
    manifest: dict[str, Any]
    gate_action: str
    evaluation_id: str | None
    eval_manifest: dict[str, Any] | None
    label: str
    canary: float | None
    message: str
    check: CheckOptions
    allow_new_signature: bool = False

    def step(self, damaged: Damage, where: str, add: Add, added: list[int],
             signature_of: Callable[[int], dict[str, Any] | None]) -> Decide:  # fmt: skip
        """decide(serving, versions) for the registry's `update`: up to date, or the
        label pointed at a copy `add` makes present and checked (`added`: the versions
        this deploy copied in; a deploy that lost a race may point at one already)."""

        def decide(doc, have: dict[int, str]) -> Decision:
            model = self.manifest["id"]
            mine = added[-1] if added else None
            target, up_to_date = deploy_target(doc, have, model=model, label=self.label,
                                               canary=self.canary, damaged=damaged,
                                               where=where, mine=mine)  # fmt: skip
            if up_to_date:
                assert target is not None
                return Decision(target, model, "none", self.label)
            stable = labels_of(doc).get(STABLE)
            if stable is not None and have.get(stable) != model and not self.allow_new_signature:
                _same_signature(read_signature(self.path), signature_of(stable), stable, where)
            version, outcome = add(target, have)
            return deployed(doc, version=version, model=model, gate_action=self.gate_action,
                            reused=version not in added, label=self.label, canary=self.canary,
                            message=self.message, evaluation=self.evaluation_id,
                            check=outcome)  # fmt: skip

        return decide


def _same_signature(mine: dict[str, Any], served: dict[str, Any] | None, version: int,
                    where: str) -> None:  # fmt: skip
    """Refuse a model that its name's clients could not use: another task, label, or
    inputs (names and types) than the stable version's (None: unreadable, not checked)."""
    if not (isinstance(served, dict) and isinstance(served.get("inputs"), dict)
            and all(isinstance(i, dict) and "type" in i for i in served["inputs"].values())
            and isinstance(served.get("label"), dict) and "column" in served["label"]
            and "task" in served):  # fmt: skip
        return  # unreadable or damaged: nothing to compare with (the registry names damage)
    differ = []
    for what, a, b in (("task", served["task"], mine["task"]),
                       ("label", served["label"]["column"], mine["label"]["column"])):  # fmt: skip
        if a != b:
            differ.append(f"{what} {a} -> {b}")
    was = {c: i["type"] for c, i in served["inputs"].items()}
    now = {c: i["type"] for c, i in mine["inputs"].items()}
    if was != now:
        # what a client of `served` sends still serves: an input no longer taken is
        # ignored (Model.coerce), an int is read as a float, any value as a string, a
        # date as a datetime; a new input or a narrower type is what fails (400)
        widens = {("int", "float"), ("date", "datetime")}
        new = [c for c in now if c not in was]
        retyped = [f"{c} {was[c]} -> {now[c]}" for c in was if c in now and was[c] != now[c]
                   and now[c] != "string" and (was[c], now[c]) not in widens]  # fmt: skip
        differ += ([f"new inputs: {', '.join(new[:5])}"] if new else []) + (
            [f"inputs retyped: {', '.join(retyped[:5])}"] if retyped else []
        )
    if differ:
        raise BadInput(
            f"the model does not fit the clients of version {version}, which is {STABLE}:"
            f" {'; '.join(differ)}. Deploy it under another {opt('name')}, or pass"
            f" {opt('allow_new_signature')} if every client has changed",
            file=where,
        )


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


def _pre_push(store, where: Path, eval_manifest, check: CheckOptions, scratch: Path | None = None):
    """The pre-push check's summary for the history ("skipped" when skipped); a failure
    is DeployRefused (exit 1) with its reason. The check's server runs from a folder in
    `scratch` (default: the registry `where` is a version of)."""
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
        return run_check(where, frame, source=source, latency_ms=check.latency_ms,
                         scratch_in=scratch)  # fmt: skip
    except CheckFailed as e:
        raise DeployRefused(
            f"refused: the pre-push check failed: {e} ({opt('skip_check')} skips it, on record)"
        ) from None


def _open(registry: Path, name: str | None):
    """A served model's registry, name, and its `update` and `damaged` bound to it, local
    or in object storage."""
    url = as_s3(registry)
    if url is not None:
        from ..store import s3registry as s3r

        s3r.client.probe(url)
        name = s3r.choose_name(url, name)
        folder = url.join(name)
        return url, name, str(folder), partial(s3r.update, folder), s3r.damage_of(folder)
    name = choose_name(registry, name)
    local = registry / name
    if not (local / "serving.json").exists():  # before the lock, which would create the folder
        raise BadInput("nothing is served yet: no serving.json", file=str(local))
    return registry, name, str(local), partial(update, local), damage_of(local)


def promote(
    registry: Path, *, name: str | None = None, label: str | None = None, message: str = ""
) -> DeployResult:
    """Point `stable` at the canary's version (or the shadow's, or `label`'s) and end the
    canary: its version was checked when it was deployed, and its files are checked now."""
    reg, name, place, change, damaged = _open(registry, name)
    done = change(lambda doc, have: promoted(doc, have, label=label, message=message,
                                             damaged=damaged, where=place))  # fmt: skip
    return DeployResult(reg, name, done.version, done.model, done.action, done.up_to_date,
                        check=done.check)  # fmt: skip


def rollback(
    registry: Path,
    *,
    name: str | None = None,
    to: int | None = None,
    message: str = "",
    label: str = STABLE,
) -> DeployResult:
    """Point `label` back at its previous version (or `to`); a canary or a shadow ends."""
    reg, name, place, change, _ = _open(registry, name)
    done = change(lambda doc, have: rolled_back(doc, have, label=label, to=to, message=message,
                                                where=place))  # fmt: skip
    return DeployResult(reg, name, done.version, done.model, done.action, done.up_to_date,
                        done.label)  # fmt: skip


def _deploy_s3(store, req: _Request, registry: S3Url, name: str | None) -> DeployResult:
    """Deploy into a registry in object storage (`store.s3registry` has the protocol): the
    model checked once (from its local files, which the upload verifies first), a version
    number claimed with If-None-Match (a loser takes the next), serving.json replaced with
    If-Match (a loser reads it again and decides anew)."""
    from ..store import s3registry as s3r
    from ..store.s3outputs import enclosing

    s3r.client.probe(registry)
    held = enclosing(registry.join("x"))  # the registry itself, or a prefix above it
    if held is not None and not held.startswith("the registry model folder"):
        raise BadInput(f"{opt('registry')} {registry}: is inside {held}; keep registries outside")
    name = s3r.choose_name(registry, name)
    folder = registry.join(name)
    checked: list[Any] = []  # the check's outcome, once: the model is the same each try
    added: list[int] = []
    scratch = Path(cache_root(folder))

    def add(target: int | None, have: dict[int, str]) -> tuple[int, Any]:
        if not checked:
            scratch.mkdir(parents=True, exist_ok=True)
            checked.append(_pre_push(store, req.path, req.eval_manifest, req.check, scratch))
        if target is None:
            target = s3r.add_version(folder, max([*have, *added], default=0), req.path,
                                     req.manifest)  # fmt: skip
            added.append(target)
        return target, checked[0]

    remote = s3r.damage_of(folder)

    def damaged(version: int) -> list[str]:
        return [] if version in added else remote(version)  # what it uploaded is intact

    def signature_of(version: int) -> dict[str, Any] | None:
        blob = s3r.client.get(folder.join(str(version), SIGNATURE_FILE))
        try:
            return json.loads(blob.data) if blob is not None else None
        except ValueError:
            return None

    done = s3r.update(folder, req.step(damaged, str(folder), add, added, signature_of))
    if done.version in added:
        store.record_write(folder.join(str(done.version)), req.manifest)
    return DeployResult(registry, name, done.version, done.model, done.action, done.up_to_date,
                        done.label, done.check)  # fmt: skip
