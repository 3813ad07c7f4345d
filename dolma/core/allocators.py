"""Allocator settings that let a process give freed memory back soon, applied when ``dolma`` is imported.

Two allocators hold a batch's memory: polars' own jemalloc (its frames and hash tables) and the C library's malloc
(numpy's arrays). Both keep freed memory by default — jemalloc for seconds, glibc's malloc below a threshold that
grows with every large array freed — so the phases of one large batch (a giant document's words, lines, k-gram keys
and group-bys) added up instead of reusing one another's space: measured on an 8 MB document, ``tag``'s peak grew by
~28× its size with polars' jemalloc defaults. jemalloc here returns freed pages after 100 ms (polars' default: 500
ms, then 1 s more): the same document grows the peak by 17-22× its size. Returning them at once (0 ms) kept it at
~12×, but every reuse of a page then faulted it in again: on a 6.7k-document shard the four heuristic taggers spent
1.9-2.1 s of 10 CPU s in the kernel (1.35M page faults) against 1.0-1.1 s (0.65M faults) at 100 ms. Spawned workers
import the package too, so they get the same settings. A value the user set in the environment wins.
"""

from __future__ import annotations

import ctypes
import os
import sys

JEMALLOC = "_RJEM_MALLOC_CONF"  # polars' jemalloc is built with the _rjem_ prefix; read when polars loads
JEMALLOC_RETURN_SOON = "dirty_decay_ms:100,muzzy_decay_ms:0"
MMAP_THRESHOLD = 1 << 20  # glibc: allocations from 1 MiB up are mapped and unmapped, never kept in the heap
M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h); setting it also stops the threshold's growth


def return_freed_memory() -> None:
    """Set both allocators to return freed memory soon (where the user has not chosen otherwise)."""
    os.environ.setdefault(JEMALLOC, JEMALLOC_RETURN_SOON)
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    try:
        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except (OSError, AttributeError):  # a C library without mallopt (musl): its defaults stay
        pass
