"""The model registry: `REGISTRY/NAME/<N>/` model copies (TF Serving's layout) and
`REGISTRY/NAME/serving.json`, which says which versions are served and keeps the history.

    {"format": "mlstage-serving/1", "version": 2,
     "labels": {"stable": 2, "exp": 3, "canary": 4},
     "canary": {"version": 4, "percent": 20},
     "shadow": {"version": 5},
     "history": [{"version": 1, "model": ID, "at": TIME, "action": "deploy", "message": "",
                  "label": "stable", "check": {...}}, ...]}

`version` is always the `stable` label's version, so readers written before labels (and
`REGISTRY/NAME` wherever a model is expected) keep meaning the stable version; a file
without `labels` has only `stable`. `canary` (a share of unlabelled traffic) and
`shadow` (a copy of it, answered by nobody) are present only while they run; each is
also a label. A history entry without `label` is of `stable`.

This module owns that layout and format: reading and writing `serving.json` (replaced by
rename under `NAME/.lock`), listing versions and names, and resolving `REGISTRY/NAME`
where a model or an evaluation is expected. What a deploy, promote or rollback changes
is decided in `store.release` (for a registry in object storage too); the copying and
checking of versions is `stages.deploy`'s job.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.artifact import MANIFEST, MAX_MANIFEST_BYTES, check_files, read_manifest, utc_now
from ..core.fsutil import file_lock, fsync_path, is_regular_file, write_bytes_durably
from ..core.jsonio import dumps_pretty
from ..errors import BadInput, opt

if TYPE_CHECKING:
    from .release import Decide, Decision

FORMAT = "mlstage-serving/1"
STABLE, CANARY, SHADOW = "stable", "canary", "shadow"
LABEL = re.compile(r"[a-z][a-z0-9_-]{0,62}")


def check_label(label: str) -> str:
    if not LABEL.fullmatch(label):
        raise BadInput(
            f"{opt('label')} {label!r}: a label is a lowercase letter then letters, digits, - or _"
        )
    return label


def _problem(doc: Any) -> str | None:
    """What makes a parsed serving.json unusable (None: nothing). A hand edit that leaves
    `deploy` and the server reading it differently is refused, not guessed at."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return f"not a {FORMAT} file"
    if type(doc.get("version")) is not int or not isinstance(doc.get("history", []), list):
        return f"not a {FORMAT} file (version, history)"
    labels = doc.get("labels", {})
    if not isinstance(labels, dict) or not all(type(v) is int for v in labels.values()):
        return "labels: expected an object of label -> version number"
    bad = [k for k in labels if not LABEL.fullmatch(k)]
    if bad:
        return f"labels: {bad[0]!r} is not a label name"
    if labels.get(STABLE, doc["version"]) != doc["version"]:
        return f"labels.stable ({labels[STABLE]}) differs from version ({doc['version']})"
    for run in (CANARY, SHADOW):
        spec = doc.get(run)
        if spec is None:
            continue
        if not isinstance(spec, dict) or type(spec.get("version")) is not int:
            return f'{run}: expected {{"version": N, ...}}'
        if run in labels and labels[run] != spec["version"]:
            return f"{run}.version ({spec['version']}) differs from labels.{run} ({labels[run]})"
    canary = doc.get(CANARY)
    if canary is not None:
        percent = canary.get("percent")
        if type(percent) not in (int, float) or not 0 < percent <= 100:
            return "canary.percent: expected a percentage in (0, 100]"
    return None


def labels_of(doc: dict[str, Any] | None) -> dict[str, int]:
    """Label -> version; `stable` is always the file's `version`."""
    if not doc:
        return {}
    out = dict(doc.get("labels") or {})
    out[STABLE] = doc["version"]
    for run in (CANARY, SHADOW):  # a running canary or shadow is its label
        if doc.get(run):
            out[run] = doc[run]["version"]
    return dict(sorted(out.items()))


def entry_label(entry: dict[str, Any]) -> str:
    return entry.get("label", STABLE)


def parse_serving(data: bytes, where: str) -> dict[str, Any]:
    """A serving.json's content, checked as `read_serving` checks the file."""
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise BadInput(f"serving.json is not valid JSON: {e}", file=where) from None
    problem = _problem(doc)
    if problem is not None:
        raise BadInput(problem, file=where)
    doc.setdefault("history", [])
    return doc


def read_serving(folder: Path) -> dict[str, Any] | None:
    path = folder / "serving.json"
    if not path.exists():
        return None
    if not is_regular_file(path, 16 << 20):
        raise BadInput("serving.json must be a regular file of a pointer's size", file=str(path))
    return parse_serving(path.read_bytes(), str(path))


def versions(folder: Path) -> dict[int, str]:
    """Version number -> model id, for every complete version directory."""
    out = {}
    for p in folder.iterdir() if folder.exists() else []:
        # a manifest that is a link, fifo or device would hang the reader: not a version
        if p.is_dir() and p.name.isdigit() and is_regular_file(p / MANIFEST, MAX_MANIFEST_BYTES):
            try:
                out[int(p.name)] = json.loads((p / MANIFEST).read_bytes())["id"]
            except (OSError, ValueError, KeyError, TypeError):
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
    return pick_name(name, lambda: model_names(registry), registry)


