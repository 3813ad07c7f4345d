"""Process-wide I/O set-up, done once by :func:`configure` (readers, writers and the runtime call it).

- ``.gz`` is read through ISA-L (python-isal: the same format, over twice zlib's decompression speed) and
  written by the standard library's deterministic gzip.
- Arrow buffers come from the C library's allocator unless ``ARROW_DEFAULT_MEMORY_POOL`` says otherwise. Arrow
  tables here are large and short-lived (a shuffle partition, a stats table): under pyarrow's default mimalloc
  pool, fresh buffers that size cost the kernel up to as much as the work itself (the mixer's write step spent
  0.05-0.38 s of system time zeroing huge pages beside 0.23-0.35 s of its own, against 0.06-0.08 s with the C
  library's allocator).
"""

from __future__ import annotations

import gzip
import os
from typing import BinaryIO

import pyarrow as pa
import smart_open
from isal import igzip

_configured = False


def _open_gzip(file_obj: BinaryIO, mode: str, **kwargs) -> BinaryIO:
    if "r" in mode:
        return igzip.IGzipFile(fileobj=file_obj, mode="rb")
    return gzip.GzipFile(fileobj=file_obj, mode=mode, **kwargs)


def configure() -> None:
    """Register the gzip reader with smart_open and choose Arrow's allocator; cheap after the first call."""
    global _configured
    if _configured:
        return
    smart_open.register_compressor(".gz", _open_gzip)
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        pa.set_memory_pool(pa.system_memory_pool())
    _configured = True
