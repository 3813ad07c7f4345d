"""Streaming I/O for Dolma shards through URLs (local paths, ``s3://``, ``gs://``).

Documents stream in batches, so memory is bounded by the batch size. Every line that cannot become a
document is returned as a :class:`Rejected` record with its line number and reason instead of raising, and a
corrupt or truncated compressed stream ends the file with one such record: the caller decides what to
quarantine, and nothing is skipped silently.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import glob
import gzip
import os
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from typing import BinaryIO

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import smart_open
import zstandard
from isal import igzip, isal_zlib

from dolma.document import ATTRIBUTE_DECODER, ENCODER, AttributeLine, Document, LazyDocument, decode_document

try:  # smart_open decompresses .zst with the standard library's zstd (backported before Python 3.14)
    from compression.zstd import ZstdError
except ImportError:
    from backports.zstd import ZstdError


def _open_gzip(file_obj: BinaryIO, mode: str, **kwargs) -> BinaryIO:
    """Reading .gz goes through ISA-L (python-isal: the same format, over twice zlib's decompression speed);
    writing keeps the standard library's deterministic output."""
    if "r" in mode:
        return igzip.IGzipFile(fileobj=file_obj, mode="rb")
    return gzip.GzipFile(fileobj=file_obj, mode=mode, **kwargs)


smart_open.register_compressor(".gz", _open_gzip)

if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
    # Arrow tables here are large and short-lived (a shuffle partition, a stats table). Under pyarrow's default
    # mimalloc pool, fresh buffers that size cost the kernel up to as much as the work itself: the mixer's write
    # step spent 0.05-0.38 s of system time zeroing huge pages beside 0.23-0.35 s of its own, against 0.06-0.08 s
    # with the C library's allocator.
    pa.set_memory_pool(pa.system_memory_pool())

DOC_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".json.zst", ".parquet")
STREAM_ERRORS = (EOFError, OSError, zlib.error, isal_zlib.error, zstandard.ZstdError, ZstdError)


class UserError(Exception):
    """A problem with the user's input or configuration: reported in one line, never as a traceback."""


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


def is_remote(url: str) -> bool:
    return "://" in url and not url.startswith("file://")


def join(*parts: str) -> str:
    return "/".join(p.strip("/") if i else p.rstrip("/") for i, p in enumerate(parts) if p)


def exists(url: str) -> bool:
    if not is_remote(url):
        return os.path.exists(url)
    try:
        with smart_open.open(url, "rb", compression="disable"):
            return True
    except (OSError, ValueError, KeyError):
        return False
    except Exception as e:  # botocore / google clients raise their own not-found types
        if "404" in str(e) or "NoSuchKey" in str(e) or "Not Found" in str(e):
            return False
        raise


