"""The Dolma document and attribute records.

A document line is ``{id, text, source, added, created, metadata}``; ``metadata`` is kept as the raw JSON
bytes it arrived with, so it passes through every stage unchanged and no stage reaches into an untyped dict.
Fields a stage needs from metadata are typed where that stage defines them.
"""

from __future__ import annotations

import re

import msgspec

EMPTY_METADATA = msgspec.Raw(b"{}")


class Document(msgspec.Struct, omit_defaults=False):
    id: str
    text: str
    source: str = ""
    added: str | None = None
    created: str | None = None
    metadata: msgspec.Raw = EMPTY_METADATA


class LazyDocument(msgspec.Struct, omit_defaults=False):
    """A document whose text stays JSON: for steps that move documents without reading them (no copy of the
    text is decoded). Encodes to the same line as :class:`Document`."""

    id: str
    text: msgspec.Raw
    source: str = ""
    added: str | None = None
    created: str | None = None
    metadata: msgspec.Raw = EMPTY_METADATA


class AttributeLine(msgspec.Struct):
    """One line of an attribute file: spans ``[start, end, score]`` per ``<set>__<tagger>__<key>``."""

    id: str
    attributes: dict[str, list[list[float | int | str | None]]] = {}


DOCUMENT_DECODER = msgspec.json.Decoder(Document)
LAZY_DOCUMENT_DECODER = msgspec.json.Decoder(LazyDocument)
ATTRIBUTE_DECODER = msgspec.json.Decoder(AttributeLine)
ENCODER = msgspec.json.Encoder()


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode()
    except UnicodeDecodeError:
        return False
    return True


_SURROGATE = re.compile(  # a high surrogate escape not followed by a low one, or a low one not preceded by a high
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
# a JSON string that starts with ASCII blanks (raw or escaped), then a visible ASCII character: not blank
_VISIBLE_START = re.compile(rb'"(?:[ \t\n\r]|\\[ntr])*[\x21\x23-\x5b\x5d-\x7e]')


def _blank(doc: Document | LazyDocument, lazy: bool) -> bool:
    """Whether a document's text is empty or whitespace only (a lazy text is decoded only when its first bytes
    do not settle it: a start of blanks, an escape like \\u00a0, or a character outside ASCII)."""
    if not lazy:
        return not doc.text or doc.text.isspace()
    if _VISIBLE_START.match(memoryview(doc.text)[:64]):  # almost every text: no copy of it
        return False
    text = msgspec.json.decode(bytes(doc.text), type=str)
    return not text or text.isspace()


def decode_document(line: bytes, lazy: bool = False) -> Document | LazyDocument:
    """Parse and validate one JSON line; raises ValueError with a reason prefix the ledger counts by.
    ``lazy``: the text is checked to be a JSON string but not decoded."""
    try:
        if lazy and not line.isascii():
            line.decode()  # the decoder does not check text it leaves raw: UTF-8 is checked here
        doc = (LAZY_DOCUMENT_DECODER if lazy else DOCUMENT_DECODER).decode(line)
    except UnicodeDecodeError as e:
        raise ValueError(f"invalid_utf8: {e}") from None
    except msgspec.ValidationError as e:
        raise ValueError(f"invalid_schema: {e}") from None
    except msgspec.DecodeError as e:
        # msgspec < 0.23 raises UnicodeDecodeError on bad UTF-8, later versions a DecodeError: tell them apart here
        if not _is_utf8(line):
            raise ValueError(f"invalid_utf8: {e}") from None
        if m := _SURROGATE.search(line):  # msgspec's messages for it ("truncated", "malformed") mislead
            raise ValueError(f"invalid_utf8: lone UTF-16 surrogate escape {m[0].decode()} (not a character)") from None
        raise ValueError(f"invalid_json: {e}") from None
    return check_document(doc, lazy)


def check_document(doc: Document | LazyDocument, lazy: bool = False) -> Document | LazyDocument:
    """The checks of a decoded line that its type does not make: metadata an object (null becomes ``{}``), id
    set, text a string (lazy) and not blank; raises ValueError with a reason prefix like :func:`decode_document`."""
    head = memoryview(doc.metadata)[:1].tobytes()
    if head == b"n":
        doc.metadata = EMPTY_METADATA
    elif head != b"{":
        raise ValueError("invalid_schema: `metadata` must be an object or null")
    if not doc.id:
        raise ValueError("invalid_schema: `id` is empty")
    if lazy and memoryview(doc.text)[:1].tobytes() != b'"':
        raise ValueError("invalid_schema: `text` must be a string")
    if _blank(doc, lazy):
        raise ValueError("invalid_schema: `text` is empty or whitespace only")
    return doc


_BRACE, _QUOTE = 0x7B, 0x22
_VISIBLE = frozenset(range(0x21, 0x7F)) - {0x22, 0x5C}  # a raw text starting with another byte is checked in full


def decode_plain(lines: list[bytes], lazy: bool = False) -> tuple[list, list[int]] | None:
    """The batch form of :func:`decode_document` for the common case: (documents, indices of the documents
    :func:`check_document` must check one by one), or None when some line does not decode (every line is
    then checked one by one, which names the reason). A document passes here only when its id is set, its
    metadata is an object and its text does not start like a blank one: a few byte compares per document
    instead of the full check's calls, which cost as much as decoding the line."""
    decode = (LAZY_DOCUMENT_DECODER if lazy else DOCUMENT_DECODER).decode
    try:
        for line in lines if lazy else ():  # the decoder leaves a raw text unchecked: UTF-8 is checked here,
            if not line.isascii():  # line by line (a batch decoded whole may take 4 bytes a character)
                line.decode()
        docs = list(map(decode, lines))
    except Exception:  # some line is unusable: the caller's line-by-line path says which and why
        return None
    if lazy:
        suspects = [
            i
            for i, d in enumerate(docs)
            if not d.id
            or memoryview(d.metadata)[0] != _BRACE
            or (t := memoryview(d.text))[0] != _QUOTE
            or t[1] not in _VISIBLE
        ]
    else:
        suspects = [
            i
            for i, d in enumerate(docs)
            if not d.id or memoryview(d.metadata)[0] != _BRACE or not d.text or d.text[0].isspace()
        ]
    return docs, suspects
