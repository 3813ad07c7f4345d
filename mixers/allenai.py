"""allenai dolma mixer configs, run unchanged: ``dolma mix -c mixer.json`` (or ``dolma -c mixer.yaml mix``).

An allenai mixer config is a list of streams, each: documents (globs), attribute sets to join, a filter
(``include``/``exclude`` in JSONPath or jq ``syntax``), ``span_replacement`` edits, and an output folder with a
``max_size_in_bytes``. It filters and edits; it has no token target (that is our ``mix`` recipe stage). We run each
stream as a stage with one task per document file, with our rules (vectorised where they can be, the jq or JSONPath
library per document otherwise) and allenai's decisions: a document is kept when it passes **any** include filter
(or there are none) and **no** exclude filter; a span of ``span``'s attribute scoring at least ``min_score`` is
replaced by ``replacement``; a kept document whose edited text, trimmed, is under ``output.min_text_length`` bytes
is dropped. ``compression.output`` picks the output files' format as allenai does (``gz`` by default, ``zst``, or
``""`` for none); ``compression.input``, which in allenai overrides how inputs are read, must agree with the
files' suffixes, by which ours are read. Output documents carry the joined attributes, as allenai's do; every
document read is kept or dropped with the filter that decided, in the ledger. An integer literal never equals a
float score in allenai's JSONPath (``== 1`` is false for a score of 1.0, ``!= 1`` true); here numbers compare by
value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import msgspec
import numpy as np
import polars as pl

from dolma import io
from dolma.core.document import ENCODER
from dolma.core.errors import UserError
from dolma.runtime.ledger import ShardLedger
from dolma.runtime.shards import read_shard
from dolma.runtime.stage import Stage, StageGroup, Task, shard_tasks
from mixers.config import SpanEdit
from mixers.rules import SPANS_TYPE, Rule, jq_keys, parse, spans_column
from mixers.stats import edited_text, first_scores, span_cuts

TOP_KEYS = {"streams", "processes", "work_dir"}  # work_dir: accepted, not needed (ledgers live beside the output)
STREAM_KEYS = {"name", "documents", "attributes", "output", "filter", "span_replacement", "compression"}
OUTPUT_KEYS = {"path", "max_size_in_bytes", "discard_fields", "min_text_length"}
COMPRESSION_KEYS = {"input", "output"}
SUFFIXES = {"gz": ".json.gz", "zst": ".json.zst", "": ".json"}  # compression.output -> output file suffix
UNSUPPORTED = {"debug"}  # allenai keys we do not run: an error, never ignored
# what allenai's length check trims (Unicode White_Space; str.strip() would also take U+001C-U+001F)
WHITE_SPACE = "".join(map(chr, [*range(9, 14), 32, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F]))
WHITE_SPACE += "\u205f\u3000"
FILTER_KEYS = {"include", "exclude", "syntax"}
SPAN_KEYS = {"span", "min_score", "replacement", "syntax"}


def _check(where: str, given: dict, allowed: set[str]) -> None:
    if not isinstance(given, dict):
        raise UserError(f"{where}: expected a mapping, not {given!r}")
    unsupported = sorted(set(given) & UNSUPPORTED)
    if unsupported:
        raise UserError(f"{where}: {unsupported[0]!r} is an allenai mixer key this toolkit does not run; remove it")
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")


@dataclass
class AllenaiStream(Stage):
    """One stream of an allenai mixer config."""

    stream: str
    documents: list[str]
    output: str
    attributes: list[str] = field(default_factory=list)
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    syntax: str = "jsonpath"
    edits: list[SpanEdit] = field(default_factory=list)
    max_size_in_bytes: int = 2**30
    discard_fields: list[str] = field(default_factory=list)
    min_text_length: int = 0
    compression: str = "gz"  # of the output files: gz, zst or "" (none)
    input_compression: str | None = None  # None: each file's suffix says
    batch_size: int = 4096

    @property
    def name(self) -> str:
        return f"mix-{self.stream}"

    def rules(self) -> tuple[list[Rule], list[Rule]]:
        for text in self.include + self.exclude:
            if (self.syntax == "jq") == text.lstrip().startswith("$"):
                raise UserError(f"stream {self.stream!r}: filter {text!r} is not {self.syntax} (filter.syntax)")
        return [parse(t) for t in self.include], [parse(t) for t in self.exclude]

    def tasks(self) -> list[Task]:
        tasks = [t for pattern in self.documents for t in shard_tasks(pattern)]
        if not tasks:
            raise UserError(f"stream {self.stream!r}: no document files match {self.documents}")
        for t in tasks:  # a missing attribute set is an error naming it, not a shard of quarantined lines
            io.require_attributes(t.payload.url, self.attributes, f"stream {self.stream!r}")
            self._check_input(t.payload.url)
        return tasks

    def _check_input(self, url: str) -> None:
        """``compression.input`` must say what the file's suffix says: ours are read by their suffix."""
        if self.input_compression is None:
            return
        by_suffix = "gz" if url.endswith((".gz", ".gzip")) else "zst" if url.endswith((".zst", ".zstd")) else ""
        if url.endswith(".parquet") or by_suffix != self.input_compression:
            raise UserError(
                f"stream {self.stream!r}: compression.input is {self.input_compression!r}, but {url} is read by its "
                f"suffix as {by_suffix or 'uncompressed'}; rename the file or remove compression.input"
            )

    def task_basis(self, tasks: list[Task]) -> str:
        include, exclude = self.rules()
        each = [r for r in include + exclude if not r.vectorised]
        engines = " and ".join(sorted({r.engine for r in each})) or "jq or JSONPath"
        fast = len(include) + len(exclude) - len(each)
        return f"one per document file; {fast} rules vectorised, {len(each)} by {engines}"

    def run(self, task: Task, ledger: ShardLedger) -> None:
        include, exclude = self.rules()
        src = task.payload.url
        urls = {a: io.attributes_url(src, a) for a in self.attributes}
        wanted = {k for r in include + exclude for k in r.keys} | {e.attribute for e in self.edits}
        lazy = not self.edits and not self.min_text_length  # the text is copied, never decoded
        reader = partial(_aligned, urls, lazy)
        if "attributes" in self.discard_fields:  # the output carries none: decode only what filters and edits read
            reader = partial(_columns, urls, io.KeySelection(frozenset(wanted)), lazy)
        prefix = io.join(self.output, f"{self.stream}-{task.key.replace('/', '_')}")
        out = _Output(prefix, self.max_size_in_bytes, SUFFIXES[self.compression])
        try:
            for batch in read_shard(src, ledger, self.batch_size, reader=reader):
                docs, columns, merged = _joined(batch, wanted)
                reasons = _decide(columns, len(docs), include, exclude)
                texts = [None if r else self._text(d, columns, i) for i, (d, r) in enumerate(zip(docs, reasons))]
                if self.min_text_length:
                    reasons = [r if r is not None else self._too_short(t) for r, t in zip(reasons, texts)]
                keep = [i for i, r in enumerate(reasons) if r is None]
                drop = [i for i, r in enumerate(reasons) if r is not None]
                ledger.dropped(src, [batch.lines[i] for i in drop], [docs[i].id for i in drop],
                               [reasons[i] for i in drop])  # fmt: skip
                ledger.kept(src, [batch.lines[i] for i in keep], [docs[i].id for i in keep])
                out.write([self._record(docs[i], texts[i], merged[i] if merged else None) for i in keep])
        except BaseException as e:
            out.close(e)  # the unfinished file is discarded, never published
            raise
        out.close()

    def _text(self, doc, columns: dict[str, list], i: int):
        """Document ``i``'s text with its spans edited (without edits: as read, raw JSON when read lazily)."""
        if not self.edits:
            return doc.text
        spans = [[columns[e.attribute][i]] for e in self.edits]
        return edited_text(doc.text, span_cuts(spans, self.edits)[0], self.edits)

    def _too_short(self, text: str) -> str | None:
        """The drop reason of a kept text under ``min_text_length`` UTF-8 bytes once trimmed, as allenai counts."""
        if len(text.strip(WHITE_SPACE).encode()) >= self.min_text_length:
            return None
        return f"min_text_length: under {self.min_text_length} bytes"

    def _record(self, doc, text, attributes: dict[str, list] | None) -> bytes:
        """A kept document's output line: its (edited) text, with its joined attributes unless discarded."""
        if attributes is None and not self.edits and self.discard_fields == ["attributes"]:
            return ENCODER.encode(doc) + b"\n"  # the document as read: the same line as the record below
        record = {
            "id": doc.id,
            "text": text,
            "source": doc.source,
            "added": doc.added,
            "created": doc.created,
            "metadata": doc.metadata,  # raw JSON, as read
            "attributes": attributes or {},
        }
        for name in self.discard_fields:
            record.pop(name, None)
        return msgspec.json.encode(record) + b"\n"


