"""The up-to-date shortcut: a stage command found up to date is answered the next time
from a record, before the CLI framework, the schema validator or any library loads.

An up-to-date stage does no work, yet its process spent ~0.3 s importing typer,
jsonschema and rich and re-reading and re-validating manifests; `make` reruns every
stage below a change and cron reruns the whole chain, so most runs are such runs.

When a stage command (`STAGES`) ends up to date with neither stdout nor stderr a
terminal, the CLI writes a record into the store, `cache/replay/KEY.json`:

- KEY: the sha256 of the command line, the working directory, the MLSTAGE_* and
  rendering variables, the Python environment and mlstage's own files (size, mtime);
- the inode, type, size, mtime and ctime of every file the decision read: each path
  named on the command line (folders walked, stores excluded), the output's parent
  folder (where a killed writer's leftovers would appear) and the inputs its manifest
  lists; taken before the run and again after, and recorded only when equal;
- what it printed on stdout and stderr, and its exit code.

The next run of the same command line whose files all stat the same prints the same and
exits the same. Any difference — a file touched, rewritten, replaced, added or removed,
another variable, another mlstage — and the command runs as usual. ctime cannot be set
back by hand (unlike mtime), so a file rewritten with its old mtime restored is seen.
A file changed within a second of the record could change again within one clock tick
unseen, so such a run is not recorded (git's "racily clean" rule). Never for --force,
--dry-run, '-' (stdin/stdout) or @id references; a glob's matches are compared too. Any trouble reading a record
means the usual path: the shortcut can make a command faster, never different.
MLSTAGE_NO_SHORTCUT=1 turns it off.

Only the standard library's `os`, `sys`, `stat` load with this module (`json`, `hashlib`,
`glob`, `time` when needed): `--help` passes through it.
"""

from __future__ import annotations

import os
import stat
import sys
from typing import Any

from .storeloc import find_store_root