def list_files(pattern: str) -> list[str]:
    """Files matching a glob (``**`` allowed) or all files under a directory, sorted for determinism."""
    if not is_remote(pattern):
        if os.path.isdir(pattern):
            pattern = os.path.join(pattern, "**", "*")
        found = (p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        return sorted(p for p in found if not _is_bookkeeping(p, pattern))
    scheme, _, rest = pattern.partition("://")
    bucket, _, key_pattern = rest.partition("/")
    has_glob = any(c in key_pattern for c in "*?[")
    prefix = key_pattern.split("*")[0].split("?")[0].split("[")[0] if has_glob else key_pattern
    if scheme == "s3":
        import boto3

        client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
        keys = [
            obj["Key"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
        ]
    elif scheme == "gs":
        from google.cloud import storage

        keys = [b.name for b in storage.Client().list_blobs(bucket, prefix=prefix)]
    else:
        raise UserError(f"unsupported URL scheme {scheme!r} in {pattern!r} (use a local path, s3:// or gs://)")
    if has_glob:
        matches = _glob_regex(key_pattern).fullmatch
        keys = [k for k in keys if matches(k)]
    urls = sorted(f"{scheme}://{bucket}/{k}" for k in keys if not k.endswith("/"))
    return [u for u in urls if not _is_bookkeeping(u, pattern)]


def _glob_regex(pattern: str) -> re.Pattern:
    """Local glob semantics for object keys: ``*`` and ``?`` stay inside one folder, ``**/`` spans any number
    of folders (none included), ``[...]`` is a character class."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            out.append("[" + pattern[i + 1 : end].replace("!", "^", 1) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def _is_bookkeeping(path: str, pattern: str) -> bool:
    """Below the pattern's root, ledgers and temporary files (``_x`` and ``.x`` names) are never input."""
    return any(part[:1] in ("_", ".") for part in relative_to_root(path, pattern).split("/"))


def document_files(pattern: str) -> list[str]:
    files = [f for f in list_files(pattern) if f.endswith(DOC_SUFFIXES)]
    if not files:
        raise UserError(f"no document files ({', '.join(DOC_SUFFIXES)}) match {pattern!r}")
    return files


def relative_to_root(path: str, pattern: str) -> str:
    """The part of ``path`` below the non-glob prefix of ``pattern``: it names the shard in every output tree."""
    root = pattern.split("*")[0].split("?")[0].split("[")[0]
    if root == path:
        return os.path.basename(path)
    if root == pattern and path.startswith(root.rstrip("/") + "/"):  # a folder given without a glob
        root = root.rstrip("/") + "/"
    root = root if root.endswith("/") else root.rsplit("/", 1)[0] + "/"
    return path[len(root) :] if path.startswith(root) else os.path.basename(path)


def strip_suffix(rel: str) -> str:
    for suffix in sorted(DOC_SUFFIXES, key=len, reverse=True):
        if rel.endswith(suffix):
            return rel[: -len(suffix)]
    return rel


def attributes_url(doc_url: str, name: str) -> str:
    """allenai dolma's layout: ``…/documents/<rel>`` has its attributes at ``…/attributes/<name>/<rel>``."""
    head, sep, rel = doc_url.rpartition("/documents/")
    if not sep:
        raise UserError(f"{doc_url!r} is not under a 'documents/' folder, so it has no attribute tree")
    return f"{head}/attributes/{name}/{rel}"


_BLOCK = 1 << 20  # decompressed bytes per read: one read and one split per block instead of a call per line


def _line_blocks(url: str) -> Iterator[list[bytes]]:
    """The raw lines of a file (each with its newline; the last may lack one), a block at a time. Where the
    stream breaks, the whole lines before the break are recovered by re-reading the file line by line and
    yielded, then the error is raised, as a line-by-line reader would."""
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


@dataclass(frozen=True)
class KeySelection:
    """The attribute keys a reader decodes: ``names``, and every key starting with ``prefix`` when one is set.
    The other keys are skipped unparsed, which is several times faster on wide attribute sets."""

    names: frozenset[str]
    prefix: str = ""


_SPANS = list[list[float | int | str | None]]


class _RawAttributes(msgspec.Struct):
    id: str
    attributes: dict[str, msgspec.Raw] = {}


@functools.lru_cache(maxsize=64)
def _decoder_for(select: KeySelection) -> Callable[[bytes], AttributeLine]:
    """One decode call per line: a struct with a field per selected name (no prefix), or raw values of which
    only the selected ones are parsed (a prefix, whose keys are not known in advance)."""
    if select.prefix:
        raw_decoder, spans_decoder = msgspec.json.Decoder(_RawAttributes), msgspec.json.Decoder(_SPANS)

        def decode_prefixed(line: bytes) -> AttributeLine:
            raw = raw_decoder.decode(line)
            wanted = select.names
            return AttributeLine(
                raw.id,
                {
                    k: spans_decoder.decode(v)
                    for k, v in raw.attributes.items()
                    if k in wanted or k.startswith(select.prefix)
                },
            )

        return decode_prefixed
    names, decoder = _struct_decoder(select.names)

    def decode_named(line: bytes) -> AttributeLine:
        got = decoder.decode(line)
        values = msgspec.structs.astuple(got.attributes)
        return AttributeLine(got.id, {n: v for n, v in zip(names, values) if v is not None})

    return decode_named


@functools.lru_cache(maxsize=64)
def _struct_decoder(names: frozenset[str]) -> tuple[list[str], msgspec.json.Decoder]:
    """(the names in field order, a decoder of attribute lines into a struct with a field per name)."""
    ordered = sorted(names)
    fields = {f"k{i}": name for i, name in enumerate(ordered)}
    scores = msgspec.defstruct("Scores", [(f, _SPANS | None, None) for f in fields], rename=fields, frozen=True)
    return ordered, msgspec.json.Decoder(msgspec.defstruct("Line", [("id", str), ("attributes", scores, scores())]))


def _decode_columns(lines: list[bytes], select: KeySelection) -> tuple[list[str | None], dict[str, list], dict]:
    """(id per line, None where unusable; spans per selected key and line, None where absent; error per
    unusable line index). Named keys come back as struct fields, transposed into columns in one go; a prefix
    needs a dict per line, since its keys are known only once read."""
    if select.prefix:
        decode_prefixed = _decoder_for(select)

        def decode(line: bytes) -> tuple[str, dict | tuple]:
            got = decode_prefixed(line)
            return got.id, got.attributes

        blank: dict | tuple = {}
    else:
        names, decoder = _struct_decoder(select.names)

        def decode(line: bytes) -> tuple[str, dict | tuple]:
            got = decoder.decode(line)
            return got.id, msgspec.structs.astuple(got.attributes)

        blank = tuple(None for _ in names)
    ids: list[str | None] = []
    rows: list = []
    errors: dict[int, str] = {}
    for i, line in enumerate(lines):
        try:
            id, row = decode(line)
        except (msgspec.DecodeError, UnicodeDecodeError) as e:
            errors[i], id, row = str(e), None, blank
        ids.append(id)
        rows.append(row)
    if select.prefix:
        return ids, {k: [r.get(k) for r in rows] for k in sorted(set().union(*rows))}, errors
    columns = [list(c) for c in zip(*rows)] if rows else [[] for _ in names]
    return ids, dict(zip(names, columns)), errors


def read_attributes(url: str, select: KeySelection | None = None) -> Iterator[tuple[int, AttributeLine | Rejected]]:
    """Attribute lines of one file, in order; unusable lines come back as Rejected. With ``select``, only the
    selected attributes are decoded."""
    decode = ATTRIBUTE_DECODER.decode if select is None else _decoder_for(select)
    number = 0
    try:
        for number, line in _read_lines(url):
            try:
                yield number, decode(line)
            except (msgspec.DecodeError, UnicodeDecodeError) as e:
                yield number, Rejected(number, "invalid_attribute_line", str(e), raw=line[:4096])
    except STREAM_ERRORS as e:
        yield number + 1, Rejected(number + 1, "corrupt_stream", f"{type(e).__name__}: {e}")


class _Aligner:
    """Attribute files read in step with a leading sequence of (line, id): line *n* of every attribute file
    belongs to line *n* of the lead and must carry its id."""

    def __init__(self, attribute_urls: dict[str, str], select: KeySelection | None):
        self.urls = attribute_urls
        self.streams = {name: read_attributes(url, select) for name, url in attribute_urls.items()}
        self.pending: dict[str, tuple[int, AttributeLine | Rejected] | None] = {name: None for name in self.streams}

    def _line(self, name: str, number: int) -> AttributeLine | Rejected | None:
        item = self.pending[name]
        while item is None or item[0] < number:
            item = next(self.streams[name], None)
            if item is None:
                break
        self.pending[name] = item
        return item[1] if item is not None and item[0] == number else None

    def join(self, number: int, id: str) -> tuple[dict[str, dict[str, list]], str]:
        """(attributes per set, "") or ({}, what is out of step)."""
        found: dict[str, dict[str, list]] = {}
        for name, url in self.urls.items():
            attr = self._line(name, number)
            if attr is None:
                return {}, f"{url} ends before line {number}"
            if isinstance(attr, Rejected):
                return {}, f"{url} line {number}: {attr.reason}: {attr.error}"
            if attr.id != id:
                return {}, f"{url} line {number} has id {attr.id!r}, the document has {id!r}"
            found[name] = attr.attributes
        return found, ""


def read_aligned(
    doc_url: str,
    attribute_urls: dict[str, str],
    batch_size: int = 4096,
    select: KeySelection | None = None,
) -> Iterator[DocBatch]:
    """Documents joined line by line with their attribute files (only the ``select``ed attributes, if given).

    Attribute line *n* belongs to document line *n*. A document whose attribute line is missing, unreadable or
    names another id is rejected as ``attributes_out_of_step`` (naming the attribute file and line) rather
    than joined with the wrong scores.
    """
    aligner = _Aligner(attribute_urls, select)
    for batch in read_documents(doc_url, batch_size):
        joined = DocBatch(rejected=batch.rejected, nbytes=batch.nbytes)
        for doc, number in zip(batch.docs, batch.lines):
            found, problem = aligner.join(number, doc.id)
            if problem:
                joined.rejected.append(Rejected(number, "attributes_out_of_step", problem, id=doc.id))
            else:
                joined.docs.append(doc)
                joined.lines.append(number)
                joined.attributes.append(found)
        yield joined


@dataclass
class AttributeColumns:
    """One batch of attribute lines joined across sets: line numbers, ids, and for every selected key the
    spans of each line (None where the line lacks it); unusable or misaligned lines as Rejected."""

    lines: list[int]
    ids: list[str]
    columns: dict[str, list]
    rejected: list[Rejected]
    nbytes: int = 0


def read_attribute_columns(
    attribute_urls: dict[str, str], select: KeySelection, batch_size: int = 4096
) -> Iterator[AttributeColumns]:
    """The attribute sets of one document file joined line by line without reading the documents, a batch at
    a time and column by column: the first set leads (ids, line numbers); line *n* of every other set must
    carry the id of line *n*, or the line is rejected as ``attributes_out_of_step`` naming file and line."""
    if not attribute_urls:
        raise UserError("reading attributes without the documents needs at least one attribute set")
    lead_url, *rest = attribute_urls.values()
    others = [(url, read_lines(url, batch_size)) for url in rest]
    for lead in read_lines(lead_url, batch_size):
        ids, columns, errors = _decode_columns(lead.lines, select)
        n = len(ids)
        rejected = lead.rejected + [
            Rejected(lead.numbers[i], "invalid_attribute_line", e, raw=lead.lines[i][:4096]) for i, e in errors.items()
        ]
        keep = np.array([i is not None for i in ids], bool)
        for url, reader in others:
            other = next(reader, LineBatch())
            their_ids, their_columns, their_errors = _decode_columns(other.lines, select)
            theirs = np.array((their_ids + [None] * n)[:n], object)
            off = np.flatnonzero(keep & (theirs != np.array(ids, object)))
            cut = next((r for r in other.rejected if r.reason == "corrupt_stream"), None)
            for i in off:
                number = lead.numbers[i]
                if i >= len(their_ids):
                    problem = (
                        f"{url} line {number}: corrupt_stream: {cut.error}"
                        if cut
                        else f"{url} ends before line {number}"
                    )
                elif i in their_errors:
                    problem = f"{url} line {number}: invalid_attribute_line: {their_errors[i]}"
                else:
                    problem = f"{url} line {number} has id {their_ids[i]!r}, the document has {ids[i]!r}"
                rejected.append(Rejected(number, "attributes_out_of_step", problem, id=ids[i]))
            keep[off] = False
            for key, values in their_columns.items():  # a key in several sets: the later set's spans win
                values = (values + [None] * n)[:n]
                mine = columns.get(key)
                columns[key] = values if mine is None else [v if v is not None else m for m, v in zip(mine, values)]
        if not keep.all():
            at = np.flatnonzero(keep).tolist()
            lines, ids = [lead.numbers[i] for i in at], [ids[i] for i in at]
            columns = {k: [v[i] for i in at] for k, v in columns.items()}
        else:
            lines = lead.numbers
        yield AttributeColumns(lines, ids, columns, rejected, lead.nbytes)


def joined_columns(batch: DocBatch) -> dict[str, list]:
    """The attributes of a :func:`read_aligned` batch as columns, the way :func:`read_attribute_columns` gives
    them (a key in several sets: the later set's spans)."""
    merged = [{k: v for per_set in per_doc.values() for k, v in per_set.items()} for per_doc in batch.attributes]
    return {k: [m.get(k) for m in merged] for k in sorted(set().union(*merged))}


class AtomicWriter:
    """Write ``url`` under a temporary name and publish it only on a clean close.

    Local files are renamed into place; object stores publish an object only when its upload completes,
    so a killed writer never leaves a partial file under the final name. Compression follows the suffix
    (.gz, .zst) and is deterministic (no timestamp or file name in the gzip header), so reruns are
    byte-identical.
    """

    def __init__(self, url: str):
        self.url = url
        self.tmp = url
        if not is_remote(url):
            os.makedirs(os.path.dirname(url) or ".", exist_ok=True)
            head, tail = os.path.split(url)
            self.tmp = os.path.join(head, f".{tail}.tmp")  # fixed name: a rerun overwrites a killed run's
        self._raw = smart_open.open(self.tmp, "wb", compression="disable")
        self._file: BinaryIO = self._raw
        if url.endswith(".gz"):
            self._file = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=3)
        elif url.endswith(".zst"):
            self._file = zstandard.ZstdCompressor(level=3).stream_writer(self._raw, closefd=False)

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def __enter__(self) -> AtomicWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            if self._file is not self._raw:
                self._file.close()
            self._raw.close()
            if self.tmp != self.url:
                os.replace(self.tmp, self.url)
            return
        if hasattr(self._raw, "terminate"):
            self._raw.terminate()
        else:
            self._raw.close()
        if self.tmp != self.url and os.path.exists(self.tmp):
            os.remove(self.tmp)


class DocumentWriter:
    """Write documents as JSONL (.gz/.zst by suffix) or Parquet, atomically."""

    def __init__(self, url: str):
        self.url = url
        self.count = 0
        self._parquet = url.endswith(".parquet")
        self._writer = AtomicWriter(url)
        self._pq: pq.ParquetWriter | None = None

    def write(self, docs: list[Document]) -> None:
        if not docs:
            return
        self.count += len(docs)
        if not self._parquet:
            self._writer.write(ENCODER.encode_lines(docs))
            return
        table = pa.table(
            {
                "id": [d.id for d in docs],
                "text": [d.text for d in docs],
                "source": [d.source for d in docs],
                "added": [d.added for d in docs],
                "created": [d.created for d in docs],
                "metadata": [bytes(d.metadata).decode() for d in docs],
            }
        )
        if self._pq is None:
            self._pq = pq.ParquetWriter(self._writer._file, table.schema, compression="zstd")
        self._pq.write_table(table)

    def __enter__(self) -> DocumentWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._pq is not None and exc_type is None:
            self._pq.close()
        self._writer.__exit__(exc_type, exc, tb)


def write_lines(url: str, records: list) -> None:
    """Write msgspec-encodable records as one JSONL file, atomically (small files: markers, quarantine)."""
    with AtomicWriter(url) as w:
        w.write(ENCODER.encode_lines(records))


def read_json(url: str):
    with smart_open.open(url, "rb") as f:
        return msgspec.json.decode(f.read())


def write_json(url: str, obj) -> None:
    with AtomicWriter(url) as w:
        w.write(msgspec.json.format(ENCODER.encode(obj), indent=2) + b"\n")


def write_parquet(url: str, table: pa.Table) -> None:
    """Write a table as one Parquet file, atomically: zstd, with dictionary pages for the columns the table
    holds dictionary-encoded (the caller marks its repetitive columns that way; dictionaries of unique values
    only cost time and space)."""
    dictionary = [f.name for f in table.schema if pa.types.is_dictionary(f.type)]
    with AtomicWriter(url) as w:
        pq.write_table(table, w._file, compression="zstd", use_dictionary=dictionary or False)


def write_arrow(url: str, table: pa.Table) -> None:
    """Write a table as one Arrow IPC file, atomically: for a transient table written once and read once whole
    (the mixer's shuffled documents), where Parquet's page encoding and statistics only cost time. Each
    column's buffers are LZ4-compressed whole: about half the scratch space, at far less cost than zstd."""
    options = pa.ipc.IpcWriteOptions(compression="lz4")
    with AtomicWriter(url) as w, pa.ipc.new_file(w._file, table.schema, options=options) as out:
        out.write_table(table)


def read_arrow(url: str) -> pa.Table:
    """A file written by :func:`write_arrow`, whole."""
    if is_remote(url):
        with smart_open.open(url, "rb") as f:
            return pa.ipc.open_file(pa.BufferReader(f.read())).read_all()
    with pa.OSFile(url) as f:
        return pa.ipc.open_file(f).read_all()


def read_parquet(url: str) -> pa.Table:
    with smart_open.open(url, "rb") as f:
        return pq.read_table(pa.BufferReader(f.read()) if is_remote(url) else url)
