"""Allocator settings that let a process give freed memory back at once, applied when ``dolma`` is imported.

Two allocators hold a batch's memory: polars' own jemalloc (its frames and hash tables) and the C library's malloc
(numpy's arrays). Both keep freed memory by default — jemalloc for seconds, glibc's malloc below a threshold that
grows with every large array freed — so the phases of one large batch (a giant document's words, lines, k-gram keys
and group-bys) added up instead of reusing one another's space: measured on an 8 MB document, ``tag``'s peak grew by
~28× its size with polars' jemalloc defaults and by ~12× with these settings (17-22× with freed pages kept 100 ms).
The price is jemalloc's purging: every reuse of a page faults it in again. On a 6.7k-document shard the four
heuristic taggers spent 1.9-2.1 s of ~9.7 CPU s in the kernel against 1.0 s with pages kept 100 ms, run directly;
timed by the benchmark harness (one thread, a fresh process) the same run took 8.4 CPU s either way, so the
memory bound is kept. Spawned workers import the package too, so they get the same settings. A value the user
set in the environment wins.
"""

from __future__ import annotations

import ctypes
import os
import sys

JEMALLOC = "_RJEM_MALLOC_CONF"  # polars' jemalloc is built with the _rjem_ prefix; read when polars loads
JEMALLOC_RETURN_AT_ONCE = "dirty_decay_ms:0,muzzy_decay_ms:0"
MMAP_THRESHOLD = 1 << 20  # glibc: allocations from 1 MiB up are mapped and unmapped, never kept in the heap
M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h); setting it also stops the threshold's growth


def return_freed_memory() -> None:
    """Set both allocators to return freed memory at once (where the user has not chosen otherwise)."""
    os.environ.setdefault(JEMALLOC, JEMALLOC_RETURN_AT_ONCE)
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    try:
        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except (OSError, AttributeError):  # a C library without mallopt (musl): its defaults stay
        pass
