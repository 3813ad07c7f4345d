"""WARC records read one at a time, so that one malformed record costs that record and nothing else.

A ``.warc.gz`` holds one gzip member per record (the WARC standard's recommendation, and Common Crawl's
practice): members are decompressed one at a time (:func:`dolma.io.streams.gzip_members`), a member that
fails its check or is cut is one unreadable record, and reading resumes at the next member.

A plain ``.warc`` is cut into records by their headers: a record ends ``Content-Length`` bytes after its
header block, and the next one must start there. Where it does not (a length too long, which would swallow the
records after it, or too short), the record is reported and reading resumes at the next line that starts a
WARC header; a record that the end of the file cuts short is reported, never passed on with cut text. Each
record's bytes are then parsed by fastwarc, with HTTP payload encodings (gzip, deflate, brotli) decoded.
"""

from __future__ import annotations

import io as stdio
import re
from collections.abc import Iterator
from dataclasses import dataclass

from dolma import io
from dolma.io.streams import Damage, gzip_members

_CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*(\d+)[ \t]*\r?$")
_HEADER_LIMIT = 1 << 20  # a WARC header block longer than this is not one
_READ = 1 << 22


@dataclass(frozen=True)
class Unreadable:
    """A part of a WARC file that is not a readable record, at ``offset``; ``error`` says why."""

    offset: int
    error: str


def records(url: str) -> Iterator[tuple[int, object] | Unreadable]:
    """(byte offset, fastwarc record) for each record of a WARC file, in order, and an :class:`Unreadable`
    for each part that is not a readable record. Offsets are compressed offsets in a ``.warc.gz``."""
    from fastwarc.warc import ArchiveIterator

    for offset, raw in gzip_members(url) if url.endswith(".gz") else _plain_records(url):
        if isinstance(raw, Damage):
            yield Unreadable(offset, raw.error)
            continue
        seen = 0
        try:
            for record in ArchiveIterator(stdio.BytesIO(raw), parse_http=True, auto_decode="all"):
                seen += 1
                yield offset, record
        except Exception as e:  # fastwarc raises OSError/ValueError on a malformed header
            yield Unreadable(offset, f"{type(e).__name__}: {e}")
            continue
        if not seen:
            yield Unreadable(offset, "no WARC record here")


class _Buffer:
    """A window on a file read ahead in blocks, addressed by file offset."""

    def __init__(self, f):
        self.f = f
        self.data = bytearray()
        self.base = 0  # the file offset of data[0]
        self.eof = False

    def fill(self, end: int) -> None:
        """Read until the window reaches file offset ``end`` or the file ends."""
        while self.base + len(self.data) < end and not self.eof:
            more = self.f.read(_READ)
            self.eof = not more
            self.data += more

    @property
    def end(self) -> int:
        return self.base + len(self.data)

    def find(self, needle: bytes, start: int, limit: int | None = None) -> int:
        """The file offset of ``needle`` at or after ``start`` (reading ahead, up to ``limit``), or -1."""
        at = start
        while True:
            k = self.data.find(needle, at - self.base)
            if k >= 0:
                return self.base + k
            if self.eof or (limit is not None and self.end >= limit):
                return -1
            at = max(start, self.end - len(needle) + 1)
            self.fill(self.end + _READ)

    def bytes(self, start: int, stop: int) -> bytes:
        return bytes(self.data[start - self.base : stop - self.base])

    def drop_before(self, offset: int) -> None:
        cut = offset - self.base
        if cut > _READ:
            del self.data[:cut]
            self.base = offset


def _next_header(buf: _Buffer, after: int) -> int:
    """The offset of the next line that starts a WARC header after ``after``, or the end of the file."""
    at = buf.find(b"\nWARC/1.", after)
    if at < 0:
        buf.fill(1 << 62)
        return buf.end
    return at + 1


def _plain_records(url: str) -> Iterator[tuple[int, bytes | Damage]]:
    with io.open_url(url, "rb", compression="disable") as f:
        buf = _Buffer(f)
        pos = 0
        while True:
            buf.fill(pos + 16)
            while pos < buf.end and buf.data[pos - buf.base] in b"\r\n":  # the blank lines between records
                pos += 1
                buf.fill(pos + 16)
            if pos >= buf.end:
                return
            buf.drop_before(pos)
            item, pos = _plain_record(buf, pos)
            yield item


def _plain_record(buf: _Buffer, pos: int) -> tuple[tuple[int, bytes | Damage], int]:
    """The record at ``pos`` (or what is wrong there) and where the next one starts."""
    if buf.bytes(pos, pos + 5) != b"WARC/":
        nxt = _next_header(buf, pos)
        return (pos, Damage(f"{nxt - pos} bytes at offset {pos} are not a WARC record")), nxt
    head_end = buf.find(b"\r\n\r\n", pos, limit=pos + _HEADER_LIMIT)
    if head_end < 0:
        nxt = _next_header(buf, pos)
        return (pos, Damage("a WARC header block that never ends")), nxt
    m = _CONTENT_LENGTH.search(buf.bytes(pos, head_end + 2))
    if not m:
        return (pos, Damage("a WARC header without Content-Length")), _next_header(buf, head_end)
    stop = head_end + 4 + int(m[1])
    buf.fill(stop + 4 + 5)
    if stop > buf.end:
        return (pos, Damage(f"the file ends {stop - buf.end} bytes before this record's end (truncated)")), buf.end
    follow = buf.bytes(stop, stop + 4 + 5).lstrip(b"\r\n")
    if follow and not follow.startswith(b"WARC/"):
        nxt = _next_header(buf, head_end)
        if nxt < stop:  # a length too long would swallow the records after it: they are read, this one is not
            why = f"its Content-Length {m[1].decode()} runs past the next record at offset {nxt}"
            return (pos, Damage(why)), nxt
    return (pos, buf.bytes(pos, stop)), stop  # what follows, if not a record, is reported on its own
