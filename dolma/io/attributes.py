"""Attribute files read in step with their documents: selected keys decoded, misaligned lines rejected.

Line *n* of every attribute file belongs to line *n* of its document file and must carry its id. A line that
is missing, unreadable or names another id is rejected as ``attributes_out_of_step`` (naming the attribute file
and line, with :func:`out_of_step`'s wording everywhere) rather than joined with the wrong scores. Only the keys a
reader selects are parsed (:class:`KeySelection`), which is several times faster on wide attribute sets.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import msgspec
import numpy as np

from dolma.core.document import ATTRIBUTE_DECODER, AttributeLine
from dolma.core.errors import UserError
from dolma.io.lines import (
    DocBatch,
    LineBatch,
    Rejected,
    _read_lines,
    corrupt,
    error_text,
    read_documents,
    read_lines,
    rejected_line,
)
from dolma.io.streams import Damage


def out_of_step(url: str, number: int, found: str | None, expected: str) -> str:
    """The one wording of an attribute line that names another document than its document line."""
    return f"{url} line {number} has id {found!r}, the document has {expected!r}"


@dataclass(frozen=True)
class KeySelection:
    """The attribute keys a reader decodes: ``names``, and every key starting with ``prefix`` when one is set.
    The other keys are skipped unparsed, which is several times faster on wide attribute sets."""

    names: frozenset[str]
    prefix: str = ""


_SPANS = list[tuple[int | float, int | float, float]]  # [start, end, score]: checked as decoded, in C


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
        except Exception as e:  # any failure of a line (RecursionError included) rejects that line only
            errors[i], id, row = error_text(e), None, blank
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
    for number, line in _read_lines(url):
        if isinstance(line, Damage):
            yield number, corrupt(number, line)
            continue
        try:
            yield number, decode(line)
        except Exception as e:  # any failure of a line (RecursionError included) is that line's, not the file's
            yield number, rejected_line(number, "invalid_attribute", error_text(e), line)


class AttributeJoin:
    """Attribute files read in step with batches of documents: line *n* of every attribute file belongs to
    document line *n* and must carry its id. Each file is read once, a batch's lines at a time."""

    def __init__(self, attribute_urls: dict[str, str], select: KeySelection | None):
        self.urls, self.select = attribute_urls, select
        self.decode = ATTRIBUTE_DECODER.decode if select is None else _decoder_for(select)
        self.streams = {name: _read_lines(url) for name, url in attribute_urls.items()}
        self.pending: dict[str, tuple[int, bytes | Damage] | None] = {name: None for name in self.streams}

    def _through(self, name: str, last: int) -> dict[int, bytes | Damage]:
        """The raw lines of set ``name`` numbered up to ``last`` not yet taken (damage before the line that
        shares its number: the damage is what that line reports)."""
        got: dict[int, bytes | Damage] = {}
        item, stream = self.pending[name], self.streams[name]
        while (item := item or next(stream, None)) is not None and item[0] <= last:
            got.setdefault(item[0], item[1])
            item = None
        self.pending[name] = item
        return got

    def join(self, batch: DocBatch) -> DocBatch:
        """The batch's documents with their attributes per set; a document whose line in some set is missing,
        damaged or names another id is rejected as ``attributes_out_of_step``, one whose line in step has
        values of the wrong shape or type as ``invalid_attribute`` (naming the first set at fault)."""
        found: list[dict[str, dict[str, list]]] = [{} for _ in batch.docs]
        problems: dict[int, tuple[str, str]] = {}
        for name, url in self.urls.items():
            raw = self._through(name, batch.lines[-1]) if batch.lines else {}
            for i, (number, doc) in enumerate(zip(batch.lines, batch.docs)):
                if i in problems:
                    continue
                line = raw.get(number)
                if line is None:
                    problems[i] = ("attributes_out_of_step", f"{url} ends before line {number}")
                elif isinstance(line, Damage):
                    problems[i] = ("attributes_out_of_step", f"{url} line {number}: corrupt_stream: {line.error}")
                else:
                    try:
                        attr = self.decode(line)
                    except Exception as e:  # any failure of a line (RecursionError included) is that line's
                        problems[i] = ("invalid_attribute", f"{url} line {number}: invalid_attribute: {error_text(e)}")
                        continue
                    if attr.id != doc.id:
                        problems[i] = ("attributes_out_of_step", out_of_step(url, number, attr.id, doc.id))
                    else:
                        found[i][name] = attr.attributes
        joined = DocBatch(rejected=batch.rejected, nbytes=batch.nbytes)
        for i, (number, doc) in enumerate(zip(batch.lines, batch.docs)):
            if i in problems:
                joined.rejected.append(Rejected(number, *problems[i], id=doc.id))
            else:
                joined.docs.append(doc)
                joined.lines.append(number)
                joined.attributes.append(found[i])
        return joined

    def columns(self, batch: DocBatch) -> AttributeColumns:
        """The batch's documents with the selected attributes as columns (a key in several sets: the later
        set's spans), rejected for the reasons and in the order :meth:`join` gives; no dict per document."""
        n, ids = len(batch.docs), [d.id for d in batch.docs]
        problems: dict[int, tuple[str, str]] = {}  # document index -> its first problem, by set order
        columns: dict[str, list] = {}
        for name, url in self.urls.items():
            raw = self._through(name, batch.lines[-1]) if batch.lines else {}
            lines = [raw.get(number) for number in batch.lines]
            usable = [i for i, line in enumerate(lines) if isinstance(line, bytes)]
            for i in [i for i, line in enumerate(lines) if not isinstance(line, bytes)]:  # missing or damaged
                problem = (
                    f"{url} ends before line {batch.lines[i]}"
                    if lines[i] is None
                    else f"{url} line {batch.lines[i]}: corrupt_stream: {lines[i].error}"
                )
                problems.setdefault(i, ("attributes_out_of_step", problem))
            theirs, got, errors = _decode_columns([lines[i] for i in usable], self.select)
            for j, error in errors.items():
                problem = f"{url} line {batch.lines[usable[j]]}: invalid_attribute: {error}"
                problems.setdefault(usable[j], ("invalid_attribute", problem))
            expected = [ids[i] for i in usable]
            if theirs != expected:
                for j in [j for j, (t, e) in enumerate(zip(theirs, expected)) if t is not None and t != e]:
                    problem = out_of_step(url, batch.lines[usable[j]], theirs[j], expected[j])
                    problems.setdefault(usable[j], ("attributes_out_of_step", problem))
            for key, values in got.items():
                if len(usable) < n:  # one entry per document again
                    values, placed = [None] * n, values
                    for i, v in zip(usable, placed):
                        values[i] = v
                mine = columns.get(key)
                columns[key] = values if mine is None else [v if v is not None else m for m, v in zip(mine, values)]
        rejected = batch.rejected + [Rejected(batch.lines[i], *problems[i], id=ids[i]) for i in sorted(problems)]
        if not problems:
            return AttributeColumns(batch.lines, ids, columns, rejected, batch.nbytes, docs=batch.docs)
        at = [i for i in range(n) if i not in problems]
        columns = {k: [v[i] for i in at] for k, v in columns.items()}
        docs, lines = [batch.docs[i] for i in at], [batch.lines[i] for i in at]
        return AttributeColumns(lines, [ids[i] for i in at], columns, rejected, batch.nbytes, docs=docs)


