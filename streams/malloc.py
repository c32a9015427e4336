"""glibc's allocator, told to keep less: fewer arenas, and free pages handed back;
Python's collector, told to run less often where it only rescans what lives on.

A worker's memory after start is mostly long-lived objects (reference data,
per-member state), but reading reference data makes and drops far more than it
keeps: glibc holds the freed space (measured: about 40 MB of free chunks in the
heap of a 2,000-staff worker once caught up) and never gives it back by itself.
``trim`` hands the free pages back (``malloc_trim(0)``); ``limit_arenas`` caps
the per-thread arenas (the metrics server's and the executors' threads each
get one otherwise), as ``MALLOC_ARENA_MAX`` would if set before start.

Elsewhere (musl, macOS, Windows) both do nothing.

``fewer_collections`` raises the young-generation threshold for a stretch of work
that holds a few thousand objects at a time while making millions: the collector
counts objects made less objects freed, so the held ones bring on collections, and
every tenth of those is a full one over the whole worker.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

log = logging.getLogger("accesswatch.worker")
M_ARENA_MAX = -8  # mallopt parameter (malloc.h)
ARENAS = 2
GC_YOUNG_THRESHOLD = 50_000  # allocations between young collections (Python's default: 700)


@cache
def _libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 - glibc only: AttributeError elsewhere
    except (OSError, AttributeError):
        return None
    return libc


def limit_arenas(arenas: int = ARENAS) -> bool:
    """At most ``arenas`` malloc arenas from now on; call before threads start."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, arenas) == 1)


def trim() -> bool:
    """Hand the allocator's free pages back to the system; True when some went back."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0) == 1)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Young collections every ``GC_YOUNG_THRESHOLD`` allocations at least, until the
    block ends (the threshold is put back then)."""
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], GC_YOUNG_THRESHOLD), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
