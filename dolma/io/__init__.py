"""Streaming I/O for Dolma shards through URLs (local paths, ``s3://``, ``gs://``): the second floor.

It builds on :mod:`dolma.core` only. ``urls`` finds shards and names them, ``lines`` reads document lines in
batches (every unusable line a :class:`Rejected`), ``attributes`` joins attribute files line by line with their
documents, ``writers`` writes atomically, and ``setup`` holds the process-wide set-up (:func:`configure`). The
names below are the floor's public API: ``from dolma import io`` then ``io.read_documents(...)``.
"""

from dolma.io.attributes import (
    AttributeColumns,
    AttributeJoin,
    KeySelection,
    out_of_step,
    read_aligned,
    read_aligned_columns,
    read_attribute_columns,
    read_attributes,
)
from dolma.io.lines import (
    DocBatch,
    LineBatch,
    Rejected,
    RejectedLine,
    error_text,
    gc_paused,
    line_id,
    parse_line,
    parse_lines,
    read_documents,
    read_lines,
    read_selected,
    rejected_line,
    starts_with_id,
)
from dolma.io.setup import configure
from dolma.io.urls import (
    DOC_SUFFIXES,
    attributes_url,
    document_files,
    exists,
    identity,
    is_remote,
    join,
    list_files,
    open_url,
    refuse_output_in_input,
    relative_to_root,
    remove,
    require_attributes,
    strip_suffix,
)
from dolma.io.writers import (
    AtomicWriter,
    DocumentWriter,
    FrameRanges,
    FrameStream,
    read_arrow,
    read_frame,
    read_json,
    read_parquet,
    recording,
    remove_dead_temporaries,
    write_arrow,
    write_frame,
    write_json,
    write_lines,
    write_parquet,
)

__all__ = [
    "AtomicWriter", "AttributeColumns", "AttributeJoin", "DOC_SUFFIXES", "DocBatch", "DocumentWriter",
    "FrameRanges", "FrameStream", "KeySelection", "LineBatch", "Rejected", "RejectedLine", "attributes_url",
    "configure", "document_files", "error_text", "exists", "gc_paused", "identity", "is_remote", "join", "line_id",
    "list_files", "open_url", "out_of_step", "parse_line", "parse_lines", "read_aligned", "read_aligned_columns",
    "read_arrow", "read_attribute_columns", "read_attributes", "read_documents", "read_frame", "read_json",
    "read_lines", "read_parquet", "read_selected", "recording", "rejected_line", "relative_to_root",
    "refuse_output_in_input", "remove", "remove_dead_temporaries", "require_attributes", "starts_with_id",
    "strip_suffix", "write_arrow", "write_frame", "write_json", "write_lines", "write_parquet"
]  # fmt: skip
