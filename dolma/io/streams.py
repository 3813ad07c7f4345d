"""The decompressed bytes of a file, checked unit by unit, with damage reported in place instead of raised.

A ``.gz`` file is a sequence of gzip members and a ``.zst`` file a sequence of zstd frames; each unit ends with
a checksum of its content (gzip always, zstd when the writer asked for one: ours always do). :func:`chunks`
decodes one unit at a time and holds its output back until the unit's checksum has matched, so bytes that a
flipped bit altered never reach a reader. What cannot be trusted is reported as one :class:`Damage` and reading
goes on where it can resynchronise:

- a unit whose checksum fails, or whose data cannot be decoded, is lost whole (one Damage); reading resumes at
  the next unit's magic number after the point where the damage was detected (a unit so damaged that its
  decoder runs on into the next one loses that one too);
- bytes that are not a unit (trailing garbage, a gap between units) are one Damage; the units around them are
  read;
- a stream cut inside a unit (a truncated upload) yields what the unit held up to the cut: truncation alters
  no byte before it, and the reader drops the incomplete last line;
- a unit larger than ``HOLD`` decompressed bytes (another writer's single-member file) cannot be held back
  whole: its output is released as it comes, so damage in it is still reported but bytes before the point of
  detection may have been read. Ours end a unit every ``UNIT`` bytes of input, so they are always held whole;
- a zstd frame written without a checksum decodes unchecked (nothing can tell its bytes were altered);
- plain ``.jsonl`` has no integrity data at all.

Decompression is bounded: each call produces at most ``_BLOCK`` bytes, so a decompression bomb costs time, not
memory.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from isal import isal_zlib

from dolma.io.setup import configure
from dolma.io.urls import open_url

try:  # the standard library's zstd (3.14), backported before: decompression with an output bound
    from compression.zstd import ZstdDecompressor
except ImportError:
    from backports.zstd import ZstdDecompressor

_BLOCK = 1 << 20  # bytes per read and per decompression call
HOLD = 64 << 20  # decompressed bytes of one unit held back until its checksum is checked
UNIT = 16 << 20  # input bytes our writers put in one gzip member or zstd frame
GZIP_MAGIC = b"\x1f\x8b\x08"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@dataclass(frozen=True)
class Damage:
    """A part of a stream that could not be read or failed its check; ``error`` says what and where."""

    error: str


def chunks(url: str) -> Iterator[bytes | Damage]:
    """The decompressed content of a file (by suffix: .gz, .zst, else as stored), in order, as checked byte
    chunks and Damage markers. An unreadable file (missing, permission) raises OSError as opening would."""
    configure()
    with open_url(url, "rb", compression="disable") as raw:
        if url.endswith((".gz", ".gzip")):
            units = (item for _, item in _units(raw, _Zlib, GZIP_MAGIC, "gzip member"))
        elif url.endswith((".zst", ".zstd")):
            units = (item for _, item in _units(raw, _Zstd, ZSTD_MAGIC, "zstd frame"))
        else:
            units = iter(lambda: raw.read(_BLOCK), b"")
        yield from _coalesced(units)


def _coalesced(items: Iterator[bytes | Damage]) -> Iterator[bytes | Damage]:
    """Damage reported back to back (a damaged unit, then false starts while resynchronising) as one."""
    pending: list[Damage] = []
    for item in items:
        if isinstance(item, Damage):
            pending.append(item)
            continue
        if pending:
            yield _merged(pending)
            pending = []
        yield item
    if pending:
        yield _merged(pending)


def _merged(damage: list[Damage]) -> Damage:
    if len(damage) == 1:
        return damage[0]
    return Damage(f"{damage[0].error}; then {len(damage) - 1} more unreadable part(s) before the stream resumed")


class _Input:
    """Compressed bytes read ahead of the decoder, with the offset of their start in the file."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.buf = b""
        self.offset = 0
        self.eof = False
        self.fed: list[bytes] | None = []  # the bytes given to the current unit's decoder, while under HOLD
        self.fed_size = 0

    def fill(self, n: int) -> None:
        while len(self.buf) < n and not self.eof:
            more = self.raw.read(_BLOCK)
            self.eof = not more
            self.buf += more

    def take(self) -> bytes:
        """All bytes read ahead, for the decoder; kept (up to HOLD) so a failed unit can be rescanned."""
        data, self.buf = self.buf, b""
        self.offset += len(data)
        if self.fed is not None:
            self.fed.append(data)
            self.fed_size += len(data)
            if self.fed_size > HOLD:
                self.fed = None
        return data

    def begin_unit(self) -> None:
        self.fed, self.fed_size = [], 0

    def rewind_after(self, start: int) -> None:
        """Put back the bytes fed since the unit that began at ``start``, less its first byte (so a rescan
        looks for the next unit inside them); a unit too large to keep is rescanned from where it failed."""
        if self.fed is not None:
            kept = b"".join(self.fed)[1:]
            self.buf, self.offset = kept + self.buf, start + 1
        self.begin_unit()

    def consume(self, n: int) -> None:
        self.buf, self.offset = self.buf[n:], self.offset + n

    def skip_to(self, magic: bytes, first: int = 1) -> int:
        """Drop bytes up to the next ``magic`` at or after index ``first`` (or to the end); returns how many
        were dropped."""
        dropped = 0
        while True:
            at = self.buf.find(magic, first if dropped == 0 else 0)
            if at >= 0:
                self.consume(at)
                return dropped + at
            keep = len(magic) - 1  # a magic number cut by the read boundary
            cut = max(0, len(self.buf) - keep)
            dropped += cut
            self.consume(cut)
            if self.eof:
                dropped += len(self.buf)
                self.consume(len(self.buf))
                return dropped
            self.fill(len(self.buf) + _BLOCK)


