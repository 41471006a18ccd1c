"""The models a server holds, loaded from a registry and refreshed by a watcher.

A refresh builds a new immutable snapshot and replaces the old one in a single
assignment: a request uses whichever snapshot it started with, so a swap never
drops or stalls a request. A version that fails to load (corrupt files, a sha256
mismatch: every load verifies) is reported and the previous one keeps serving.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..store.registry import model_names, read_serving, versions

KEEP_LOADED = 5  # versions kept in memory per model besides the served one
RETRY_SECONDS = 30.0  # a version that failed to load is tried again after this


class ModelLookupError(Exception):
    """No such model or version (404), or none servable yet (503)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Snapshot:
    models: dict[str, dict[int, Any]] = field(default_factory=dict)  # name -> version -> Model
    served: dict[str, int] = field(
        default_factory=dict
    )  # name -> version answering unversioned requests
    states: dict[str, dict[int, dict[str, Any]]] = field(
        default_factory=dict
    )  # TF Serving's status per version


class ServedModels:
    def __init__(self, registry: Path, log=None):
        self.registry = Path(registry)
        self.snapshot = Snapshot()
        # (name, version, model id) -> (error, when): a failed load is retried after RETRY_SECONDS
        # (a transient failure such as too many open files must not bar a version for good).
        self._failed: dict[tuple[str, int, str], tuple[str, float]] = {}
        self._said: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self._log = log or (lambda msg: sys.stderr.write(f"serve: {msg}\n"))
        self.loaded_at = time.time()

    def refresh(self) -> bool:
        """Look at the registry; load what is new; swap in a new snapshot. True if it changed."""
        from ..model.artifact import Model

        with self._lock:
            old = self.snapshot
            models: dict[str, dict[int, Any]] = {}
            served: dict[str, int] = {}
            states: dict[str, dict[int, dict[str, Any]]] = {}
            for name in model_names(self.registry):
                folder = self.registry / name
                try:
                    serving = read_serving(folder)
                except Exception as e:  # a broken serving.json: keep what was served
                    self._log(
                        f"{name}: cannot read serving.json ({e}); still serving version {old.served.get(name)}"
                    )
                    serving = {"version": old.served.get(name)} if name in old.served else None
                have = versions(folder)
                want = sorted(have)[-KEEP_LOADED:]
                if serving and serving["version"] in have and serving["version"] not in want:
                    want.append(serving["version"])
                loaded: dict[int, Any] = {}
                states[name] = {}
                for v in want:
                    current = old.models.get(name, {}).get(v)
                    if current is not None and current.id == have[v]:
                        loaded[v] = current
                        states[name][v] = {
                            "state": "AVAILABLE",
                            "status": {"error_code": "OK", "error_message": ""},
                        }
                        continue
                    key = (name, v, have[v])
                    if key in self._failed and time.time() - self._failed[key][1] < RETRY_SECONDS:
                        states[name][v] = {
                            "state": "END",
                            "status": {
                                "error_code": "UNKNOWN",
                                "error_message": self._failed[key][0],
                            },
                        }
                        continue
                    try:
                        loaded[v] = Model.load(folder / str(v))
                        loaded[
                            v
                        ].transform.row_function()  # build the per-row path before the first request
                        states[name][v] = {
                            "state": "AVAILABLE",
                            "status": {"error_code": "OK", "error_message": ""},
                        }
                        self._log(f"{name}: loaded version {v} (model {have[v][:12]})")
                        self._failed.pop(key, None)
                    except Exception as e:
                        if key not in self._failed:
                            self._log(f"{name}: version {v} failed to load, not served: {e}")
                        self._failed[key] = (str(e), time.time())
                        states[name][v] = {
                            "state": "END",
                            "status": {"error_code": "UNKNOWN", "error_message": str(e)},
                        }
                target = serving["version"] if serving else None
                if target in loaded:
                    served[name] = target
                elif name in old.served and old.served[name] in loaded:
                    served[name] = old.served[
                        name
                    ]  # the pointed version is broken: keep the old one
                    if target is not None and (name, target) not in self._said:
                        self._said.add((name, target))  # said once, not every second
                        self._log(
                            f"{name}: version {target} is not servable; still serving version {served[name]}"
                        )
                models[name] = loaded
            new = Snapshot(models, served, states)
            changed = new.served != old.served or {n: set(m) for n, m in new.models.items()} != {
                n: set(m) for n, m in old.models.items()
            }
            for name, version in new.served.items():
                if old.served.get(name) != version:
                    self._log(f"{name}: now serving version {version}")
            self.snapshot = new
            return changed

    def get(self, name: str, version: int | None = None):
        """(model, version) or raise ModelLookupError(status, message)."""
        snap = self.snapshot
        if name not in snap.models:
            raise ModelLookupError(
                404, f"no model named {name!r}; models: {', '.join(sorted(snap.models)) or 'none'}"
            )
        if version is None:
            version = snap.served.get(name)
            if version is None:
                raise ModelLookupError(503, f"model {name!r} has no servable version yet")
        model = snap.models[name].get(version)
        if model is None:
            raise ModelLookupError(404, f"model {name!r} has no servable version {version}")
        return model, version

    def status(self, name: str) -> dict[str, Any]:
        snap = self.snapshot
        if name not in snap.states:
            raise ModelLookupError(404, f"no model named {name!r}")
        return {"model_version_status": [
            {"version": str(v), **s} for v, s in sorted(snap.states[name].items(), reverse=True)
        ]}  # fmt: skip

    @staticmethod
    def metadata(model, version: int) -> dict[str, Any]:
        return {
            "model_spec": {"version": str(version)},
            "model_id": model.id,
            "metadata": {"signature": json.loads(json.dumps(model.signature))},
        }
