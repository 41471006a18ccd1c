"""What a deploy, a promotion or a rollback does to a registry model's `serving.json`:
decided from the file as read and the versions present (number -> model id), as the new
file, the action, or an error (BadInput). Nothing here reads or writes.

One set of rules for both registries: a local one decides under its lock and replaces the
file by rename (`registry.update`); one in object storage decides again from the file
read anew whenever its If-Match write loses (`s3registry.update`). Either way each
change is decided on the very file it replaces, so concurrent writers end as they would
one at a time, and no history entry is lost.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import BadInput, CorruptArtifact, opt
from .registry import CANARY, SHADOW, STABLE, entry_label, labels_of, pointed, without_label

# version -> what is wrong with its copy's files (empty: intact); asked only of the copy
# about to be pointed at
Damage = Callable[[int], list[str]]
RUNS = (CANARY, SHADOW)


@dataclass
class Decision:
    """The outcome: `doc` is the serving.json to write (None: leave it); action "none"
    means up to date."""

    version: int
    model: str
    action: str
    label: str = STABLE
    doc: dict[str, Any] | None = None
    check: Any = None

    @property
    def up_to_date(self) -> bool:
        return self.action == "none"


# (serving.json as read or None, version -> model id) -> the outcome: what a registry's
# `update` asks of these rules, once under a lock or again after each lost write
Decide = Callable[[dict[str, Any] | None, dict[int, str]], Decision]


# -- deploy -----------------------------------------------------------------------------
def deploy_target(
    doc: dict[str, Any] | None,
    have: dict[int, str],
    *,
    model: str,
    label: str,
    canary: float | None,
    damaged: Damage,
    where: str,
    mine: int | None = None,
) -> tuple[int | None, bool]:
    """(the version of `model` to point `label` at, None when a new copy is needed;
    whether the label is there already: up to date). The label's own copy comes first,
    then `mine` (a copy this deploy added), then the newest; a damaged copy is never
    pointed at again."""
    if label != STABLE and doc is None:
        raise BadInput(f"nothing is served yet: deploy a {STABLE} version before a {label}",
                       file=where)  # fmt: skip
    labels = labels_of(doc)
    current = labels.get(label)
    same = sorted((v for v, m in have.items() if m == model),
                  key=lambda v: (v == current, v == mine, v), reverse=True)  # fmt: skip
    target = next((v for v in same if not damaged(v)), None)
    if label in RUNS and target is not None and target == labels.get(STABLE):
        raise BadInput(
            f"version {target} (model {model[:12]}) is already {STABLE}: a {label} of it"
            " compares nothing",
            file=where,
        )
    running = doc.get(CANARY) if doc and label == CANARY else None
    same_run = running is None or running["percent"] == canary
    return target, target is not None and target == current and same_run


def deployed(
    doc: dict[str, Any] | None,
    *,
    version: int,
    model: str,
    gate_action: str,
    reused: bool,
    label: str,
    canary: float | None,
    message: str,
    evaluation: str | None,
    check: Any,
) -> Decision:
    """`label` pointed at `version` (a canary or a shadow started; a run of the version
    that becomes stable ended), with its history entry and the pre-push check's outcome."""
    action = gate_action.replace("deploy", label) if label in RUNS else gate_action
    if reused and action == "deploy":
        action = "redeploy"
    new = copy.deepcopy(doc)
    if new is not None and label == CANARY:
        new[CANARY] = {"version": version, "percent": canary}
    elif new is not None and label == SHADOW:
        new[SHADOW] = {"version": version}
    new = pointed(new, version, model, action, message, evaluation, label=label,
                  extra={"check": check})  # fmt: skip
    if label == STABLE:
        _end_runs_of(new, version, model)
    return Decision(version, model, action, label, new, check)


def _end_runs_of(doc: dict[str, Any], version: int, model: str) -> bool:
    """A canary or shadow of the version now stable has nothing left to compare: ended,
    on record. Whether any was."""
    ended = False
    for run in RUNS:
        if (doc.get(run) or {}).get("version") == version:
            without_label(doc, run, model, f"end-{run}", f"version {version} is now {STABLE}")
            ended = True
    return ended


# -- promote ----------------------------------------------------------------------------
def promoted(
    doc: dict[str, Any] | None,
    have: dict[int, str],
    *,
    label: str | None,
    message: str,
    damaged: Damage,
    where: str,
) -> Decision:
    """`stable` pointed at the canary's version (or the shadow's, or `label`'s), the run
    ended; the history entry keeps the check the version passed when it was deployed."""
    if doc is None:
        raise BadInput("nothing is served yet: no serving.json", file=where)
    labels = labels_of(doc)
    if label is None:
        label = next((x for x in RUNS if x in labels), None)
        if label is None:
            raise BadInput(
                f"no canary or shadow runs: nothing to promote ({opt('label')} names another)",
                file=where,
            )
    elif label not in labels:
        raise BadInput(f"no label {label!r}; labels: {', '.join(labels)}", file=where)
    version = labels[label]
    if version not in have:
        raise BadInput(f"label {label} points to version {version}, which is gone", file=where)
    model = have[version]
    new = copy.deepcopy(doc)
    if version == doc["version"]:
        ended = _end_runs_of(new, version, model)
        return Decision(version, model, "none", STABLE, new if ended else None)
    bad = damaged(version)
    if bad:
        raise CorruptArtifact(
            f"version {version} is damaged ({bad[0]}): not promoted; deploy its model again"
        )
    checked = next((h.get("check") for h in reversed(doc["history"])
                    if h["version"] == version and "check" in h), "skipped")  # fmt: skip
    pointed(new, version, model, "promote", message, extra={"from": label, "check": checked})
    _end_runs_of(new, version, model)
    return Decision(version, model, "promote", STABLE, new, checked)


# -- roll back --------------------------------------------------------------------------
def rolled_back(
    doc: dict[str, Any] | None,
    have: dict[int, str],
    *,
    label: str,
    to: int | None,
    message: str,
    where: str,
) -> Decision:
    """`label` pointed back at its previous version in the history (or `to`); a canary or
    a shadow simply ends."""
    if doc is None:
        raise BadInput("nothing is served yet: no serving.json", file=where)
    labels = labels_of(doc)
    if label not in labels:
        raise BadInput(f"no label {label!r}; labels: {', '.join(labels)}", file=where)
    new = copy.deepcopy(doc)
    if label in RUNS:
        if to is not None:
            raise BadInput(f"a {label} ends on rollback: {opt('to')} is for other labels")
        v = labels[label]
        without_label(new, label, have.get(v, "?"), "rollback", message)
        return Decision(v, have.get(v, "?"), f"end-{label}", label, new)
    if to is None:
        earlier = [h["version"] for h in doc["history"]
                   if entry_label(h) == label and h["version"] != labels[label]]  # fmt: skip
        if not earlier:
            raise BadInput(f"no earlier version of {label} in the history to roll back to",
                           file=where)  # fmt: skip
        to = earlier[-1]
    if to not in have:
        raise BadInput(
            f"no version {to}; the registry has: {', '.join(map(str, have)) or 'none'}",
            file=where,
        )
    if to == labels[label]:
        return Decision(to, have[to], "none", label)
    pointed(new, to, have[to], "rollback", message, label=label)
    if label == STABLE:
        _end_runs_of(new, to, have[to])
    return Decision(to, have[to], "rollback", label, new)
