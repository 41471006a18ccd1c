"""Keeping the server's memory from only ever growing (glibc's allocator; a no-op where
the C library is something else).

- `few_arenas`: at most two malloc arenas (what gunicorn's docs advise as
  MALLOC_ARENA_MAX). glibc gives each thread that allocates its own arena, up to 8 per
  core, and large requests are parsed in worker threads; memory freed there was kept
  per arena, so the server's size grew with the number of threads that ever held a
  large body. Set in this process by mallopt, and for worker processes (started
  afresh) by MALLOC_ARENA_MAX.
- `give_back`: hand freed heap memory back to the system (malloc_trim). Bodies and rows
  of large requests are freed, but glibc keeps the pages; the registry watcher calls it
  every second.
"""

from __future__ import annotations

import os
from functools import cache

M_ARENA_MAX = -8


@cache
def _libc():
    """The C library, loaded once (None when it cannot be)."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def few_arenas() -> None:
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is not None:
        mallopt(M_ARENA_MAX, 2)


def give_back() -> None:
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is not None:
        trim(0)