FORMAT = "mlstage-replay/1"
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
_NEVER = frozenset({"--force", "--dry-run", "-", "-o-", "--out=-", "--help", "-h", "--debug"})
_STORE_MARKER = "mlstage-store"  # core.outputs.STORE_MARKER, not imported: it loads pathlib


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
    try:
        return not (sys.stdout.isatty() or sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


def _code_stamp() -> list[list[Any]]:
    """mlstage's own files: a changed stage must never answer with an old record."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found, stack = [], [root]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    if e.name != "__pycache__":
                        stack.append(e.path)
                elif e.name.endswith((".py", ".json")):
                    st = e.stat(follow_symlinks=False)
                    found.append([e.path[len(root) :], st.st_size, st.st_mtime_ns])
    return sorted(found)


def _key(argv: list[str]) -> str:
    import hashlib
    import json

    from ..version import __version__

    env = sorted((k, v) for k, v in os.environ.items() if k.startswith("MLSTAGE_") or k in _ENV)
    what = [FORMAT, __version__, sys.prefix, sys.version, os.getcwd(), argv, env, _code_stamp()]
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


def _snapshot(walk: list[str], only: list[str] | tuple[str, ...] = ()) -> list[list[Any]] | None:
    """The stat of each path that exists: those in `walk` with everything below them
    (never into a store), those in `only` alone; None past the cap."""
    seen: dict[str, list[Any]] = {}
    walked: set[str] = set()
    todo = [(os.path.abspath(p), True) for p in walk] + [(os.path.abspath(p), False) for p in only]
    while todo:
        p, below = todo.pop()
        if p in walked or (p in seen and not below):
            continue
        if below:
            walked.add(p)
        entry = seen.get(p) or _entry(p)
        if entry is None:
            continue
        is_store = entry[1] == stat.S_IFDIR and os.path.isfile(os.path.join(p, _STORE_MARKER))
        if is_store:
            continue  # its index and journal change with every run; nothing here reads them
        seen[p] = entry
        if len(seen) > MAX_WATCHED:
            return None
        if not below:
            continue
        if entry[1] == stat.S_IFLNK:
            todo.append((os.path.realpath(p), True))
        elif entry[1] == stat.S_IFDIR:
            try:
                todo.extend((os.path.join(p, name), True) for name in os.listdir(p))
            except OSError:
                return None
        elif os.path.basename(p) == "manifest.json":
            todo.append((os.path.dirname(p), True))  # an artifact named by its manifest
    return sorted(seen.values())


def _watched(argv: list[str]) -> tuple[list[str], list[str]]:
    """The paths named on the command line (walked), and the output's parent folder
    (alone: a killed writer's leftovers appear there)."""
    out = os.path.abspath(_option(argv, "-o", "--out") or ".")
    store = _option(argv, "--store")
    names = [v for v in _values(argv[1:]) if v and not v.startswith("-") and v != store]
    return names, [os.path.dirname(out)]


def answer(argv: list[str]) -> int | None:
    """Print a recorded up-to-date run's output and return its exit code; None when
    there is no record for this command line or anything it watched has changed."""
    try:
        if not eligible(argv):
            return None
        import json

        key = _key(argv)
        with open(os.path.join(_store_root(argv), RECORDS, key + ".json"), "rb") as f:
            record = json.loads(f.read())
        if record.get("format") != FORMAT or record.get("key") != key:
            return None
        if any(_entry(e[0]) != e for e in record["files"]) or _globs(argv) != record["globs"]:
            return None
        sys.stdout.write(record["stdout"])
        sys.stdout.flush()
        sys.stderr.write(record["stderr"])
        sys.stderr.flush()
        return int(record["exit"])
    except Exception:  # a missing, partial or odd record: the usual path answers
        return None


class _Tee:
    """A text stream passed through, and kept, for the record."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.parts: list[str] = []
        self.bypassed = False

    def write(self, text: str) -> int:
        self.parts.append(text)
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
        self.before = _snapshot(*_watched(argv))
        self.globs = _globs(argv)
        self.result: tuple[str, dict[str, Any]] | None = None
        self.notes = 0
        self.out, self.err = _Tee(sys.stdout), _Tee(sys.stderr)

    def finish(self, exit_code: int) -> None:
        import json
        import time

        if exit_code not in (0, 1, 4) or self.result is None or self.notes != 1:
            return
        if self.out.bypassed or self.err.bypassed or self.before is None:
            return
        out, manifest = self.result
        inputs = [i["path"] for i in manifest.get("inputs", []) if isinstance(i.get("path"), str)]
        walk, only = _watched(self.argv)
        if _snapshot(walk, only) != self.before or _globs(self.argv) != self.globs:
            return  # something changed while it ran
        matched = [f for files in self.globs.values() for f in files]
        files = _snapshot([*walk, out, *inputs, *matched], only)
        if files is None:
            return
        newest = max((max(e[4], e[5]) for e in files), default=0)
        if newest >= time.time_ns() - RACY_NS:
            return
        key = _key(self.argv)
        record = {
            "format": FORMAT,
            "key": key,
            "argv": self.argv,
            "files": files,
            "globs": self.globs,
            "stdout": "".join(self.out.parts),
            "stderr": "".join(self.err.parts),
            "exit": exit_code,
        }
        root = _store_root(self.argv)
        if not os.path.isfile(os.path.join(root, _STORE_MARKER)):
            return  # no store (or one older than its marker file): nowhere of ours to write
        path = os.path.join(root, RECORDS, key + ".json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.replace(tmp, path)


_active: Recorder | None = None


def note_up_to_date(out: Any, manifest: dict[str, Any]) -> None:
    """A stage found `out` up to date (called by `stages.base.run_stage`)."""
    if _active is not None:
        _active.notes += 1
        _active.result = (os.path.abspath(out), manifest)


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
        except OSError:
            pass  # a record is an optimisation: a read-only store or a full disk skips it
