"""The up-to-date shortcut: a stage command found up to date is answered the next time
from a record, before the CLI framework, the schema validator or any library loads.

An up-to-date stage does no work, yet its process spent ~0.3 s importing typer,
jsonschema and rich and re-reading and re-validating manifests; `make` reruns every
stage below a change and cron reruns the whole chain, so most runs are such runs.

When a stage command (`STAGES`) ends up to date with neither stdout nor stderr a
terminal, the CLI writes a record into the store, `cache/replay/KEY.json`:

- KEY: the sha256 of the command line, the working directory, the user and groups, the
  MLSTAGE_* and rendering variables, stdin's terminal size, the Python environment,
  mlstage's own files and those of the libraries that render or check (size, mtime);
- the paths the decision read, each resolved through its links: every path named on the
  command line (folders walked, stores not), what a glob there matches, and the inputs
  the output's manifest lists; for each file and folder its inode, type, size, mtime and
  ctime, taken before the run and again after, recorded only when both agree;
- the names a killed writer of the output would have left beside it (none, normally),
  and the inode of the store's index (the full path re-logs a write into a new one);
- what it printed, in order, on stdout and stderr, and its exit code.

The next run of the same command line whose paths all resolve and stat the same prints
the same and exits the same. Any difference — a file touched, rewritten, replaced, added
or removed, a link pointed elsewhere, a glob matching another file, another option,
variable, user or mlstage — and the command runs as usual. ctime cannot be set back by
hand (unlike mtime), so a file rewritten with its old mtime restored is seen. A file
changed within a second of the record (by the file system's clock: the record's own
mtime) could change again within one clock tick unseen, so such a run is not recorded
(git's "racily clean" rule). Never for --force, --dry-run, '-' (stdin/stdout), '--',
@id references, paths in /dev or /proc, fifos or devices; never from a run that
repaired something (`veto`). Records belong to the user who made them (mode 0600) and
are used only when that user and a writable store are there. Any trouble reading a
record means the usual path: the shortcut can make a command faster, never different.
MLSTAGE_NO_SHORTCUT=1 turns it off. Not for file systems whose times lie (NFS within
its attribute cache, FUSE mounts without ctime): turn it off there.

Only the standard library's `os`, `sys`, `stat` load with this module (`json`, `hashlib`,
`glob`, `time` when needed): `--help` passes through it.
Never for a command naming object storage (`s3://`, on its command line or in
MLSTAGE_STORE): objects have no inode or ctime to compare.
"""

from __future__ import annotations

import os
import stat
import sys
from typing import Any

from .storeloc import STORE_MARKER, find_store_root

FORMAT = "mlstage-replay/2"
RECORDS = os.path.join("cache", "replay")
# The stages whose up-to-date answer depends only on their command line and files
# (monitor's window depends on the clock; deploy and serve act).
STAGES = frozenset(
    {"ingest", "stats", "schema", "validate", "featurize", "train", "evaluate", "predict"}
)
RACY_NS = 1_000_000_000
MAX_WATCHED = 5000
# What changes how the same text is rendered (rich reads these) or what a stage does.
_ENV = ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TERM", "COLORTERM", "TTY_COMPATIBLE",
        "TTY_INTERACTIVE", "PYTHONIOENCODING", "PYTHONUTF8", "LANG", "LC_ALL", "LC_CTYPE")  # fmt: skip
# Libraries whose version changes what a stage prints or accepts.
_LIBS = ("rich", "typer", "jsonschema", "polars", "pyarrow", "numpy", "sklearn", "skops")
_NEVER = frozenset({"--force", "--dry-run", "-", "--", "-o-", "--out=-", "--help", "-h",
                    "--debug"})  # fmt: skip
_KINDS = (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK)


def _values(argv: list[str]) -> list[str]:
    """Every token and every `--option=value`'s value: what may name a path."""
    out = []
    for a in argv:
        out.append(a)
        if a.startswith("--") and "=" in a:
            out.append(a.split("=", 1)[1])
        elif a.startswith("-o") and len(a) > 2 and not a.startswith("--"):
            out.append(a[2:])
    return out


def _option(argv: list[str], *names: str) -> str | None:
    found = None
    for i, a in enumerate(argv):
        if a in names and i + 1 < len(argv):
            found = argv[i + 1]
        for n in names:
            if n.startswith("--") and a.startswith(n + "="):
                found = a[len(n) + 1 :]
            elif not n.startswith("--") and a.startswith(n) and len(a) > len(n):
                found = a[len(n) :]
    return found


