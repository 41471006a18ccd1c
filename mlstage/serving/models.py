"""The models a server holds, loaded from a registry and refreshed by a watcher.

A refresh builds a new immutable snapshot and replaces the old one in a single
assignment: a request uses whichever snapshot it started with, so a swap never
drops or stalls a request.

What a registry can do to a running server, and what the server does:
- a new version is pointed to: it is loaded in a thread of its own (off the request
  path, regular files only, sizes and sha256 checked against its manifest) and served
  once loaded; until then the previous version keeps answering;
- the pointed-to version fails to load, or takes longer than LOAD_SECONDS (a load
  that hangs is abandoned, never waited for again, and blocks no later deploy): the
  loaded version keeps serving;
- the served version's directory is removed: it stays in memory and keeps serving
  until a replacement has loaded;
- on a cold start whose pointed-to version does not load: the newest version that
  loads is served.
Labels (`serving.json`'s `labels`) are loaded as the stable version is and answer
`/labels/LABEL` requests. While a canary runs, an unlabelled, unversioned request goes
to the canary when a stable hash of its request id falls in the canary's share (so a
retried request lands on the same version); while its version is not loaded, every
request goes to the stable one. A shadow's version is named in the snapshot for the
service to copy requests to.
Each such problem is logged once when it appears (not on every refresh), and shown
in the model's status, in /healthz and in /metrics until it is gone.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..store.registry import CANARY, SHADOW, STABLE, labels_of, model_names, read_serving, versions

KEEP_LOADED = 5  # versions kept in memory per model besides the served one
RETRY_SECONDS = 30.0  # a version that failed to load is tried again after this
LOAD_SECONDS = 60.0  # a load still running after this is reported failed and left alone

AVAILABLE = {"state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
LOADING = {"state": "LOADING", "status": {"error_code": "OK", "error_message": ""}}


def _ended(message: str) -> dict[str, Any]:
    return {"state": "END", "status": {"error_code": "UNKNOWN", "error_message": message}}


class ModelLookupError(Exception):
    """No such model or version (404), or none servable yet (503)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Snapshot:
    models: dict[str, dict[int, Any]] = field(default_factory=dict)  # name -> version -> Model
    # name -> version answering unversioned requests
    served: dict[str, int] = field(default_factory=dict)
    # name -> version -> TF Serving's status of that version
    states: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    # name -> what is wrong with the registry's choice (absent when nothing is)
    problems: dict[str, str] = field(default_factory=dict)
    # name -> label -> version, as serving.json says (stable included)
    labels: dict[str, dict[str, int]] = field(default_factory=dict)
    # name -> (version, percent) of a running canary whose version is loaded
    canary: dict[str, tuple[int, float]] = field(default_factory=dict)
    # name -> version of a running shadow whose version is loaded
    shadow: dict[str, int] = field(default_factory=dict)


