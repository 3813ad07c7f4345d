"""Hostile document files, built programmatically: each case is one file and what a stage must make of it.

A case knows how many records its file holds (a damaged part of a stream counts as one), which good documents
must come through unchanged, and the quarantine reasons it must produce. ``tests/test_hostile.py`` runs
stages over all of them at once and checks each.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard


def good_docs(prefix: str, n: int) -> list[dict]:
    return [
        {"id": f"{prefix}-{i}", "text": f"Good document {i} of {prefix}. It has a few plain sentences in it.\n" * 3}
        for i in range(n)
    ]


def line(d) -> bytes:
    return json.dumps(d).encode() + b"\n"


def lines(docs: list[dict]) -> bytes:
    return b"".join(line(d) for d in docs)


@dataclass
class Case:
    name: str
    suffix: str
    data: bytes
    records: int  # what the stage must count as read
    good: list[dict]  # documents that must come out, unchanged
    reasons: dict[str, int] = field(default_factory=dict)  # quarantine reasons it must report, at least
    import_only: list[str] = field(default_factory=list)  # ids that only import rejects (tag tags every line)

    @property
    def file(self) -> str:
        return self.name + self.suffix


CASES: list[Case] = []


def case(name: str, suffix: str = ".jsonl", n_good: int = 4):
    """Register a case: the function gets good documents and returns (data, records, reasons)."""

    def register(fn: Callable[[list[dict]], tuple[bytes, int, dict[str, int]]]):
        good = good_docs(name, n_good)
        data, records, reasons = fn(good)
        CASES.append(Case(name, suffix, data, records, good, reasons))
        return fn

    return register


def around(good: list[dict], *bad: bytes) -> bytes:
    """Good lines with the bad ones in the middle."""
    half = len(good) // 2
    return lines(good[:half]) + b"".join(bad) + lines(good[half:])


def one_bad(name: str, bad: bytes, reason: str, suffix: str = ".jsonl") -> None:
    case(name, suffix)(lambda good: (around(good, bad), len(good) + 1, {reason: 1}))


DEEP = 100_000
one_bad(
    "deep_metadata", b'{"id":"d","text":"x","metadata":' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"}\n", "invalid_json"
)
one_bad("deep_unknown_field", b'{"id":"d","text":"x","z":' + b"[" * DEEP + b"]" * DEEP + b"}\n", "invalid_json")
one_bad("deep_line", b"[" * DEEP + b"]" * DEEP + b"\n", "invalid_schema")
one_bad("deep_text", b'{"id":"d","text":' + b"[" * DEEP + b"]" * DEEP + b"}\n", "invalid_schema")
one_bad("empty_text", line({"id": "e", "text": ""}), "invalid_schema")
one_bad("whitespace_text", line({"id": "w", "text": " \n\t  \n"}), "invalid_schema")
one_bad("lone_surrogate", b'{"id": "s", "text": "broken \\ud800 pair"}\n', "invalid_utf8")
one_bad("invalid_utf8", b'{"id": "u", "text": "caf\xe9 latin-1"}\n', "invalid_utf8")
one_bad("truncated_line", b'{"id": "t", "text": "unterminated\n', "invalid_json")
one_bad("array_line", b'["id", "text"]\n', "invalid_schema")
one_bad("number_line", b"12345\n", "invalid_schema")
one_bad("null_line", b"null\n", "invalid_schema")
one_bad("string_line", b'"a string"\n', "invalid_schema")
one_bad("missing_id", line({"text": "no id"}), "invalid_schema")
one_bad("missing_text", line({"id": "m"}), "invalid_schema")
one_bad("int_id", line({"id": 5, "text": "numeric id"}), "invalid_schema")
one_bad("list_text", line({"id": "l", "text": ["a", "b"]}), "invalid_schema")
one_bad("number_text", line({"id": "n", "text": 3.5}), "invalid_schema")
one_bad("string_metadata", line({"id": "sm", "text": "t", "metadata": "a string"}), "invalid_schema")
one_bad("array_metadata", line({"id": "am", "text": "t", "metadata": [1, 2]}), "invalid_schema")
one_bad("int_added", line({"id": "ia", "text": "t", "added": 5}), "invalid_schema")
one_bad("list_created", line({"id": "lc", "text": "t", "created": ["x"]}), "invalid_schema")
one_bad("null_source", line({"id": "ns", "text": "t", "source": None}), "invalid_schema")
one_bad("empty_id", line({"id": "", "text": "blank id"}), "invalid_schema")
one_bad("empty_object", b"{}\n", "invalid_schema")
one_bad("trailing_comma", b'{"id": "tc", "text": "t",}\n', "invalid_json")
one_bad("binary_garbage", bytes(range(256)).replace(b"\n", b"") + b"\n", "invalid_utf8")
one_bad("nul_bytes", b'{"id": "nb", "te\x00xt": "t"}\n', "invalid_json")
one_bad("blank_line", b"   \t \n", "empty_line")
one_bad("unclosed_object", b'{"id": "uo", "text": "t"\n', "invalid_json")
one_bad("nan_metadata", b'{"id": "nn", "text": "t", "metadata": {"x": NaN}}\n', "invalid_json")
one_bad("two_objects", b'{"id": "o1", "text": "t"}{"id": "o2", "text": "u"}\n', "invalid_json")
one_bad("single_quotes", b"{'id': 'sq', 'text': 't'}\n", "invalid_json")
one_bad("bad_escape", b'{"id": "be", "text": "bad \\x escape"}\n', "invalid_json")
one_bad("comment_line", b"// a comment, as some JSON dialects allow\n", "invalid_json")
one_bad("bool_text", b'{"id": "bt", "text": true}\n', "invalid_schema")
one_bad("object_id", b'{"id": {"a": 1}, "text": "t"}\n', "invalid_schema")
one_bad("float_id", b'{"id": 1.5, "text": "t"}\n', "invalid_schema")
one_bad("repeated_text_key", b'{"id": "rk", "text": "t", "text": 5}\n', "invalid_schema")  # the last one counts


@case("bom")
def _bom(good):
    return b"\xef\xbb\xbf" + lines(good), len(good), {}


@case("bom_gz", ".jsonl.gz")
def _bom_gz(good):
    return gzip.compress(b"\xef\xbb\xbf" + lines(good)), len(good), {}


@case("crlf")
def _crlf(good):
    return lines(good).replace(b"\n", b"\r\n"), len(good), {}


@case("no_final_newline")
def _no_final_newline(good):
    return lines(good)[:-1], len(good), {}


@case("escaped_controls", n_good=3)
def _controls(good):
    good.append({"id": "ctrl", "text": "tab\there, nul \u0000 and bell \u0007 are text"})
    return lines(good), len(good), {}


@case("huge_id", n_good=3)
def _huge_id(good):
    good.append({"id": "i" * 1_000_000, "text": "a document whose id is a megabyte long"})
    return lines(good), len(good), {}


@case("duplicate_id")
def _duplicate(good):
    return around(good, line({**good[0], "text": "another text under the same id"})), len(good) + 1, {"duplicate_id": 1}


CASES[-1].import_only = [CASES[-1].good[0]["id"]]


@case("oversize")
def _oversize(good):  # the hostile run caps documents at 2 MB
    return around(good, line({"id": "big", "text": "word " * 600_000})), len(good) + 1, {"oversize": 1}


def _members(good: list[dict], k: int) -> list[bytes]:
    size = -(-len(good) // k)
    return [gzip.compress(lines(good[i : i + size])) for i in range(0, len(good), size)]


def _frames(good: list[dict], k: int, checksum: bool = True) -> list[bytes]:
    size = -(-len(good) // k)
    c = zstandard.ZstdCompressor(write_checksum=checksum)
    return [c.compress(lines(good[i : i + size])) for i in range(0, len(good), size)]


def _flip(data: bytes, at: int) -> bytes:
    b = bytearray(data)
    b[at] ^= 0x10
    return bytes(b)


@case("gz_cut", ".jsonl.gz", n_good=30)
def _gz_cut(good):
    whole = gzip.compress(lines(good))
    cut = whole[: len(whole) * 2 // 3]
    complete = zlib.decompressobj(31).decompress(cut).count(b"\n")  # what a streaming decoder recovers
    del good[complete:]  # the whole lines before the cut come through
    return cut, complete + 1, {"corrupt_stream": 1}


@case("gz_trailing_garbage", ".jsonl.gz")
def _gz_garbage(good):
    return gzip.compress(lines(good)) + b"this is not gzip at all", len(good) + 1, {"corrupt_stream": 1}


@case("gz_empty_member", ".jsonl.gz")
def _gz_empty_member(good):
    return gzip.compress(lines(good[:2])) + gzip.compress(b"") + gzip.compress(lines(good[2:])), len(good), {}


@case("gz_zero_bytes", ".jsonl.gz", n_good=0)
def _gz_zero(good):
    return b"", 0, {}


@case("gz_of_nothing", ".jsonl.gz", n_good=0)
def _gz_nothing(good):
    return gzip.compress(b""), 0, {}


@case("gz_not_gzip", ".jsonl.gz", n_good=0)
def _gz_plain(good):
    return lines(good_docs("plain", 3)), 1, {"corrupt_stream": 1}


def damaged_middle_unit(name: str, suffix: str, units: Callable, at: Callable[[bytes], int]) -> None:
    """Three units of three documents each, a byte of the middle one flipped at ``at(unit)``: its documents
    are lost (counted as one record), the other six come through."""

    def build(good):
        first, second, third = units(good, 3)
        del good[3:6]
        return first + _flip(second, at(second)) + third, 6 + 1, {"corrupt_stream": 1}

    case(name, suffix, n_good=9)(build)


damaged_middle_unit("gz_damaged_member", ".jsonl.gz", _members, lambda unit: len(unit) // 2)
damaged_middle_unit("gz_crc_flip", ".jsonl.gz", _members, lambda unit: len(unit) - 6)  # the member's CRC
damaged_middle_unit("zst_damaged_frame", ".jsonl.zst", _frames, lambda unit: len(unit) // 2)
damaged_middle_unit("zst_checksum_flip", ".jsonl.zst", _frames, lambda unit: len(unit) - 2)  # the checksum


@case("zst_cut", ".jsonl.zst", n_good=9)
def _zst_cut(good):
    first, second, third = _frames(good, 3)
    del good[3:]
    return first + second[:5], 3 + 1, {"corrupt_stream": 1}


@case("zst_trailing_garbage", ".jsonl.zst")
def _zst_garbage(good):
    return b"".join(_frames(good, 2)) + b"garbage after the frames", len(good) + 1, {"corrupt_stream": 1}


@case("zst_zero_bytes", ".jsonl.zst", n_good=0)
def _zst_zero(good):
    return b"", 0, {}


@case("zst_not_zstd", ".jsonl.zst", n_good=0)
def _zst_plain(good):
    return lines(good_docs("plain", 3)), 1, {"corrupt_stream": 1}


@case("parquet_garbage", ".parquet", n_good=0)
def _parquet_garbage(good):
    return b"PAR1 this is not parquet", 1, {"corrupt_stream": 1}


@case("parquet_nulls", ".parquet", n_good=2)
def _parquet_nulls(good):
    sink = pa.BufferOutputStream()
    ids = [d["id"] for d in good] + ["p-null-text", None]
    texts = [d["text"] for d in good] + [None, "text without id"]
    pq.write_table(pa.table({"id": ids, "text": texts}), sink)
    return sink.getvalue().to_pybytes(), len(good) + 2, {"invalid_schema": 2}


def write_cases(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for c in CASES:
        (folder / c.file).write_bytes(c.data)