def read_aligned(
    doc_url: str,
    attribute_urls: dict[str, str],
    batch_size: int = 4096,
    select: KeySelection | None = None,
    lazy: bool = False,
) -> Iterator[DocBatch]:
    """Documents joined line by line with their attribute files (only the ``select``ed attributes, if given;
    ``lazy``: documents as :class:`LazyDocument`, their text left as JSON).

    Attribute line *n* belongs to document line *n*. A document whose attribute line is missing, unreadable or
    names another id is rejected as ``attributes_out_of_step`` (naming the attribute file and line) rather
    than joined with the wrong scores.
    """
    aligner = AttributeJoin(attribute_urls, select)
    for batch in read_documents(doc_url, batch_size, lazy):
        yield aligner.join(batch)


def read_aligned_columns(
    doc_url: str, attribute_urls: dict[str, str], select: KeySelection, batch_size: int = 4096, lazy: bool = False
) -> Iterator[AttributeColumns]:
    """:func:`read_aligned` with the selected attributes as columns beside the documents (``docs``): what a
    reader that evaluates rules over a batch needs, without a dict per document and key."""
    aligner = AttributeJoin(attribute_urls, select)
    for batch in read_documents(doc_url, batch_size, lazy):
        yield aligner.columns(batch)


@dataclass
class AttributeColumns:
    """One batch of attribute lines joined across sets: line numbers, ids, and for every selected key the
    spans of each line (None where the line lacks it); unusable or misaligned lines as Rejected."""

    lines: list[int]
    ids: list[str]
    columns: dict[str, list]
    rejected: list[Rejected]
    nbytes: int = 0
    docs: list | None = None  # the documents, when a reader joined them too

    @property
    def records(self) -> int:
        """The lines this batch accounts for: joined lines and rejected ones."""
        return len(self.ids) + len(self.rejected)


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
            rejected_line(lead.numbers[i], "invalid_attribute", e, lead.lines[i]) for i, e in errors.items()
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
                reason = "attributes_out_of_step"
                if i >= len(their_ids):
                    problem = (
                        f"{url} line {number}: corrupt_stream: {cut.error}"
                        if cut
                        else f"{url} ends before line {number}"
                    )
                elif i in their_errors:
                    reason, problem = "invalid_attribute", f"{url} line {number}: {their_errors[i]}"
                else:
                    problem = out_of_step(url, number, their_ids[i], ids[i])
                rejected.append(Rejected(number, reason, problem, id=ids[i]))
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
