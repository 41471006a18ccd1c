"""What an output path may replace: mlstage never destroys what it does not own.

`-o DIR` is swapped in whole, so whatever DIR held is gone from the file system (an
artifact's previous version stays in the store, a user's folder would not). A stage
therefore replaces DIR only when it is absent, empty, or an mlstage artifact holding
nothing but its manifest and the files the manifest lists; and never writes onto the
store, the current directory or a parent of it, a parent of one of its inputs, or one
of its inputs (except an artifact of the kind it writes: `schema --update S -o S`
replaces the schema it widens, whose old version the store keeps). `--force` only
reruns a stage; it does not lift these rules.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import BadInput, opt
from .artifact import MANIFEST, MAX_MANIFEST_BYTES
from .fsutil import is_empty_dir, is_regular_file
from .storeloc import STORE_MARKER


def is_store(folder: Path) -> bool:
    return (folder / STORE_MARKER).is_file() or (
        (folder / "objects").is_dir() and (folder / "index.sqlite").is_file()
    )


def create_store(root: Path) -> None:
    """Make a store's folder so that it appears whole: its marker and objects/ are made in
    a folder beside it and renamed into place (over an empty folder too). Processes may
    race to make it; one rename wins, the others find a store. (Made in place, another
    process could see objects/ before the marker and take the folder for a user's.)"""
    import errno
    import threading

    from .fsutil import remove_tree

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.creating-{os.getpid()}-{threading.get_ident()}"
    remove_tree(tmp)
    tmp.mkdir()
    try:
        (tmp / STORE_MARKER).write_text(
            "mlstage-store/1: a store of mlstage artifacts (do not edit)\n"
        )
        (tmp / "objects").mkdir()
        try:
            os.rename(tmp, root)
        except OSError as e:
            if not (e.errno in (errno.ENOTEMPTY, errno.EEXIST) and is_store(root)):
                raise
    finally:
        remove_tree(tmp)


def read_small_json(path: Path):
    """A JSON file that is a regular file of a manifest's size, or None: never follows a
    link or reads a fifo (a `manifest.json` that is one would hang or fill memory)."""
    if not is_regular_file(path, MAX_MANIFEST_BYTES):
        return None
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def owner(path: Path) -> tuple[str, Path] | None:
    """What mlstage thing holds `path` (a folder above it, not `path` itself): a store, an
    artifact, or a registry model folder (whose versions only `deploy` writes)."""
    here = _real(path)
    for folder in here.parents:
        if is_store(folder):
            return "the store", folder
        if _format(folder / MANIFEST) == "mlstage-artifact/1":
            return "an artifact", folder
        if _format(folder / "serving.json") == "mlstage-serving/1":
            return "a registry model folder", folder
    return None


def _format(path: Path) -> str | None:
    """The `format` of an mlstage document at `path` (a web app's manifest.json is not one)."""
    if not path.exists():
        return None
    doc = read_small_json(path)
    return doc.get("format") if isinstance(doc, dict) else None


def _real(path: Path) -> Path:
    """The path with every existing component's links resolved (the path need not exist)."""
    return Path(os.path.realpath(path))


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def artifact_kind(folder: Path) -> str | None:
    """The kind of the artifact in `folder` when it holds one and nothing else, else None."""
    doc = read_small_json(folder / MANIFEST)
    try:
        listed = {f["path"] for f in doc["files"]} | {MANIFEST}
        if doc.get("format") != "mlstage-artifact/1" or not isinstance(doc.get("kind"), str):
            return None
    except (KeyError, TypeError, AttributeError):
        return None
    extra = [n for n in os.listdir(folder) if n not in listed]
    return None if extra else doc["kind"]


def check_output(
    out: Path,
    *,
    store_root: Path | None,
    reads: Iterable[str] = (),
    kind: str | None = None,
) -> None:
    """Bad input naming `out` when writing there could destroy something mlstage does not own.

    `reads`: the paths the stage reads (artifact directories or raw files; `@id`
    references live in the store, which is protected as a whole). `kind`: the kind of
    artifact the stage writes (an input of that kind may be replaced by its new version).
    """
    name = f"{opt('out', '-o')} {out}"
    if out.is_symlink():
        raise BadInput(f"{name}: is a symbolic link; give the real directory")
    real = _real(out)
    cwd = _real(Path.cwd())
    if _within(cwd, real):
        raise BadInput(f"{name}: is the current directory or holds it; give a folder of its own")
    if store_root is not None:
        store = _real(store_root)
        if _within(real, store) or _within(store, real):
            raise BadInput(f"{name}: is the store {store_root} or overlaps it; write outside it")
    held = owner(out)
    if held is not None:
        raise BadInput(f"{name}: is inside {held[0]} {held[1]}; write outside it")
    if is_store(out):
        raise BadInput(f"{name}: is a store; write outside it")
    own_input = False
    for ref in reads:
        if not ref or ref.startswith("@") or ref == "-" or ref.startswith("s3:/"):
            continue
        read = _real(Path(ref))
        if read == real:
            own_input = True
        elif _within(read, real):
            raise BadInput(f"{name}: holds an input of this stage ({ref}); write elsewhere")
    if not out.exists():
        return
    if not out.is_dir():
        raise BadInput(f"{name}: is a file; an output is a directory (an artifact)")
    if is_empty_dir(out):
        return
    found = artifact_kind(out)
    if found is None:
        entries = sorted(os.listdir(out))
        shown = ", ".join(entries[:5]) + (", …" if len(entries) > 5 else "")
        raise BadInput(
            f"{name}: holds files that are not an mlstage artifact ({shown}); mlstage replaces"
            " only an empty folder or an artifact it wrote: choose another path"
        )
    if own_input and found != kind:
        raise BadInput(
            f"{name}: is this stage's own input (a {found}); write the {kind or 'output'} elsewhere"
        )


def check_file_output(out: Path, *, marker: bytes, what: str) -> None:
    """A single-file output (a report) replaces only a file it wrote before (`marker` in its
    first bytes), never a directory or another file."""
    option = opt("out", "-o")
    if out.is_symlink():
        raise BadInput(f"{option} {out}: is a symbolic link; give the real file")
    if out.is_dir():
        raise BadInput(f"{option} {out}: is a directory; give a file name for the {what}")
    held = owner(out)
    if held is not None:
        raise BadInput(f"{option} {out}: is inside {held[0]} {held[1]}; write outside it")
    if out.exists() and not is_regular_file(out):
        raise BadInput(f"{option} {out}: is not a regular file (a fifo or a device?)")
    if out.exists():
        try:
            with open(out, "rb") as f:
                head = f.read(4096)
        except OSError as e:
            raise BadInput(f"{option} {out}: cannot read it: {e.strerror}") from None
        if marker not in head:
            raise BadInput(
                f"{option} {out}: exists and is not a {what} mlstage wrote; choose another name"
            )
