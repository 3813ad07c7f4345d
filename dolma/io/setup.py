"""Process-wide I/O set-up, done once by :func:`configure` (readers, writers and the runtime call it).

- smart_open is imported only for a remote URL (:func:`smart_open_module`): its import pulls in every cloud
  SDK's client (boto3, google-auth, ...), about 0.6 s in each fresh process, which a local run never needs.

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
from isal import igzip

_configured = False
_smart_open = None


def _open_gzip(file_obj: BinaryIO, mode: str, **kwargs) -> BinaryIO:
    if "r" in mode:
        return igzip.IGzipFile(fileobj=file_obj, mode="rb")
    return gzip.GzipFile(fileobj=file_obj, mode=mode, **kwargs)


def smart_open_module():
    """smart_open, imported on first use with ISA-L registered as its ``.gz`` reader."""
    global _smart_open
    if _smart_open is None:
        import smart_open

        smart_open.register_compressor(".gz", _open_gzip)
        _smart_open = smart_open
    return _smart_open


def configure() -> None:
    """Choose Arrow's allocator; cheap after the first call."""
    global _configured
    if _configured:
        return
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        pa.set_memory_pool(pa.system_memory_pool())
    _configured = True