def _joined(batch, keys: set[str]) -> tuple[list, dict[str, list], list[dict] | None]:
    """(the documents, the spans of ``keys`` per document, each document's attributes merged across sets: None
    when the reader gave columns, for an output that carries no attributes)."""
    if isinstance(batch, io.AttributeColumns):
        return batch.docs, batch.columns, None
    merged = [{k: v for spans in found.values() for k, v in spans.items()} for found in batch.attributes]
    return batch.docs, {k: [m.get(k) for m in merged] for k in keys}, merged


def _aligned(urls: dict[str, str], lazy: bool, url: str, batch_size: int):
    return io.read_aligned(url, urls, batch_size, None, lazy)


def _columns(urls: dict[str, str], select: io.KeySelection, lazy: bool, url: str, batch_size: int):
    return io.read_aligned_columns(url, urls, select, batch_size, lazy)


def _decide(columns: dict[str, list], n: int, include: list[Rule], exclude: list[Rule]) -> list[str | None]:
    """Per document, None (kept) or the reason: no include filter passed, or the exclude filter that matched.
    ``columns``: the spans of each key the rules read, per document (None where absent)."""
    if not include and not exclude:  # no filter: every document is kept (a frame of no columns cannot say so)
        return [None] * n
    keys = sorted({k for r in include + exclude for k in r.keys})
    absent = [None] * n
    frame = pl.DataFrame(
        {
            **{k: pl.Series(first_scores(columns.get(k, absent)), dtype=pl.Float64) for k in keys},
            **{
                spans_column(k): pl.Series(columns.get(k, absent), dtype=SPANS_TYPE, strict=False)
                for k in jq_keys(include + exclude)
            },
        },
        height=n,
    )
    reason = pl.lit(None, pl.String)
    if include:
        passed = pl.any_horizontal([r.expr.fill_null(False) for r in include])
        texts = " | ".join(r.text for r in include)
        reason = pl.when(~passed).then(pl.lit(f"include: {texts}")).otherwise(reason)
    for rule in reversed(exclude):  # the first matching exclude filter names the reason
        reason = pl.when(rule.expr.fill_null(False)).then(pl.lit(f"exclude: {rule.text}")).otherwise(reason)
    return frame.select(reason.alias("r"))["r"].to_list()


