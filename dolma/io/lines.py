"""Document lines read in batches from JSONL(.gz/.zst) or Parquet, every unusable line a :class:`Rejected`.

Memory is bounded by the batch (and one checked unit of the stream). A line that cannot become a document, for
any reason (RecursionError on deep nesting included), is returned as a Rejected record with its line number and
reason instead of raising; each damaged part of a compressed stream is one ``corrupt_stream`` record where it
was, and the lines before and after it are read (:mod:`dolma.io.streams`): the caller decides what to
quarantine, and nothing is skipped silently.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from io import BytesIO

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dolma.core.document import ENCODER, Document, LazyDocument, check_document, decode_document, decode_plain
from dolma.io.streams import Damage, chunks
from dolma.io.urls import is_remote, open_url

MAX_DOCUMENT_BYTES = int(float(os.environ.get("DOLMA_MAX_DOCUMENT_MB", "50")) * 1e6)  # larger lines: oversize
BATCH_BYTES = 16 << 20  # a document batch ends past this many raw bytes, whatever its count: memory per batch
RAW_CAP = 64 << 10  # bytes of a rejected line kept in quarantine; its full length is recorded beside them


@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str
    error: str
    raw: bytes = b""  # the line as read, cut at RAW_CAP bytes
    id: str | None = None
    size: int = 0  # the full length of the line in bytes


def rejected_line(number: int, reason: str, error: str, line: bytes, id: str | None = None) -> Rejected:
    """The record of an unusable line, its raw bytes capped and its full length kept."""
    return Rejected(number, reason, error, raw=line[:RAW_CAP], id=id, size=len(line))


def error_text(e: BaseException, limit: int = 500) -> str:
    """An exception as a one-line message for a quarantine record."""
    if isinstance(e, RecursionError):
        return "nested too deeply to decode (RecursionError)"
    text = f"{type(e).__name__}: {e}"
    return text if len(text) <= limit else text[:limit] + "…"


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


BOM = b"\xef\xbb\xbf"


def _line_blocks(url: str) -> Iterator[list[bytes] | Damage]:
    """The raw lines of a file (each with its newline; the last may lack one), a checked block at a time, with
    each unreadable part of the stream as one :class:`Damage` in its place (see :mod:`dolma.io.streams`): the
    line it cut is lost with it. A UTF-8 byte order mark at the start is not part of the first line."""
    head: list[bytes] = []  # the start of a line longer than the blocks read so far
    first = True
    for block in chunks(url):
        if isinstance(block, Damage):
            if head:
                block = Damage(f"{block.error}; a line cut there is lost with it")
            head = []
            yield block
            continue
        if first and block:
            block = block[len(BOM) :] if block.startswith(BOM) else block
            first = False
        if b"\n" not in block:
            head.append(block)
            continue
        lines = BytesIO(block).readlines()
        if head:  # the line cut by the last block ends in this one: only that line is joined, not the block
            lines[0] = b"".join([*head, lines[0]])
        head = [] if lines[-1].endswith(b"\n") else [lines.pop()]
        yield lines
    if head:
        yield [b"".join(head)]


def _read_lines(url: str) -> Iterator[tuple[int, bytes | Damage]]:
    """(1-based line number, raw line), and (number of the next line, Damage) where the stream broke: damage
    takes no line number, so the lines after it keep the numbers every reader of the file gives them."""
    number = 1
    for lines in _line_blocks(url):
        if isinstance(lines, Damage):
            yield number, lines
            continue
        yield from zip(range(number, number + len(lines)), lines)
        number += len(lines)


def corrupt(number: int, damage: Damage) -> Rejected:
    """The quarantine record of an unreadable part of a stream, at the number of the line after it."""
    return Rejected(number, "corrupt_stream", damage.error)


def read_selected(url: str, lines: set[int]) -> Iterator[tuple[int, Document]]:
    """(line, document) of only the given lines of a document file: other JSON lines are not even parsed."""
    if url.endswith(".parquet"):
        for batch in read_documents(url):
            yield from ((n, d) for n, d in zip(batch.lines, batch.docs) if n in lines)
        return
    last = max(lines, default=0)
    for number, line in _read_lines(url):
        if isinstance(line, Damage):
            continue
        if number in lines:
            yield number, decode_document(line.strip())
        if number >= last:  # the rest of the file is not read
            return


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


def read_lines(url: str, batch_size: int = 4096, max_bytes: int | None = None) -> Iterator[LineBatch]:
    """Document lines of a JSONL(.gz/.zst) file, or the rows of a Parquet file rendered as the same JSON lines,
    unparsed: for readers that decode only some of them. A corrupt stream ends the file with a Rejected.
    ``max_bytes`` also ends a batch once its lines hold that many bytes (readers that zip two files' batches
    together leave it unset, so both are cut at the same lines)."""
    if url.endswith(".parquet"):
        yield from _parquet_lines(url, batch_size)
        return
    batch = LineBatch()
    number = 0
    for lines in _line_blocks(url):
        if isinstance(lines, Damage):
            batch.rejected.append(corrupt(number + 1, lines))
            continue
        at = 0
        while at < len(lines):
            part = lines[at : at + batch_size - len(batch.lines)]
            if max_bytes is not None:
                part = part[: _fitting(part, max_bytes - batch.nbytes)]
            batch.numbers.extend(range(number + 1, number + 1 + len(part)))
            batch.lines.extend(part)
            batch.nbytes += sum(map(len, part))
            at, number = at + len(part), number + len(part)
            if len(batch.lines) >= batch_size or (max_bytes is not None and batch.nbytes >= max_bytes):
                yield batch
                batch = LineBatch()
    yield batch


def _fitting(lines: list[bytes], room: int) -> int:
    """How many of ``lines`` to take so that the batch reaches ``room`` more bytes: at least one."""
    sizes = np.cumsum([len(x) for x in lines])
    return max(1, int(np.searchsorted(sizes, room, side="left")) + 1)


def read_documents(url: str, batch_size: int = 4096, lazy: bool = False) -> Iterator[DocBatch]:
    """Stream validated documents from a JSONL(.gz/.zst) or Parquet file in batches of at most ``batch_size``
    documents and about ``BATCH_BYTES`` (``lazy``: as :class:`LazyDocument`, the text left undecoded)."""
    for raw in read_lines(url, batch_size, BATCH_BYTES):
        yield parse_lines(raw, lazy)


def parse_lines(raw: LineBatch, lazy: bool = False) -> DocBatch:
    """A batch of lines as documents, decoded together (:func:`decode_plain`); each unusable line is rejected
    with its reason exactly as :func:`parse_line` gives it."""
    batch = DocBatch(rejected=raw.rejected, nbytes=raw.nbytes)
    plain = decode_plain(raw.lines, lazy) if raw.lines and max(map(len, raw.lines)) <= MAX_DOCUMENT_BYTES else None
    if plain is None:  # some line does not decode: each is parsed alone, which names the reason
        for number, line in zip(raw.numbers, raw.lines):
            try:
                batch.docs.append(parse_line(number, line, lazy))
                batch.lines.append(number)
            except RejectedLine as e:
                batch.rejected.append(e.rejected)
        return batch
    docs, suspects = plain
    bad: set[int] = set()
    for i in suspects:
        try:
            docs[i] = check_document(docs[i], lazy)
        except ValueError as e:
            bad.add(i)
            reason, _, error = str(e).partition(": ")
            batch.rejected.append(rejected_line(raw.numbers[i], reason, error, raw.lines[i]))
    if bad:
        docs = [d for i, d in enumerate(docs) if i not in bad]
        batch.lines = [n for i, n in enumerate(raw.numbers) if i not in bad]
    else:
        batch.lines = list(raw.numbers)
    batch.docs = docs
    return batch


class RejectedLine(Exception):
    """Raised by :func:`parse_line` for a line that is not a valid document, with its Rejected record."""

    def __init__(self, rejected: Rejected):
        self.rejected = rejected


def parse_line(number: int, line: bytes, lazy: bool = False) -> Document | LazyDocument:
    """One document line, validated; raises RejectedLine with the reason (blank, invalid JSON or schema)."""
    if len(line) > MAX_DOCUMENT_BYTES:  # before parsing: no stage's memory grows with one giant document
        limit = f"{len(line):,} bytes, over the {MAX_DOCUMENT_BYTES / 1e6:g} MB limit (DOLMA_MAX_DOCUMENT_MB)"
        raise RejectedLine(rejected_line(number, "oversize", limit, line))
    stripped = line.strip()
    if not stripped:
        raise RejectedLine(rejected_line(number, "empty_line", "blank line where a document was expected", line))
    try:
        return decode_document(stripped, lazy)
    except ValueError as e:
        reason, _, error = str(e).partition(": ")
    except Exception as e:  # any failure of one line (RecursionError on deep nesting, MemoryError) is that line's
        reason, error = "invalid_json", error_text(e)
    raise RejectedLine(rejected_line(number, reason, error, line))


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
        with open_url(url, "rb") as raw:
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
