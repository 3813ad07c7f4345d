"""Document lines read in batches from JSONL(.gz/.zst) or Parquet, every unusable line a :class:`Rejected`.

Memory is bounded by the batch (and one decompressed block). A line that cannot become a document is returned
as a Rejected record with its line number and reason instead of raising, and a corrupt or truncated compressed
stream ends the file with one such record (the lines before the damage are kept): the caller decides what to
quarantine, and nothing is skipped silently.
"""

from __future__ import annotations

import contextlib
import gc
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from io import BytesIO

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import smart_open
import zstandard
from isal import isal_zlib

from dolma.core.document import ENCODER, Document, LazyDocument, decode_document
from dolma.io.setup import configure
from dolma.io.urls import is_remote

try:  # smart_open decompresses .zst with the standard library's zstd (backported before Python 3.14)
    from compression.zstd import ZstdError
except ImportError:
    from backports.zstd import ZstdError

STREAM_ERRORS = (EOFError, OSError, zlib.error, isal_zlib.error, zstandard.ZstdError, ZstdError)


@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str
    error: str
    raw: bytes = b""
    id: str | None = None


@dataclass
class DocBatch:
    """Documents read from one file, with their 1-based line numbers, and the lines that were rejected."""

    docs: list[Document] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    nbytes: int = 0
    attributes: list[dict[str, dict[str, list]]] = field(default_factory=list)  # per doc: name -> attributes

    @property
    def records(self) -> int:
        """The lines this batch accounts for: documents and rejected lines."""
        return len(self.docs) + len(self.rejected)


_BLOCK = 1 << 20  # decompressed bytes per read: one read and one split per block instead of a call per line


def _line_blocks(url: str) -> Iterator[list[bytes]]:
    """The raw lines of a file (each with its newline; the last may lack one), a block at a time. Where the
    stream breaks, the whole lines before the break are recovered by re-reading the file line by line and
    yielded, then the error is raised, as a line-by-line reader would."""
    configure()
    done = 0
    try:
        with smart_open.open(url, "rb") as f:
            head: list[bytes] = []  # the start of a line longer than the blocks read so far
            while block := f.read(_BLOCK):
                if b"\n" not in block:
                    head.append(block)
                    continue
                lines = BytesIO(b"".join([*head, block]) if head else block).readlines()
                head = [] if lines[-1].endswith(b"\n") else [lines.pop()]
                done += len(lines)
                yield lines
            if head:
                yield [b"".join(head)]
    except STREAM_ERRORS:
        rest: list[bytes] = []
        with smart_open.open(url, "rb") as f:
            try:
                for number, line in enumerate(f):
                    if number >= done:
                        rest.append(line)
            except STREAM_ERRORS:  # raised again, after the lines it left readable
                if rest:
                    yield rest
                raise
        if rest:
            yield rest


