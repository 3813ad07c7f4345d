"""Arrow arrays built from their buffers: no pandas probe, no cast, no polars.

The first time ``pyarrow.array`` (or ``pa.table`` over Python lists) sees a value, pyarrow imports pandas, if it
is installed, to ask whether the value is a pandas object: about 0.3 s of CPU in every process, which is most of
a small stage's fixed cost (``datasets`` brings pandas in). Numbers come from their NumPy buffer, strings and
bytes from one joined buffer and its offsets, so each array has the exact Arrow type asked for and files keep
their schema. Nothing here imports ``pyarrow.compute`` (a cast does: ~0.05 CPU s) or polars (~0.18 s): a stage
that needs neither, such as ``import``, writes its ledger without paying for them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

_OFFSETS = {pa.string(): np.int32, pa.binary(): np.int32, pa.large_string(): np.int64, pa.large_binary(): np.int64}


def array(values: Sequence | np.ndarray, type: pa.DataType) -> pa.Array:
    """``pa.array(values, type)`` for a 1-D NumPy array of numbers, or a list of str/bytes (None for null) for a
    string or binary type."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":  # fixed-width numbers: the buffer as is
        data = pa.py_buffer(np.ascontiguousarray(values))
        return _as(pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, data]), type)
    if type not in _OFFSETS:
        raise TypeError(f"no Arrow array of {type} from {len(values)} Python values here (numbers: a NumPy array)")
    encoded = [v.encode() if isinstance(v, str) else b"" if v is None else v for v in values]
    ends = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(v) for v in encoded], out=ends[1:])
    if ends[-1] > np.iinfo(_OFFSETS[type]).max:
        raise ValueError(f"{ends[-1]:,} bytes do not fit the 32-bit offsets of {type}")
    validity, nulls = None, 0
    if any(v is None for v in values):
        valid = np.array([v is not None for v in values], bool)
        validity, nulls = pa.py_buffer(np.packbits(valid, bitorder="little")), int((~valid).sum())
    buffers = [validity, pa.py_buffer(ends.astype(_OFFSETS[type])), pa.py_buffer(b"".join(encoded))]
    return pa.Array.from_buffers(type, len(encoded), buffers, nulls)


def dictionary(values: Sequence[str]) -> pa.DictionaryArray:
    """The strings dictionary-encoded: int32 indices into their distinct values, in order of first appearance."""
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(v, len(index)) for v in values), np.int32, len(values))
    return pa.DictionaryArray.from_arrays(array(codes, pa.int32()), array(list(index), pa.string()))


def _as(arr: pa.Array, type: pa.DataType) -> pa.Array:
    """``arr`` as ``type``: a cast (and its import) only where the NumPy type was not already the one asked for."""
    return arr if arr.type == type else arr.cast(type)
