"""Running a stage: fingerprint, skip when up to date, write all-or-nothing, keep in the store.

Every stage goes through `run_stage`, so the up-to-date rule, `--force`,
`--dry-run`, the locks, the atomic swap and the store are in one place. A stage
supplies a `StagePlan` (what it would compute, known before any data is read)
and a `produce` function that writes the payload files into a directory and
returns the summary.
"""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import replay
from ..core.artifact import FORMAT as MANIFEST_FORMAT
from ..core.artifact import (
    Input,
    build_manifest,
    claimed_id,
    fingerprint,
    gate_exit_code,
    read_manifest,
)
from ..core.documents import warm_up
from ..core.fsutil import (
    file_lock,
    has_leftovers,
    recover,
    remove_tree,
    swap_into_place,
    temp_sibling,
)
from ..core.outputs import check_output
from ..core.s3url import S3Url, as_s3
from ..errors import MlstageError
from ..store.store import Store, write_payload_manifest


@dataclass
class StagePlan:
    """What a stage would compute, known before any data is read.

    `inputs` may be a function: a stage whose inputs take time to identify (the
    sha256 of a large raw file) can compute them while it works, since they are
    needed only to compare with an existing output and to write the manifest.
    """

    stage: str
    kind: str
    algorithm: int  # bump when the stage's output for the same inputs changes
    params: dict[str, Any]
    inputs: list[Input] | Callable[[], list[Input]] = field(default_factory=list)
    # Checks of the inputs that need heavy imports (scikit-learn's own parameter
    # validation): run before producing or on --dry-run, skipped when the output is
    # up to date, whose fingerprint already covers everything they check.
    check: Callable[[], None] | None = None
    # The paths the stage reads, for the output rules (`outputs.check_output`); by
    # default the paths of `inputs` when they are a list.
    reads: list[str] | None = None

    def read_paths(self) -> list[str]:
        if self.reads is not None:
            return self.reads
        return [] if callable(self.inputs) else [i.path for i in self.inputs]

    def resolved_inputs(self) -> list[Input]:
        if callable(self.inputs):
            self.inputs = self.inputs()
        return self.inputs

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.stage, self.algorithm, self.params, self.resolved_inputs())


@dataclass
class StageResult:
    manifest: dict[str, Any] | None
    path: Path | S3Url | None  # S3Url: an output in object storage
    up_to_date: bool = False
    dry_run: bool = False
    would_run: bool = False
    # what a person should know about the run beyond its summary (the CLI prints them)
    notes: list[str] = field(default_factory=list)
    # an output in object storage: its payload as a local folder (the store's cached
    # object, downloaded on first use)
    fetch: Callable[[], Path] | None = field(default=None, repr=False, compare=False)

    @property
    def folder(self) -> Path:
        """A local folder holding the output's payload files."""
        if isinstance(self.path, S3Url):
            assert self.fetch is not None
            return self.fetch()
        assert self.path is not None
        return self.path

    @property
    def exit_code(self) -> int:
        return gate_exit_code(self.manifest["summary"]) if self.manifest else 0

    def as_json(self) -> dict[str, Any]:
        """The one-line `--json` record of DESIGN §3."""
        m = self.manifest or {}
        record = {
            "kind": m.get("kind"),
            "id": m.get("id"),
            "fingerprint": m.get("fingerprint"),
            "path": str(self.path) if self.path else None,
            "up_to_date": self.up_to_date,
            "exit_code": self.exit_code,
        }
        if self.dry_run:
            record["dry_run"] = True
            record["would_run"] = self.would_run
        return {**record, **m.get("summary", {})}


Produce = Callable[[Path], dict[str, Any]]


