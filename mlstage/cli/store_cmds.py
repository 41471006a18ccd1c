"""Store and inspection commands: log, show, lineage, verify, checkout, diff, gc, reindex.

Their result is data, so it goes to stdout: a table on a terminal, plain
tab-separated lines when piped, JSON with --json. Ids show as 12 hex digits.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import ExitCode
from .app import app
from .common import StoreCommon, store_command
from .render import lineage_lines, print_json, print_table, short_id, stderr_console, summary_text

RefArg = Annotated[
    str,
    typer.Argument(
        help="Artifact directory, @<id prefix> (6+ hex digits), or REGISTRY/NAME (the"
        " version it serves).",
        show_default=False,
    ),
]


def _load(store, ref: str):
    """(path, manifest) of an artifact reference; REGISTRY/NAME (local or in object
    storage) stands for the version it serves, as for predict and evaluate."""
    from ..store.registry import resolve_model

    return store.load(resolve_model(ref))


def _store(common: StoreCommon, near: Path | None = None):
    from ..store.store import Store

    return Store.open(common.store, near=near)


@store_command(app, "log")
def log_cmd(
    path: Annotated[
        str | None,
        typer.Argument(
            help="Artifact path or s3:// prefix (default: every path).", show_default=False
        ),
    ] = None,
    *,
    common: StoreCommon,
) -> None:
    """Versions written to a path, newest first: id, created, stage, path, summary."""
    from ..core.s3url import as_s3

    where = None if path is None else as_s3(path) or Path(path)
    local = where if isinstance(where, Path) else None
    store = _store(common, near=local.absolute().parent if local else None)
    writes = store.writes(where)
    if common.json:
        print_json(writes)
        return
    rows = [
        [short_id(w["id"]), w["created"], w["stage"], w["path"], summary_text(w["summary"])]
        for w in writes
    ]
    print_table(["id", "created", "stage", "path", "summary"], rows)


@store_command(app, "show")
def show_cmd(ref: RefArg, *, common: StoreCommon) -> None:
    """The manifest of an artifact (JSON); of REGISTRY/NAME, the version it serves."""
    _, manifest = _load(_store(common), ref)
    print_json(manifest)


@store_command(app, "lineage")
def lineage_cmd(ref: RefArg, *, common: StoreCommon) -> None:
    """The tree of inputs of an artifact (or of the version REGISTRY/NAME serves), back to
    the raw source files."""
    store = _store(common)
    _, manifest = _load(store, ref)

    def show() -> None:
        tree = store.lineage(manifest)
        if common.json:
            print_json(tree)
        else:
            sys.stdout.write("\n".join(lineage_lines(tree)) + "\n")

    _with_deep_stack(show)


def _with_deep_stack(fn) -> None:
    """Run `fn` in a thread with room for deep recursion: a dataset appended to every
    day for years has a lineage thousands of levels deep, and the tree is built, drawn
    and encoded recursively (the default limit failed past ~490 appends). The stack is
    reserved, not used: memory is committed as the recursion goes."""
    import threading

    failed: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as e:  # re-raised in the calling thread
            failed.append(e)

    limit = sys.getrecursionlimit()
    size = threading.stack_size(1 << 30)
    sys.setrecursionlimit(max(limit, 200_000))
    try:
        thread = threading.Thread(target=run, name="mlstage-lineage")
        thread.start()
        thread.join()
    finally:
        threading.stack_size(size)
        sys.setrecursionlimit(limit)
    if failed:
        raise failed[0]


@store_command(app, "verify")
def verify_cmd(
    ref: Annotated[
        str | None,
        typer.Argument(
            help="Artifact (default: every artifact in the store and every path it logged).",
            show_default=False,
        ),
    ] = None,
    *,
    common: StoreCommon,
) -> None:
    """Re-hash files against their manifests; exit 1 naming any file that differs."""
    store = _store(common)
    checked, problems = store.verify(store.resolve(ref) if ref else None)
    if common.json:
        print_json({"ok": not problems, "checked": checked, "problems": problems})
    else:
        for p in problems:
            sys.stdout.write(p + "\n")
        stderr_console().print(
            f"verify: {checked} artifacts checked, {len(problems)} problems", markup=False
        )
    if problems:
        raise typer.Exit(ExitCode.GATE)


@store_command(app, "checkout")
def checkout_cmd(
    ref: RefArg,
    out: Annotated[
        Path,
        typer.Option("-o", "--out", help="Directory to write the artifact to.", show_default=False),
    ],
    *,
    common: StoreCommon,
) -> None:
    """Write a stored artifact to a directory (atomically, as a stage would)."""
    from ..store.checkout import checkout
    from ..store.registry import resolve_model

    store = _store(common, near=out.absolute().parent)
    manifest, changed = checkout(store, resolve_model(ref), out)
    if common.json:
        print_json(
            {
                "id": manifest["id"],
                "kind": manifest["kind"],
                "path": str(out),
                "up_to_date": not changed,
            }
        )
    state = "wrote" if changed else "up to date:"
    stderr_console().print(
        f"checkout: {state} {out} ({manifest['kind']} {short_id(manifest['id'])})", markup=False
    )


@store_command(app, "diff")
def diff_cmd(a: RefArg, b: RefArg, *, common: StoreCommon) -> None:
    """Two artifacts side by side: params, inputs, summary and payload values that differ."""
    from ..store.diff import diff_artifacts

    store = _store(common)
    rows = diff_artifacts(*_load(store, a), *_load(store, b))
    if common.json:
        print_json([{"field": f, "a": x, "b": y} for f, x, y in rows])
    else:
        print_table(["field", "a", "b"], [[f, _cell(f, x), _cell(f, y)] for f, x, y in rows])


def _cell(field: str, value) -> str:
    import json

    if isinstance(value, str) and (field == "id" or field.startswith("inputs.")):
        return short_id(value)
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


@store_command(app, "gc")
def gc_cmd(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be dropped.")] = False,
    grace: Annotated[
        float,
        typer.Option(
            "--grace",
            metavar="SECONDS",
            help="Keep objects younger than this (in use by a running stage).",
        ),
    ] = 3600.0,
    *,
    common: StoreCommon,
) -> None:
    """Drop artifact versions that no path holds and no held artifact descends from.

    On a store in object storage: deleted from the bucket (objects modified in the last
    15 minutes are kept whatever --grace says), and the local cache pruned."""
    store = _store(common)
    report = store.gc_report(dry_run=dry_run, grace=grace)
    dead, cache = report["dropped"], report.get("cache")
    if common.json:
        print_json({**report, "dry_run": dry_run})
        return
    for i in dead:
        sys.stdout.write(short_id(i) + "\n")
    for i in cache or []:
        sys.stdout.write(short_id(i) + "\tcache\n")
    verb = "would drop" if dry_run else "dropped"
    text = f"gc: {verb} {len(dead)} artifacts"
    if cache is not None:
        text += f" from {getattr(store, 'url', store.root)}, and {len(cache)} cached copies"
    stderr_console().print(text, markup=False)


@store_command(app, "reindex")
def reindex_cmd(*, common: StoreCommon) -> None:
    """Rebuild the store's index from the manifests and the journal."""
    count, problems = _store(common).reindex()
    if common.json:
        print_json({"artifacts": count, "problems": problems})
    for p in problems:
        stderr_console().print(f"reindex: skipped {p}", markup=False)
    stderr_console().print(
        f"reindex: {count} artifacts indexed" + (f", {len(problems)} skipped" if problems else ""),
        markup=False,
    )
    if problems:
        raise typer.Exit(ExitCode.GATE)


