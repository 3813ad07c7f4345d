"""Arrow arrays built without pyarrow's pandas probe.

The first time ``pyarrow.array`` (or ``pa.table`` over Python lists) sees a value, pyarrow imports pandas, if it
is installed, to ask whether the value is a pandas object: about 0.3 s of CPU in every process, which is most of
a small stage's fixed cost (``datasets`` brings pandas in). polars builds the same Arrow array from a list or a
NumPy array without it; the array then gets the exact Arrow type asked for, so files keep their schema. Where the
type is already right, or only the offsets' width differs (polars gives large strings), no cast runs: a cast
imports ``pyarrow.compute``, ~0.05 CPU s that a small stage would otherwise pay just to write its ledger.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import pyarrow as pa


def array(values: Sequence | np.ndarray, type: pa.DataType) -> pa.Array:
    """``pa.array(values, type)`` for a list of str/bytes/numbers or a 1-D NumPy array."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":  # fixed-width numbers: the buffer as is
        data = pa.py_buffer(np.ascontiguousarray(values))
        return _as(pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, data]), type)
    if type == pa.large_binary():  # bytes (a partition's documents): one joined buffer, no intermediate copies
        ends = np.zeros(len(values) + 1, np.int64)
        np.cumsum([len(v) for v in values], out=ends[1:])
        buffers = [None, pa.py_buffer(ends), pa.py_buffer(b"".join(values))]
        return pa.Array.from_buffers(type, len(values), buffers)
    listed = values if isinstance(values, np.ndarray) else list(values)
    return _as(pl.Series(values=listed, strict=False).to_arrow(), type)


def dictionary(values: Sequence[str]) -> pa.DictionaryArray:
    """The strings dictionary-encoded (int32 indices into their distinct values, sorted), in polars."""
    strings = pl.Series(values=list(values), dtype=pl.String)
    names = strings.unique().sort()
    codes = (strings.rank("dense") - 1).cast(pl.Int32).to_numpy() if len(strings) else np.zeros(0, np.int32)
    return pa.DictionaryArray.from_arrays(array(codes, pa.int32()), array(names.to_list(), pa.string()))


_NARROWER = {pa.large_string(): pa.string(), pa.large_binary(): pa.binary()}


def _as(arr: pa.Array, type: pa.DataType) -> pa.Array:
    """``arr.cast(type)``, without pyarrow's cast where the type already matches or only the offsets narrow."""
    if arr.type == type:
        return arr
    if _NARROWER.get(arr.type) == type and arr.offset == 0:
        validity, offsets, data = arr.buffers()
        wide = np.frombuffer(offsets, np.int64, len(arr) + 1)
        if wide[-1] < 2**31:
            narrow = pa.py_buffer(wide.astype(np.int32))
            return pa.Array.from_buffers(type, len(arr), [validity, narrow, data], arr.null_count)
    return arr.cast(type)