def fault_point(name: str) -> None:
    """Fault injection for the crash tests: MLSTAGE_FAULT=<name> kills this process here.

    The points: produced (payload written, no manifest), stored (kept in the
    store, not yet swapped), swapped (at OUT, not yet logged).
    """
    if os.environ.get("MLSTAGE_FAULT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _current(out: Path, plan: StagePlan, store: Store) -> dict[str, Any] | None:
    """The manifest at `out` when it has the plan's fingerprint and intact files."""
    try:
        m = read_manifest(out)
    except MlstageError:
        return None
    if m["fingerprint"] != plan.fingerprint or not store.intact(out, m):
        return None
    return m


def as_output(out: str | os.PathLike | S3Url | None) -> Path | S3Url | None:
    """A stage's `out` argument: a local folder, an `s3://` prefix (never a local folder
    named `s3:`), or None (only into the store)."""
    if out is None:
        return None
    return as_s3(out) or Path(out)


def run_stage(
    plan: StagePlan,
    produce: Produce,
    out: str | os.PathLike | S3Url | None,
    *,
    store: Store,
    force: bool = False,
    dry_run: bool = False,
) -> StageResult:
    """Run one stage into `out` (or only into the store when `out` is None)."""
    out = as_output(out)
    if isinstance(out, S3Url):
        return _run_stage_s3(plan, produce, out, store=store, force=force, dry_run=dry_run)
    if out is None:
        if plan.check:
            plan.check()
        if dry_run:
            return StageResult(None, None, dry_run=True, would_run=True)
        return _produce_into_store(plan, produce, store)
    out = Path(out)
    check_output(out, store_root=store.root, reads=plan.read_paths(), kind=plan.kind)
    if not force:
        current = _current(out, plan, store)
        if current is not None:
            if not dry_run and (has_leftovers(out) or store.last_write(out) != current["id"]):
                # A writer was killed after its swap, or left temporary files behind.
                replay.veto()
                with file_lock(store.output_lock(out)):
                    recover(out)
                    _heal_journal(out, store)
            if not dry_run:
                replay.note_up_to_date()
            return StageResult(current, out, up_to_date=True, dry_run=dry_run)
    if plan.check:
        plan.check()
    if dry_run:
        return StageResult(None, out, dry_run=True, would_run=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(store.output_lock(out)):
        recover(out)
        _heal_journal(out, store)
        if not force:
            # Another writer may have finished this very work while we waited.
            current = _current(out, plan, store)
            if current is not None:
                return StageResult(current, out, up_to_date=True)
        tmp = temp_sibling(out)
        tmp.mkdir()
        try:
            manifest = _produce(plan, produce, tmp, store)
            fault_point("stored")
            swap_into_place(tmp, out)
        finally:
            remove_tree(tmp)
        fault_point("swapped")
        store.record_write(out, manifest)
        store.remember_output(out, store.object_dir(manifest["id"]), manifest)
    return StageResult(manifest, out)


def _produce(plan: StagePlan, produce: Produce, tmp: Path, store: Store) -> dict[str, Any]:
    warm_up(MANIFEST_FORMAT)  # its schema checks the manifest once the work is done
    summary = produce(tmp)
    fault_point("produced")
    manifest = build_manifest(
        kind=plan.kind,
        stage=plan.stage,
        fp=plan.fingerprint,
        params=plan.params,
        inputs=plan.resolved_inputs(),
        payload_dir=tmp,
        summary=summary,
    )
    write_payload_manifest(tmp, manifest)
    store.add(tmp, manifest)
    return manifest


def _produce_into_store(plan: StagePlan, produce: Produce, store: Store) -> StageResult:
    tmp = store.root / "tmp" / f"out-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir(parents=True)
    try:
        manifest = _produce(plan, produce, tmp, store)
    finally:
        remove_tree(tmp)
    return StageResult(manifest, store.object_dir(manifest["id"]))


def _heal_journal(out: Path, store: Store) -> None:
    """Log the version at `out` if a writer was killed between its swap and its log line."""
    logged = store.last_write(out)
    if logged is not None and claimed_id(out) == logged:
        return  # the usual case, decided without validating the manifest
    try:
        m = read_manifest(out)
    except MlstageError:
        return
    if logged != m["id"] and store.manifest(m["id"]) is not None:
        store.record_write(out, m)


def _run_stage_s3(
    plan: StagePlan, produce: Produce, out: S3Url, *, store: Store, force: bool, dry_run: bool
) -> StageResult:
    """Run one stage into an `s3://` prefix (`store.s3outputs` says how it is written)."""
    from ..store.s3outputs import check_s3_output, commit_output, read_pointer

    current, etag = read_pointer(out)
    check_s3_output(out, store, current)

    def fetch(artifact_id: str) -> Callable[[], Path]:
        return lambda: store.fetch(artifact_id)  # type: ignore[attr-defined]

    if (
        not force
        and current is not None
        and current["fingerprint"] == plan.fingerprint
        and store.has_object(current["id"])
    ):
        if not dry_run and store.last_write(out) != current["id"]:
            store.record_write(out, current)  # a writer stopped between its commit and log
        return StageResult(current, out, up_to_date=True, dry_run=dry_run,
                           fetch=fetch(current["id"]))  # fmt: skip
    if plan.check:
        plan.check()
    if dry_run:
        return StageResult(None, out, dry_run=True, would_run=True)
    tmp = store.root / "tmp" / f"out-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir(parents=True)
    try:
        manifest = _produce(plan, produce, tmp, store)  # committed to the store first
        same = commit_output(out, etag, tmp, manifest, store)
    finally:
        remove_tree(tmp)
    if same is not None:
        return StageResult(same, out, up_to_date=True, fetch=fetch(same["id"]))
    return StageResult(manifest, out, fetch=fetch(manifest["id"]))