def _read_lines(url: str) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based line number, raw line); decompression errors propagate to the caller."""
    first = 1
    for lines in _line_blocks(url):
        yield from zip(range(first, first + len(lines)), lines)
        first += len(lines)


def read_selected(url: str, lines: set[int]) -> Iterator[tuple[int, Document]]:
    """(line, document) of only the given lines of a document file: other JSON lines are not even parsed."""
    if url.endswith(".parquet"):
        for batch in read_documents(url):
            yield from ((n, d) for n, d in zip(batch.lines, batch.docs) if n in lines)
        return
    for number, line in _read_lines(url):
        if number in lines:
            yield number, decode_document(line.strip())


@dataclass
class LineBatch:
    """Raw document lines of one file with their 1-based numbers; unreadable input as Rejected records."""

    numbers: list[int] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    nbytes: int = 0

    @property
    def records(self) -> int:
        """The lines this batch accounts for: raw lines and rejected ones."""
        return len(self.lines) + len(self.rejected)


def read_lines(url: str, batch_size: int = 4096) -> Iterator[LineBatch]:
    """Document lines of a JSONL(.gz/.zst) file, or the rows of a Parquet file rendered as the same JSON lines,
    unparsed: for readers that decode only some of them. A corrupt stream ends the file with a Rejected."""
    if url.endswith(".parquet"):
        yield from _parquet_lines(url, batch_size)
        return
    batch = LineBatch()
    number = 0
    try:
        for lines in _line_blocks(url):
            at = 0
            while at < len(lines):
                part = lines[at : at + batch_size - len(batch.lines)]
                batch.numbers.extend(range(number + 1, number + 1 + len(part)))
                batch.lines.extend(part)
                batch.nbytes += sum(map(len, part))
                at, number = at + len(part), number + len(part)
                if len(batch.lines) >= batch_size:
                    yield batch
                    batch = LineBatch()
    except STREAM_ERRORS as e:
        batch.rejected.append(
            Rejected(number + 1, "corrupt_stream", f"{type(e).__name__}: {e}; the rest of the file is unreadable")
        )
    yield batch


def read_documents(url: str, batch_size: int = 4096, lazy: bool = False) -> Iterator[DocBatch]:
    """Stream validated documents from a JSONL(.gz/.zst) or Parquet file in batches (``lazy``: as
    :class:`LazyDocument`, the text left undecoded)."""
    for raw in read_lines(url, batch_size):
        batch = DocBatch(rejected=raw.rejected, nbytes=raw.nbytes)
        for number, line in zip(raw.numbers, raw.lines):
            try:
                batch.docs.append(parse_line(number, line, lazy))
                batch.lines.append(number)
            except RejectedLine as e:
                batch.rejected.append(e.rejected)
        yield batch


class RejectedLine(Exception):
    """Raised by :func:`parse_line` for a line that is not a valid document, with its Rejected record."""

    def __init__(self, rejected: Rejected):
        self.rejected = rejected


def parse_line(number: int, line: bytes, lazy: bool = False) -> Document | LazyDocument:
    """One document line, validated; raises RejectedLine with the reason (blank, invalid JSON or schema)."""
    stripped = line.strip()
    if not stripped:
        raise RejectedLine(Rejected(number, "empty_line", "blank line where a document was expected"))
    try:
        return decode_document(stripped, lazy)
    except ValueError as e:
        reason, _, error = str(e).partition(": ")
        raise RejectedLine(Rejected(number, reason, error, raw=line[:4096])) from None


class _IdOnly(msgspec.Struct):
    id: str


_ID_DECODER = msgspec.json.Decoder(_IdOnly)


def line_id(line: bytes) -> str | None:
    """The id of a document line, the rest skipped unparsed (None when the line is not a JSON object with a
    string id): for checking alignment on lines a reader does not otherwise need."""
    try:
        return _ID_DECODER.decode(line).id
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None


def starts_with_id(lines: list[bytes], ids: Sequence[str]) -> np.ndarray:
    """Whether each line starts as a JSON object whose first key is "id" with the given value (as written by
    us, allenai dolma or Python's json) and ends with its closing brace: the alignment check for lines no
    step needs to parse, a byte comparison instead of a parse. A line failing it is not necessarily wrong
    (other key order or escaping): parse it with :func:`line_id` to tell."""
    ok = np.zeros(len(lines), bool)
    for k, (line, id) in enumerate(zip(lines, ids)):
        value = ENCODER.encode(id)
        ok[k] = (line.startswith(b'{"id":' + value) or line.startswith(b'{"id": ' + value)) and b"}" in line[-3:]
    return ok


def _parquet_lines(url: str, batch_size: int) -> Iterator[LineBatch]:
    """Parquet rows as JSON lines, so Parquet input gets exactly the JSONL validation."""
    try:
        with smart_open.open(url, "rb") as raw:
            pf = pq.ParquetFile(pa.BufferReader(raw.read()) if is_remote(url) else url)
            names = set(pf.schema_arrow.names)
            if not {"id", "text"} <= names:
                yield LineBatch(
                    rejected=[Rejected(1, "invalid_schema", f"parquet lacks columns { ({'id', 'text'} - names) }")]
                )
                return
            first = 1
            for record_batch in pf.iter_batches(batch_size=batch_size):
                yield _parquet_batch(record_batch, first)
                first += record_batch.num_rows
    except (pa.ArrowException, OSError) as e:
        yield LineBatch(rejected=[Rejected(1, "corrupt_stream", f"{type(e).__name__}: {e}")])


def _parquet_batch(record_batch: pa.RecordBatch, first: int) -> LineBatch:
    table = pa.Table.from_batches([record_batch])
    if "metadata" in table.column_names and not pa.types.is_string(table.schema.field("metadata").type):
        import polars as pl

        meta = pl.from_arrow(table.column("metadata")).struct.json_encode().to_arrow()
        table = table.set_column(table.column_names.index("metadata"), "metadata", meta)
    batch = LineBatch()
    for offset, row in enumerate(table.to_pylist()):
        metadata = row.pop("metadata", None)
        row = {k: row.get(k) for k in ("id", "text", "source", "added", "created") if row.get(k) is not None}
        line = ENCODER.encode(row)
        if metadata:
            line = line[:-1] + b',"metadata":' + metadata.encode() + b"}"
        batch.nbytes += len(line)
        batch.numbers.append(first + offset)
        batch.lines.append(line)
    return batch


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cycle collector paused for one shard's reading: decoding allocates several small containers
    per line, all acyclic and freed by reference counting, which the collector would otherwise rescan again and
    again as they pile up in a batch (a quarter of the mixer's statistics step)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