class _Zlib:
    """A gzip member's decoder; it keeps input it has not used in ``unconsumed_tail``."""

    def __init__(self) -> None:
        self.d = isal_zlib.decompressobj(wbits=31)

    def next(self, src: _Input) -> bytes | None:
        """At most ``_BLOCK`` decoded bytes, fed from ``src`` when needed; None when the input ends first."""
        if self.d.unconsumed_tail:
            return self.d.decompress(self.d.unconsumed_tail, _BLOCK)
        src.fill(1)
        return self.d.decompress(src.take(), _BLOCK) if src.buf else None


class _Zstd:
    """A zstd frame's decoder; it keeps input inside and says ``needs_input`` False while output is pending."""

    def __init__(self) -> None:
        self.d = ZstdDecompressor()

    def next(self, src: _Input) -> bytes | None:
        if not self.d.needs_input:
            return self.d.decompress(b"", _BLOCK)
        src.fill(1)
        return self.d.decompress(src.take(), _BLOCK) if src.buf else None


def _units(raw: BinaryIO, decoder: Callable, magic: bytes, kind: str, hold: int | None = HOLD):
    """(offset of its unit, checked bytes or Damage) for the whole stream: units in order, and the bytes between
    or after them that are not a unit as one Damage each."""
    src = _Input(raw)
    while True:
        src.fill(len(magic))
        if not src.buf:
            return
        start = src.offset
        if not src.buf.startswith(magic):
            yield start, Damage(f"{src.skip_to(magic)} bytes at offset {start} are not a {kind}")
            continue
        for item in _unit(src, decoder(), magic, kind, hold):
            yield start, item


def gzip_members(url: str) -> Iterator[tuple[int, bytes | Damage]]:
    """(offset, whole content) of each gzip member of a file, or (offset, Damage) for a member that fails its
    check or is cut, and for bytes between members that are not one; reading resumes at the next member. For
    formats that put one record in each member (``.warc.gz``), so a damaged member costs only its record."""
    configure()
    with open_url(url, "rb", compression="disable") as raw:
        for start, parts in itertools.groupby(
            _units(raw, _Zlib, GZIP_MAGIC, "gzip member", hold=None), key=lambda x: x[0]
        ):
            items = [item for _, item in parts]
            damage = next((p for p in items if isinstance(p, Damage)), None)
            yield start, damage or b"".join(items)


def _unit(src: _Input, d, magic: bytes, kind: str, hold: int | None) -> Iterator[bytes | Damage]:
    """One unit from the head of ``src``: its content once checked, or a Damage; ``src`` is left after it.
    ``hold`` None: the content is held whole, however large."""
    start = src.offset
    src.begin_unit()
    held: list[bytes] = []
    size = 0
    released = False
    try:
        while not d.d.eof:
            out = d.next(src)
            if out is None:  # cut inside the unit: what it held up to the cut is unaltered
                yield from held
                yield Damage(f"the stream ends inside the {kind} at offset {start} (truncated)")
                return
            if out:
                held.append(out)
                size += len(out)
            if hold is not None and size > hold:  # too large to hold back whole: released unchecked from here on
                released = True
                yield from held
                held, size = [], 0
    except Exception as e:  # any failure of the decoder is damage in the data, never a crash of the reader
        what = "the rest of it" if released else "its content"
        yield Damage(f"the {kind} at offset {start} is damaged ({type(e).__name__}: {e}); {what} is lost")
        src.rewind_after(start)
        src.skip_to(magic, first=0)
        return
    rest = d.d.unused_data
    src.buf, src.offset = rest + src.buf, src.offset - len(rest)
    yield from held
