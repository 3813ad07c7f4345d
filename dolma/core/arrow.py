"""Arrow arrays built without pyarrow's pandas probe.

The first time ``pyarrow.array`` (or ``pa.table`` over Python lists) sees a value, pyarrow imports pandas, if it
is installed, to ask whether the value is a pandas object: about 0.3 s of CPU in every process, which is most of
a small stage's fixed cost (``datasets`` brings pandas in). polars builds the same Arrow array from a list or a
NumPy array without it; the cast gives the exact Arrow type asked for, so files keep their schema.
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
        return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, data]).cast(type)
    if type == pa.large_binary():  # bytes (a partition's documents): one joined buffer, no intermediate copies
        ends = np.zeros(len(values) + 1, np.int64)
        np.cumsum([len(v) for v in values], out=ends[1:])
        buffers = [None, pa.py_buffer(ends), pa.py_buffer(b"".join(values))]
        return pa.Array.from_buffers(type, len(values), buffers)
    listed = values if isinstance(values, np.ndarray) else list(values)
    return pl.Series(values=listed, strict=False).to_arrow().cast(type)