class _Output:
    """Output files ``<prefix>-NNNN<suffix>`` (``.json.gz``...), a new one once ``limit`` bytes are written, each
    atomic."""

    def __init__(self, prefix: str, limit: int, suffix: str):
        self.prefix, self.limit, self.suffix, self.part, self.size, self.writer = prefix, limit, suffix, 0, 0, None

    def write(self, lines: list[bytes]) -> None:
        """The lines in order, as few writes as the size limit allows (a file ends after the line that
        reaches ``limit`` bytes, as it did line by line)."""
        start = 0
        while start < len(lines):
            if self.writer is None:
                self.writer = io.AtomicWriter(f"{self.prefix}-{self.part:04d}{self.suffix}").__enter__()
            sizes = np.cumsum([len(line) for line in lines[start:]]) + self.size
            end = start + min(int(np.searchsorted(sizes, self.limit)) + 1, len(sizes))  # through the line at limit
            self.writer.write(b"".join(lines[start:end]))
            self.size = int(sizes[end - start - 1])
            start = end
            if self.size >= self.limit:
                self.close()
                self.part, self.size = self.part + 1, 0

    def close(self, error: BaseException | None = None) -> None:
        if self.writer is not None:
            self.writer.__exit__(type(error) if error else None, error, None)
            self.writer = None


@dataclass
class AllenaiMix(StageGroup):
    """An allenai mixer config: one stage per stream."""

    streams: list[AllenaiStream]
    name: str = "mix"

    def stages(self) -> list[Stage]:
        return list(self.streams)