def eligible(argv: list[str]) -> bool:
    if not argv or argv[0] not in STAGES or _option(argv, "-o", "--out") is None:
        return False
    if os.environ.get("MLSTAGE_NO_SHORTCUT"):
        return False
    if any(a in _NEVER or a.startswith("@") for a in _values(argv[1:])):
        return False
    # object storage is not seen by stat: a command naming it always runs in full
    if any("s3:/" in a for a in _values(argv[1:])) or "s3:/" in os.environ.get("MLSTAGE_STORE", ""):
        return False
    try:
        return not (sys.stdout.isatty() or sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


def _stamp(root: str, suffixes: tuple[str, ...]) -> list[list[Any]]:
    """The size and mtime of a package's files: a changed one must not answer."""
    found, stack = [], [root]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    if e.name != "__pycache__":
                        stack.append(e.path)
                elif e.name.endswith(suffixes):
                    st = e.stat(follow_symlinks=False)
                    found.append([e.path[len(root) :], st.st_size, st.st_mtime_ns])
    return sorted(found)


def _libs() -> list[list[Any]]:
    """The installed libraries' top files (an upgrade rewrites them), found without
    importing them."""
    found = []
    for name in _LIBS:
        for d in sys.path:
            init = os.path.join(d or ".", name, "__init__.py")
            try:
                st = os.stat(init)
            except OSError:
                continue
            found.append([init, st.st_size, st.st_mtime_ns, st.st_ino])
            break
    return found


def _terminal() -> list[int] | None:
    try:  # rich sizes its output from any of the three that is a terminal
        return list(os.get_terminal_size(0)) if os.isatty(0) else None
    except OSError:
        return None


def _key(argv: list[str]) -> str:
    import hashlib
    import json

    from ..version import __version__

    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = sorted((k, v) for k, v in os.environ.items() if k.startswith("MLSTAGE_") or k in _ENV)
    who = [os.geteuid(), os.getegid(), sorted(os.getgroups())]
    what = [FORMAT, __version__, sys.prefix, sys.version, os.getcwd(), argv, env, who,
            _terminal(), _stamp(package, (".py", ".json")), _libs()]  # fmt: skip
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()


def _store_root(argv: list[str]) -> str:
    out = os.path.abspath(_option(argv, "-o", "--out") or ".")
    return find_store_root(_option(argv, "--store"), os.path.dirname(out))


def _globs(argv: list[str]) -> dict[str, list[str]]:
    """What each token that looks like a glob matches now (ingest expands globs): a
    new file matching one must be seen. Tokens that are not globs match themselves."""
    magic = [a for a in _values(argv[1:]) if any(c in a for c in "*?[")]
    if not magic:
        return {}
    import glob

    return {a: sorted(glob.glob(a, recursive=True)) for a in magic}


def _entry(path: str) -> list[Any] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return [path, stat.S_IFMT(st.st_mode), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class _Unfit(Exception):
    """A path the shortcut must not vouch for (a device, a fifo, /proc), or too many."""


def _snapshot(roots: list[str]) -> dict[str, Any]:
    """Each root (as named, relative to the working directory) resolved through its
    links, and the stat of everything at and below the resolved paths (never into a
    store). Raises _Unfit."""
    resolved = {r: os.path.realpath(r) for r in roots}
    system = ("/dev/", "/proc/", "/sys/")
    if any(os.path.abspath(r).startswith(system) for r in roots):
        raise _Unfit("a device or a process's file")  # /dev/stdin is whatever stdin is
    seen: dict[str, list[Any]] = {}
    todo = [p for p in resolved.values()]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        if p.startswith(system):
            raise _Unfit(p)
        entry = _entry(p)
        if entry is None:
            continue
        if entry[1] not in _KINDS:
            raise _Unfit(p)
        if entry[1] == stat.S_IFDIR and os.path.isfile(os.path.join(p, STORE_MARKER)):
            continue  # its index and journal change with every run; nothing here reads them
        seen[p] = entry
        if len(seen) > MAX_WATCHED:
            raise _Unfit("too many files")
        if entry[1] == stat.S_IFLNK:  # inside a walked folder
            todo.append(os.path.realpath(p))
        elif entry[1] == stat.S_IFDIR:
            try:
                todo.extend(os.path.join(p, name) for name in os.listdir(p))
            except OSError as e:
                raise _Unfit(p) from e
        elif os.path.basename(p) == "manifest.json":
            todo.append(os.path.dirname(p))  # an artifact named by its manifest
    # lists, not tuples: the state is compared with its JSON copy in a record
    return {"resolved": [[r, p] for r, p in sorted(resolved.items())],
            "files": sorted(seen.values())}  # fmt: skip


def _roots(argv: list[str], out_dir: str) -> list[str]:
    """What the decision reads: the paths on the command line (the store aside), what
    globs there match, and the inputs the output's manifest lists."""
    import json

    store = _option(argv, "--store")
    roots = [v for v in _values(argv[1:]) if v and not v.startswith("-") and v != store]
    roots += [f for files in _globs(argv).values() for f in files]
    try:
        with open(os.path.join(out_dir, "manifest.json"), "rb") as f:
            inputs = json.loads(f.read()).get("inputs", [])
        roots += [i["path"] for i in inputs if isinstance(i.get("path"), str)]
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    return sorted(set(roots))


def _leftovers(out_dir: str) -> list[str]:
    """What a killed writer of the output leaves beside it (`fsutil.has_leftovers`)."""
    parent, name = os.path.split(out_dir)
    try:
        return sorted(n for n in os.listdir(parent or ".") if n.startswith(f".{name}."))
    except OSError:
        return ["?"]


def _state(argv: list[str], root: str) -> dict[str, Any]:
    """What an up-to-date answer rests on; `root`: the store's folder."""
    out_dir = os.path.abspath(_option(argv, "-o", "--out") or ".")
    try:
        index = os.stat(os.path.join(root, "index.sqlite")).st_ino
    except OSError:
        index = None
    return {**_snapshot(_roots(argv, out_dir)), "globs": _globs(argv),
            "leftovers": _leftovers(out_dir), "index": index}  # fmt: skip


def answer(argv: list[str]) -> int | None:
    """Print a recorded up-to-date run's output and return its exit code; None when
    there is no record for this command line or anything it watched has changed."""
    try:
        if not eligible(argv):
            return None
        import json

        key = _key(argv)
        root = _store_root(argv)
        path = os.path.join(root, RECORDS, key + ".json")
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                return None  # only a record of this user's, that no one else could write
            record = json.loads(f.read())
        if record.get("format") != FORMAT or record.get("key") != key:
            return None
        if not (
            os.path.isfile(os.path.join(root, STORE_MARKER)) and os.access(root, os.W_OK | os.X_OK)
        ):
            return None  # the full path would refuse this store
        if _state(argv, root) != record["state"]:
            return None
        if any(
            e[1] == stat.S_IFREG and not os.access(e[0], os.R_OK) for e in record["state"]["files"]
        ):
            return None
        for stream, text in record["output"]:
            target = sys.stdout if stream == 1 else sys.stderr
            target.write(text)
            target.flush()
        return int(record["exit"])
    except Exception:  # a missing, partial or odd record: the usual path answers
        return None


class _Tee:
    """A text stream passed through, and kept in order with the other, for the record."""

    def __init__(self, inner, number: int, chunks: list[tuple[int, str]]) -> None:
        self._inner = inner
        self._number = number
        self._chunks = chunks
        self.bypassed = False

    def write(self, text: str) -> int:
        self._chunks.append((self._number, text))
        return self._inner.write(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str):
        if name in ("buffer", "detach"):  # bytes written past the text layer: not kept
            self.bypassed = True
        return getattr(self._inner, name)


class Recorder:
    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.chunks: list[tuple[int, str]] = []
        self.out, self.err = _Tee(sys.stdout, 1, self.chunks), _Tee(sys.stderr, 2, self.chunks)
        self.up_to_date = 0
        self.vetoed = False
        self.root = _store_root(argv)
        try:
            self.before: dict[str, Any] | None = _state(argv, self.root)
        except _Unfit:
            self.before = None

    def finish(self, exit_code: int) -> None:
        import json
        import time

        if exit_code not in (0, 1, 4) or self.up_to_date != 1 or self.vetoed:
            return
        if self.out.bypassed or self.err.bypassed or self.before is None:
            return
        if _state(self.argv, self.root) != self.before:
            return  # something changed while it ran (or the run changed it: a repair)
        root = self.root
        if not os.path.isfile(os.path.join(root, STORE_MARKER)):
            return  # no store (or one older than its marker file): nowhere of ours to write
        key = _key(self.argv)
        record = {"format": FORMAT, "key": key, "argv": self.argv, "state": self.before,
                  "output": self.chunks, "exit": exit_code}  # fmt: skip
        path = os.path.join(root, RECORDS, key + ".json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(record, f)
            # "now" by the clock of the file system the record is on (git's rule)
            now = os.stat(tmp).st_mtime_ns
            newest = max((max(e[4], e[5]) for e in self.before["files"]), default=0)
            if newest < now - RACY_NS and time.time_ns() - now < RACY_NS:
                os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


_active: Recorder | None = None


def note_up_to_date() -> None:
    """A stage found its output up to date (called by `stages.base.run_stage`)."""
    if _active is not None:
        _active.up_to_date += 1


def veto() -> None:
    """This run repaired or healed something (a damaged index, a killed writer's swap, a
    journal line): what it printed is not what the next run would, so no record."""
    if _active is not None:
        _active.vetoed = True


def run_recorded(argv: list[str], run) -> None:
    """Run the command (`run` raises SystemExit, as click does), recording it when it
    ends up to date and may be answered from a record next time."""
    global _active
    if not eligible(argv):
        run()
        return
    _active = recorder = Recorder(argv)
    sys.stdout, sys.stderr = recorder.out, recorder.err
    code: Any = 0
    try:
        run()
    except SystemExit as e:
        code = e.code
        raise
    finally:
        sys.stdout, sys.stderr = recorder.out._inner, recorder.err._inner
        _active = None
        try:
            recorder.finish(code if isinstance(code, int) else (0 if code is None else 2))
        except Exception:  # a record is an optimisation: any trouble skips it, quietly
            pass