def canary_share(name: str, request_id: str) -> float:
    """Where a request id falls in [0, 100): the same id always falls in the same place."""
    digest = hashlib.sha256(f"{name}\0{request_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


class _Load:
    """One version loading in a daemon thread of its own: a load that never returns
    (a stalled disk, a network mount) holds that thread, nothing else."""

    def __init__(self, path: Path):
        self.started = time.monotonic()
        self.done = threading.Event()
        self.model: Any = None
        self.error: str | None = None
        threading.Thread(
            target=self._run,
            args=(path,),
            name=f"mlstage-load-{path.parent.name}-{path.name}",
            daemon=True,
        ).start()

    def _run(self, path: Path) -> None:
        from ..model.artifact import Model

        try:
            model = Model.load(path)
            model.transform.row_function()  # built before the first request needs it
            self.model = model
        except Exception as e:
            self.error = str(e) or type(e).__name__
        finally:
            self.done.set()


class ServedModels:
    def __init__(self, registry: Path, log=None):
        self.registry = Path(registry)
        self.snapshot = Snapshot()
        self._loads: dict[tuple[str, int, str], _Load] = {}  # (name, version, model id)
        # a failed load -> (why, when): retried after RETRY_SECONDS (a transient failure,
        # such as too many open files, must not bar a version for good)
        self._failed: dict[tuple[str, int, str], tuple[str, float]] = {}
        self._targets: dict[str, int] = {}  # the last readable serving.json's version
        self._routes: dict[str, dict[str, Any]] = {}  # ... and its labels, canary, shadow
        self._said: dict[str, str] = {}  # the problem last logged per model
        self._lock = threading.Lock()
        self._log = log or (lambda msg: sys.stderr.write(f"serve: {msg}\n"))

    def _public(self, message: str) -> str:
        """A message without the registry's location (status is seen by clients)."""
        for prefix in {str(self.registry.absolute()), str(self.registry)}:
            message = message.replace(prefix + "/", "")
        return message

    def refresh(self, wait: float = LOAD_SECONDS) -> bool:
        """Look at the registry, start loading what is new, wait up to `wait` seconds for
        the loads (none beyond its own time limit), and swap in a new snapshot. True if
        what is served changed."""
        with self._lock:
            old = self.snapshot
            deadline = time.monotonic() + wait
            found = []
            for name in model_names(self.registry):
                folder = self.registry / name
                problem = None
                try:
                    serving = read_serving(folder)
                    if serving is not None:
                        self._targets[name] = serving["version"]
                        self._routes[name] = {
                            "labels": labels_of(serving),
                            CANARY: serving.get(CANARY),
                            SHADOW: serving.get(SHADOW),
                        }
                except Exception as e:  # a broken serving.json: the last one read stands
                    problem = f"cannot read serving.json ({self._public(str(e))})"
                have = versions(folder)
                target = self._targets.get(name)
                want = sorted(have)[-KEEP_LOADED:]
                if name not in old.served and (
                    target not in have or self._failed_before(name, target, have)
                ):
                    want = sorted(have)  # a cold start without a loadable target: try them all
                for v in [target, *self._routes.get(name, {}).get("labels", {}).values()]:
                    if v in have and v not in want:
                        want.append(v)
                found.append((name, have, target, want, problem))
                for v in want:
                    key = (name, v, have[v])
                    current = old.models.get(name, {}).get(v)
                    fresh = current is not None and current.id == have[v]
                    if not fresh and key not in self._loads and not self._recently_failed(key):
                        self._loads[key] = _Load(folder / str(v))
            # Models the registry no longer lists (serving.json removed, the registry's
            # folder renamed or unmounted) keep serving from memory, said as a problem.
            listed = {f[0] for f in found}
            gone = [n for n in old.models if n not in listed]
            self._prune({(n, v, have[v]) for n, have, _, want, _ in found for v in want})
            for load in list(self._loads.values()):
                until = min(deadline, load.started + LOAD_SECONDS)
                load.done.wait(max(0.0, until - time.monotonic()))
            models, served, states, problems = {}, {}, {}, {}
            labels, canary, shadow = {}, {}, {}
            for name, have, target, want, problem in found:
                loaded, states[name], why = self._collect(name, have, want, target, old)
                choice, note = self._choose(name, have, target, loaded, why, old)
                if choice is not None:
                    served[name] = choice
                note = "; ".join(
                    p for p in (problem, note, self._label_problems(name, have, why)) if p
                )
                if note:
                    problems[name] = note
                for v in loaded:  # a served version kept in memory after its folder went
                    states[name].setdefault(v, AVAILABLE)
                models[name] = loaded
                routes = self._routes.get(name, {})
                labels[name] = dict(routes.get("labels", {}))
                run = routes.get(CANARY)
                if run and run["version"] in loaded and choice is not None:
                    canary[name] = (run["version"], float(run["percent"]))
                run = routes.get(SHADOW)
                if run and run["version"] in loaded and choice is not None:
                    shadow[name] = run["version"]
                self._say(name, note, choice, old.served.get(name))
            for name in gone:
                models[name], states[name] = old.models[name], old.states[name]
                labels[name] = old.labels.get(name, {})
                if name in old.served:
                    served[name] = old.served[name]
                problems[name] = (
                    "the registry no longer lists this model (its serving.json or folder is"
                    " gone, or the registry is unreadable); serving it from memory"
                )
                self._say(name, problems[name], served.get(name), old.served.get(name))
            self.snapshot = Snapshot(models, served, states, problems, labels, canary, shadow)
            return (
                served != old.served
                or (labels, canary, shadow) != (old.labels, old.canary, old.shadow)
                or {n: set(m) for n, m in models.items()}
                != {n: set(m) for n, m in old.models.items()}
            )

    def _label_problems(self, name: str, have, why) -> str | None:
        """What is wrong with the versions labels other than stable point to."""
        out = []
        for label, v in self._routes.get(name, {}).get("labels", {}).items():
            if label == STABLE or v == self._targets.get(name):
                continue
            if v not in have:
                out.append(f"label {label} points to version {v}, which is not in the registry")
            elif v in why and why[v] != "is still loading":
                out.append(f"label {label}: version {v} {why[v]}")
        return "; ".join(out) or None

    def _recently_failed(self, key) -> bool:
        return key in self._failed and time.time() - self._failed[key][1] < RETRY_SECONDS

    def _failed_before(self, name: str, version, have) -> bool:
        return version in have and (name, version, have[version]) in self._failed

    def _prune(self, wanted: set) -> None:
        """Forget loads and failures of versions no longer wanted (removed, or pushed out
        of the newest KEEP_LOADED). A load still running is kept (and counted as stuck
        once past its limit): starting it again would only add a thread."""
        for key in [k for k, ld in self._loads.items() if k not in wanted and ld.done.is_set()]:
            del self._loads[key]
        for key in [k for k in self._failed if k not in wanted]:
            del self._failed[key]

    def _collect(self, name, have, want, target, old):
        """The loaded versions among `want`, their states, and why each other one is not.
        A failure is logged here for versions other than `target` (whose problem
        `_say` logs)."""
        loaded: dict[int, Any] = {}
        states: dict[int, dict[str, Any]] = {}
        why: dict[int, str] = {}
        for v in want:
            key = (name, v, have[v])
            current = old.models.get(name, {}).get(v)
            if current is not None and current.id == have[v]:
                loaded[v], states[v] = current, AVAILABLE
                continue
            load = self._loads.get(key)
            if load is not None and load.done.is_set():
                del self._loads[key]
                if load.model is not None:
                    self._failed.pop(key, None)
                    loaded[v], states[v] = load.model, AVAILABLE
                    self._log(f"{name}: loaded version {v} (model {have[v][:12]})")
                    continue
                before = self._failed.get(key)
                self._failed[key] = (self._public(load.error or "?"), time.time())
                if v != target and (before is None or before[0] != self._failed[key][0]):
                    # said once per failure, not again at each retry
                    self._log(f"{name}: version {v} does not load ({self._failed[key][0]})")
            elif load is not None:
                age = time.monotonic() - load.started
                if age < LOAD_SECONDS and key not in self._failed:
                    states[v], why[v] = LOADING, "is still loading"
                    continue
                if age < LOAD_SECONDS:  # a retry of a failed version: its failure stands
                    reason = self._failed[key][0]
                    states[v], why[v] = _ended(reason), f"does not load ({reason})"
                    continue
                # Abandoned: its thread may never return; the key stays in _loads so it
                # is never started again, and the failure is reported as any other.
                if key not in self._failed and v != target:
                    self._log(f"{name}: version {v} did not load within {LOAD_SECONDS:g} s")
                self._failed[key] = (f"did not load within {LOAD_SECONDS:g} s", time.time())
            reason = self._failed.get(key, ("did not load", 0))[0]
            states[v], why[v] = _ended(reason), f"does not load ({reason})"
        return loaded, states, why

    def _choose(self, name, have, target, loaded, why, old) -> tuple[int | None, str | None]:
        """The version answering unversioned requests, and what is wrong if it is not the
        one serving.json points to. A served model leaves memory only once its
        replacement has loaded."""
        if target is None:  # serving.json never readable since the start
            if loaded:
                newest = max(loaded)
                return (
                    newest,
                    f"no version to serve is known; serving version {newest}, the newest that loads",
                )
            return None, None
        if target in loaded:
            return target, None
        reason = why.get(
            target, "is not in the registry (its folder, or its manifest, is gone or unreadable)"
        )
        before = old.served.get(name)
        if before is not None and before in old.models.get(name, {}):
            loaded.setdefault(before, old.models[name][before])
            if target in why and why[target] == "is still loading":
                return before, None  # a deploy in progress, not a problem
            if before == target:
                return before, f"version {target} {reason}; still serving it from memory"
            return before, f"version {target} {reason}; still serving version {before}"
        if target in why and why[target] == "is still loading":
            return None, None
        if loaded:
            newest = max(loaded)
            return (
                newest,
                f"version {target} {reason}; serving version {newest}, the newest that loads",
            )
        return None, f"version {target} {reason}; no version of {name!r} loads"

    def _say(self, name: str, note: str, choice: int | None, before: int | None) -> None:
        """Log a model's problem once when it appears or changes, and when it clears."""
        if note and self._said.get(name) != note:
            self._log(f"{name}: {note}")
        elif not note and self._said.get(name):
            self._log(f"{name}: resolved; serving version {choice}")
        elif choice is not None and choice != before:
            self._log(f"{name}: now serving version {choice}")
        self._said[name] = note

    def stuck_loads(self) -> int:
        """Loads running longer than LOAD_SECONDS (their threads are abandoned). Read
        from the event loop while the watcher changes `_loads`: a copy is iterated."""
        now = time.monotonic()
        loads = list(self._loads.values())
        return sum(1 for ld in loads if not ld.done.is_set() and now - ld.started >= LOAD_SECONDS)

    def get(
        self,
        name: str,
        version: int | None = None,
        *,
        label: str | None = None,
        request_id: str | None = None,
    ):
        """(model, version) or raise ModelLookupError(status, message). An unversioned,
        unlabelled request with its `request_id` may go to a running canary."""
        snap = self.snapshot
        if name not in snap.models:
            raise ModelLookupError(
                404, f"no model named {name!r}; models: {', '.join(sorted(snap.models)) or 'none'}"
            )
        if label is not None and label != STABLE:
            labels = snap.labels.get(name, {})
            if label not in labels:
                raise ModelLookupError(
                    404, f"model {name!r} has no label {label!r}; labels: {', '.join(labels)}"
                )
            version = labels[label]
            if version not in snap.models[name]:
                state = snap.states.get(name, {}).get(version)
                why = state["status"]["error_message"] if state else ""
                raise ModelLookupError(
                    503,
                    f"label {label!r} of {name!r} points to version {version}, "
                    + (f"which does not load: {why}" if why else "not loaded yet"),
                )
        if version is None:
            version = snap.served.get(name)
            if version is None:
                raise ModelLookupError(503, f"model {name!r} has no servable version yet")
            run = snap.canary.get(name)
            if label is None and run and request_id and canary_share(name, request_id) < run[1]:
                version = run[0]
        model = snap.models[name].get(version)
        if model is None:
            raise ModelLookupError(404, f"model {name!r} has no servable version {version}")
        return model, version

    def status(self, name: str) -> dict[str, Any]:
        """TF Serving's status shape, with what is served and any problem beside it."""
        snap = self.snapshot
        if name not in snap.states:
            raise ModelLookupError(404, f"no model named {name!r}")
        return {
            "model_version_status": [
                {"version": str(v), **s} for v, s in sorted(snap.states[name].items(), reverse=True)
            ],
            "served_version": snap.served.get(name),
            "labels": snap.labels.get(name, {}),
            "canary": (
                {"version": snap.canary[name][0], "percent": snap.canary[name][1]}
                if name in snap.canary
                else None
            ),
            "shadow": {"version": snap.shadow[name]} if name in snap.shadow else None,
            "problem": snap.problems.get(name),
        }

    def metadata(self, name: str, model, version: int) -> dict[str, Any]:
        labels = self.snapshot.labels.get(name, {})
        return {
            "model_spec": {
                "version": str(version),
                "version_labels": sorted(k for k, v in labels.items() if v == version),
            },
            "model_id": model.id,
            "metadata": {"signature": json.loads(json.dumps(model.signature))},
        }