class _OutputConfig(msgspec.Struct):
    path: str
    max_size_in_bytes: int = 2**30
    discard_fields: list[str] | None = None
    min_text_length: int | None = None


class _FilterConfig(msgspec.Struct):
    include: list[str] | None = None
    exclude: list[str] | None = None
    syntax: str = "jsonpath"


class _SpanConfig(msgspec.Struct):
    span: str
    min_score: float = 0.5
    replacement: str = ""
    syntax: str = "jsonpath"


class _CompressionConfig(msgspec.Struct):
    input: str | None = None
    output: str | None = None


class _StreamConfig(msgspec.Struct):
    """The types of a stream's values (its keys are checked first, by :func:`_check`, with allenai's names)."""

    name: str
    documents: list[str]
    output: _OutputConfig
    attributes: list[str] | None = None
    filter: _FilterConfig | None = None
    span_replacement: list[_SpanConfig] | None = None
    compression: _CompressionConfig | None = None


def allenai_mixer(path: str, config: dict) -> AllenaiMix:
    """An allenai mixer config (as loaded from ``path``), every key checked; unknown keys are errors naming them."""
    _check(path, config, TOP_KEYS)
    streams = config.get("streams")
    if not streams or not isinstance(streams, list):
        raise UserError(f"{path}: an allenai mixer config needs streams: a list of them, not {streams!r}")
    processes = config.get("processes")
    if processes is not None and (not isinstance(processes, int) or isinstance(processes, bool) or processes < 1):
        raise UserError(f"{path}: processes: a whole number, 1 or more, not {processes!r}")
    return AllenaiMix([_stream(path, i, s) for i, s in enumerate(streams)])


def _typed(where: str, s: dict) -> _StreamConfig:
    """The stream's values in their types; a value of the wrong type is an error naming its key."""
    try:
        return msgspec.convert(s, _StreamConfig, strict=False)
    except msgspec.ValidationError as e:
        message, _, at = str(e).partition(" - at `$")
        raise UserError(f"{where}{at.rstrip('`')}: {message[:1].lower()}{message[1:]}") from None


def _stream(path: str, i: int, s: dict) -> AllenaiStream:
    where = f"{path}: streams[{i}]"
    _check(where, s, STREAM_KEYS)
    for key in ("name", "documents", "output"):
        if key not in s:
            raise UserError(f"{where}: missing {key!r}")
    _check(f"{where}.output", s["output"], OUTPUT_KEYS)
    _check(f"{where}.compression", s.get("compression") or {}, COMPRESSION_KEYS)
    _check(f"{where}.filter", s.get("filter") or {}, FILTER_KEYS)
    for j, e in enumerate(s.get("span_replacement") or []):
        _check(f"{where}.span_replacement[{j}]", e, SPAN_KEYS)
    c = _typed(where, s)
    compression = c.compression or _CompressionConfig()
    for key in ("input", "output"):
        if getattr(compression, key) not in (None, *SUFFIXES):
            raise UserError(f"{where}.compression.{key}: gz, zst or '' (none), not {getattr(compression, key)!r}")
    min_length = c.output.min_text_length or 0
    if min_length < 0:
        raise UserError(f"{where}.output.min_text_length: a whole number of bytes, 0 or more, not {min_length!r}")
    edits = []
    for j, e in enumerate(c.span_replacement or []):
        if not e.span.startswith("$.attributes."):
            raise UserError(f"{where}.span_replacement[{j}]: span must be '$.attributes.<key>', not {e.span!r}")
        edits.append(SpanEdit(e.span.removeprefix("$.attributes."), e.min_score, e.replacement))
    flt = c.filter or _FilterConfig()
    stream = AllenaiStream(
        stream=c.name,
        documents=c.documents,
        output=c.output.path,
        attributes=c.attributes or [],
        include=flt.include or [],
        exclude=flt.exclude or [],
        syntax=flt.syntax,
        edits=edits,
        max_size_in_bytes=c.output.max_size_in_bytes,
        discard_fields=c.output.discard_fields or [],
        min_text_length=min_length,
        compression="gz" if compression.output is None else compression.output,
        input_compression=compression.input,
    )
    if stream.syntax not in ("jsonpath", "jq"):
        raise UserError(f"{where}.filter.syntax: jsonpath or jq, not {stream.syntax!r}")
    stream.rules()  # every filter is checked before any work starts
    return stream
