"""File-system primitives: hashing, fsync, locks and the atomic directory swap.

An output directory is replaced all-or-nothing. `rename(2)` cannot replace a
non-empty directory, so on Linux the new directory is exchanged with the old
one by `renameat2(RENAME_EXCHANGE)`; where the file system refuses that, a
swap record beside the output lets the next command finish a swap cut short.
Either way, after a crash at any point the output holds the old version or the
new one, whole.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_CHUNK = 1 << 20
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def hash_files(paths: list[Path]) -> list[str]:
    """sha256_file of each path, in order; several files are hashed in threads, up to one
    per core this process may use and at most 4 (hashlib releases the GIL): a dataset's
    partitions hash in half the time on two cores. On an error or an interrupt the files
    not started yet are dropped, not read."""
    from .engine import local_cpus

    workers = min(len(paths), local_cpus(), 4)
    if workers < 2:
        return [sha256_file(p) for p in paths]
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(workers, thread_name_prefix="mlstage-hash")
    try:
        return list(pool.map(sha256_file, paths))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def is_regular_file(path: str | os.PathLike, max_bytes: int | None = None) -> bool:
    """Whether `path` is itself a regular file (not a link, fifo or device; lstat, so a
    link is never followed) of at most `max_bytes`: safe to read without hanging."""
    import stat

    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and (max_bytes is None or st.st_size <= max_bytes)


def is_empty_dir(path: str | os.PathLike[str]) -> bool:
    """Whether a directory holds nothing (its listing is closed at once, not left to the
    garbage collector)."""
    with os.scandir(os.fspath(path)) as entries:
        return next(entries, None) is None


def fsync_path(path: str | os.PathLike) -> None:
    """fsync a file or a directory (a directory's entries are made durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            fsync_path(os.path.join(dirpath, name))
        fsync_path(dirpath)


def write_bytes_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


@contextmanager
def file_lock(path: Path, *, shared: bool = False) -> Iterator[None]:
    """An advisory lock (flock) held for the duration of the block.

    flock locks are released by the kernel when the holder dies, so a killed
    writer never leaves a stale lock behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def sibling(out: Path, tag: str) -> Path:
    """A hidden path beside `out` (same directory, so renames stay atomic)."""
    return out.parent / f".{out.name}.{tag}"


def temp_sibling(out: Path) -> Path:
    return sibling(out, f"tmp-{os.getpid()}-{secrets.token_hex(4)}")


def _swap_record(out: Path) -> Path:
    return sibling(out, "swap.json")


_libc = None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths; False when the kernel or fs cannot."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fn = getattr(_libc, "renameat2", None)
    if fn is None:
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def remove_tree(path: Path) -> None:
    if not path.exists() and not path.is_symlink():
        return
    # Store files are read-only; the directory's write bit is what unlink needs.
    for dirpath, _dirs, _files in os.walk(path):
        os.chmod(dirpath, 0o755)
    shutil.rmtree(path, ignore_errors=True)


def swap_into_place(new: Path, out: Path) -> None:
    """Move the complete directory `new` to `out`, replacing any old `out`.

    The caller holds the lock of `out`.
    """
    fsync_tree(new)
    if not out.exists():
        os.rename(new, out)
        fsync_path(out.parent)
        return
    if _exchange(new, out):
        fsync_path(out.parent)
        remove_tree(new)  # now holds the old version
        return
    # Fallback: a record makes the two renames below restartable.
    old = sibling(out, f"old-{secrets.token_hex(4)}")
    record = _swap_record(out)
    write_bytes_durably(record, json.dumps({"new": new.name, "old": old.name}).encode())
    fsync_path(out.parent)
    os.rename(out, old)
    os.rename(new, out)
    fsync_path(out.parent)
    os.unlink(record)
    remove_tree(old)


def has_leftovers(out: Path) -> bool:
    """Whether a killed writer of `out` left a temporary directory or a swap record."""
    prefix = f".{out.name}."
    return any(
        name.startswith(prefix)
        and (name[len(prefix) :].startswith(("tmp-", "old-")) or name.endswith(".swap.json"))
        for name in os.listdir(out.parent)
    )


def recover(out: Path) -> None:
    """Finish or undo whatever a killed writer of `out` left behind.

    The caller holds the lock of `out`, so no live writer owns these files.
    """
    record = _swap_record(out)
    if record.exists():
        try:
            names = json.loads(record.read_text())
            new, old = out.parent / names["new"], out.parent / names["old"]
        except (ValueError, KeyError):
            new = old = None
        if new is not None and old is not None:
            # The new directory was complete before the record was written,
            # so the swap is always finished forwards.
            if new.exists():
                if out.exists() and not old.exists():
                    os.rename(out, old)
                os.rename(new, out)
                fsync_path(out.parent)
        record.unlink()
    prefix = f".{out.name}."
    for leftover in out.parent.glob(f"{prefix}tmp-*"):
        remove_tree(leftover)
    for leftover in out.parent.glob(f"{prefix}old-*"):
        remove_tree(leftover)