@store_command(app, "runs")
def runs_cmd(
    sort: Annotated[
        str | None,
        typer.Option(
            "--sort",
            metavar="METRIC",
            help="Sort by a metric (cv, or SPLIT.METRIC like eval.accuracy), best first.",
        ),
    ] = None,
    filter_: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            metavar="KEY=VALUE",
            help="Keep runs whose field equals VALUE (estimator=..., task=..., label=...).",
        ),
    ] = None,
    *,
    common: StoreCommon,
) -> None:
    """Every trained model in the store: time, id, estimator, params, data and features ids, metrics."""
    from ..store.runs import list_runs

    runs = list_runs(_store(common), sort=sort, filters=filter_ or [])
    if common.json:
        print_json(runs)
        return
    rows = []
    for r in runs:
        metrics = " ".join(f"{k}={v:.4g}" for k, v in r["metrics_flat"].items())
        params = ",".join(f"{k}={v}" for k, v in (r["params"] or {}).items())
        rows.append(
            [
                r["created"],
                short_id(r["id"]),
                r["estimator"],
                params,
                short_id(r["data"]),
                short_id(r["features"]),
                "" if r["cv_score"] is None else f"{r['cv_score']:.4g}",
                metrics,
            ]
        )
    print_table(["created", "id", "estimator", "params", "data", "features", "cv", "metrics"], rows)