def pick_name(name: str | None, names_of, registry) -> str:
    """`--name`, checked, else the registry's only model (`names_of()`: its models)."""
    if name is not None:
        if not name or name.startswith(".") or "/" in name:
            raise BadInput(f"{opt('name')} {name!r}: a model name is a plain directory name")
        return name
    names = names_of()
    if len(names) == 1:
        return names[0]
    if not names:
        raise BadInput(f"the registry has no model yet: give {opt('name')}", file=str(registry))
    raise BadInput(
        f"the registry has several models ({', '.join(names)}): give {opt('name')}",
        file=str(registry),
    )


def update(folder: Path, decide: Decide) -> Decision:
    """Change a local model's serving.json under its lock: `decide(serving, versions)`
    gives the outcome (`store.release`), whose document, if any, replaces the file by
    rename."""
    with file_lock(folder / ".lock"):
        outcome = decide(read_serving(folder), versions(folder))
        if outcome.doc is not None:
            write_serving(folder, outcome.doc)
    return outcome


def damage_of(folder: Path, manifest: dict[str, Any] | None = None) -> Callable[[int], list[str]]:
    """version -> what is wrong with its files, re-hashed against `manifest` (default: the
    version's own)."""

    def damaged(version: int) -> list[str]:
        where = folder / str(version)
        return check_files(where, manifest or read_manifest(where))

    return damaged


def write_serving(folder: Path, doc: dict[str, Any]) -> None:
    tmp = folder / f".serving.json.{os.getpid()}"
    write_bytes_durably(tmp, dumps_pretty(doc).encode())
    os.replace(tmp, folder / "serving.json")
    fsync_path(folder)


def pointed(
    serving: dict[str, Any] | None,
    version: int,
    model: str,
    action: str,
    message: str,
    evaluation: str | None = None,
    *,
    label: str | None = STABLE,
    extra: dict[str, Any] | None = None,
) -> dict:
    """`serving` (changed in place, or a new document) with `label` pointed at `version`
    (STABLE also sets `version`) and the history entry added, with `extra` keys (e.g. the
    pre-push check's outcome); `label=None` only records. `write_serving` writes it."""
    doc = serving or {"format": FORMAT, "version": version, "history": []}
    labels = labels_of(doc)
    if label is not None:
        labels[label] = version
        if label == STABLE:
            doc["version"] = version
    doc["labels"] = dict(sorted(labels.items()))
    entry = {
        "version": version,
        "model": model,
        "at": utc_now(),
        "action": action,
        "message": message,
        "label": label or STABLE,
        **(extra or {}),
    }
    # The evaluation that let the model in: `monitor --evaluation REGISTRY/NAME` compares
    # live traffic with the evaluation of the version actually served.
    evaluation = evaluation or served_evaluation(doc, version)
    if evaluation:
        entry["evaluation"] = evaluation
    doc["history"].append(entry)
    return doc


def without_label(doc: dict[str, Any], label: str, model: str, action: str, message: str) -> dict:
    """`doc` (changed in place) with `label` taken off its version (ending a canary or a
    shadow with it), on record."""
    version = labels_of(doc)[label]
    doc["labels"] = {k: v for k, v in labels_of(doc).items() if k != label}
    if label in (CANARY, SHADOW):
        doc.pop(label, None)
    doc["history"].append({"version": version, "model": model, "at": utc_now(),
                           "action": action, "message": message, "label": label})  # fmt: skip
    return doc


def served_evaluation(serving: dict[str, Any] | None, version: int | None = None) -> str | None:
    """The id of the evaluation recorded for `version` (default: the one served), if any:
    the newest recorded when it was pointed at as stable, else the newest under any label
    (deploying the stable version again as a canary's label with another evaluation does
    not change stable's)."""
    if not serving:
        return None
    version = serving["version"] if version is None else version
    found = [
        h for h in reversed(serving["history"]) if h["version"] == version and h.get("evaluation")
    ]
    stable = [h for h in found if entry_label(h) == STABLE]
    return (stable or found or [{"evaluation": None}])[0]["evaluation"]


def local_ref(ref: str | Path) -> str:
    """REGISTRY/NAME in object storage: its local mirror (serving.json and the versions it
    names, fetched now), which reads as a local REGISTRY/NAME; anything else as it is."""
    from ..core.s3url import is_s3

    if not is_s3(ref):
        return str(ref)
    from ..core.s3url import as_s3
    from .s3registry import mirror_model

    url = as_s3(ref)
    assert url is not None
    found = mirror_model(url)
    return str(found) if found is not None else str(url)


def resolve_model(ref: str) -> str:
    """A model reference: an artifact directory, @id, or REGISTRY/NAME (its stable version;
    in object storage too)."""
    ref = local_ref(ref)
    path = Path(str(ref))
    if (path / "serving.json").exists():
        doc = read_serving(path)
        assert doc is not None
        return str(path / str(doc["version"]))
    return str(ref)


def resolve_evaluation(ref: str) -> str:
    """An evaluation reference: REGISTRY/NAME stands for the evaluation recorded when its
    served version was deployed; anything else is returned as it is."""
    ref = local_ref(ref)
    folder = Path(ref)
    if not (folder / "serving.json").exists():
        return ref
    found = served_evaluation(read_serving(folder))
    if found is None:
        raise BadInput("the served version was deployed without an evaluation", file=ref)
    return f"@{found}"
