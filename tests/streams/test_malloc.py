"""streams/malloc.py: free heap pages go back to the system; elsewhere nothing happens.

The trim test runs in a child process of its own, so no other test's heap is in
the way: it fills glibc's heap with blocks too big for Python's own allocator,
frees all but the last (which pins the heap's top, so glibc cannot shrink it on
its own) and reads the process's anonymous memory before and after ``trim``.
"""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from streams import malloc

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

CHILD = """
import sys
from pathlib import Path
from streams import malloc

def anon_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no RssAnon")

blocks = [bytes(1000 + i % 7) for i in range(100_000)]  # ~100 MB of 1 KB malloc blocks
pin = blocks[-1]
del blocks
before = anon_mb()
trimmed = malloc.trim()
print(trimmed, before, anon_mb())
"""


@pytest.mark.skipif(not GLIBC, reason="malloc_trim and mallopt are glibc's")
def test_trim_gives_free_heap_pages_back() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                          check=True, timeout=60)
    trimmed, before, after = done.stdout.split()
    assert trimmed == "True"
    assert float(before) - float(after) > 50, done.stdout  # most of the 100 MB went back


@pytest.mark.skipif(not GLIBC, reason="malloc_trim and mallopt are glibc's")
def test_limit_arenas_is_accepted() -> None:
    assert malloc.limit_arenas() is True


def test_without_glibc_both_do_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(malloc, "_libc", lambda: None)
    assert malloc.trim() is False
    assert malloc.limit_arenas() is False


def test_fewer_collections_raises_the_young_threshold_and_puts_it_back() -> None:
    import gc

    before = gc.get_threshold()
    with malloc.fewer_collections():
        assert gc.get_threshold() == (max(before[0], malloc.GC_YOUNG_THRESHOLD), *before[1:])
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), malloc.fewer_collections():
        raise RuntimeError("a failed read")
    assert gc.get_threshold() == before
