"""Paragraph-level dedup with a Bloom filter, following allenai dolma's ``dedupe`` paragraph semantics.

Each paragraph (a line) is split into word n-grams (a shorter paragraph is one n-gram); it is a duplicate when
at least ``overlap_threshold`` of its n-grams were already seen, in the filter or earlier in the corpus. Spans of
duplicate paragraphs become ``<name>__paragraph_bloom__duplicate_paragraph`` attributes (the mixer removes them)
and ``…__duplicate_fraction`` says how much of the document they cover.

The filter is sized from the expected number of n-grams and the false-positive rate. ``bloom_in`` starts from a
saved filter (cross-dataset dedup); ``bloom_out`` saves the filter after the run; with ``read_only`` nothing is
added (decontamination against a reference set). Shards are processed in order in one task, so the result does
not depend on the number of workers; within a batch, an n-gram counts as seen if an earlier paragraph had it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import msgspec
import numpy as np
import polars as pl

from dolma import io
from dolma.core.config import param
from dolma.core.document import ENCODER, AttributeLine
from dolma.core.errors import UserError
from dolma.runtime.ledger import ShardLedger
from dolma.runtime.shards import AlignedAttributes, file_boundary, read_shard
from dolma.runtime.stage import Files, Stage, Task

LINE = re.compile(r"[^\n]+")


class BloomHeader(msgspec.Struct):
    bits: int
    hashes: int
    expected: int
    false_positive_rate: float


class BloomFilter:
    """A bit array probed at k positions per item (double hashing over two 64-bit hashes), vectorised."""

    def __init__(self, expected: int, false_positive_rate: float):
        bits = max(64, int(-expected * math.log(false_positive_rate) / math.log(2) ** 2))
        self.header = BloomHeader(
            bits=-(-bits // 64) * 64,
            hashes=max(1, round(bits / expected * math.log(2))),
            expected=expected,
            false_positive_rate=false_positive_rate,
        )
        self.words = np.zeros(self.header.bits // 64, np.uint64)

    def _positions(self, h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
        i = np.arange(self.header.hashes, dtype=np.uint64)
        with np.errstate(over="ignore"):
            return (h1[:, None] + i[None, :] * (h2[:, None] | np.uint64(1))) % np.uint64(self.header.bits)

    def contains(self, h1: np.ndarray, h2: np.ndarray) -> np.ndarray:
        pos = self._positions(h1, h2)
        bits = (self.words[pos >> np.uint64(6)] >> (pos & np.uint64(63))) & np.uint64(1)
        return bits.all(axis=1)

    def add(self, h1: np.ndarray, h2: np.ndarray) -> None:
        pos = self._positions(h1, h2).ravel()
        np.bitwise_or.at(self.words, (pos >> np.uint64(6)).astype(np.int64), np.uint64(1) << (pos & np.uint64(63)))

    def save(self, url: str) -> None:
        header = ENCODER.encode(self.header)
        with io.AtomicWriter(url) as w:
            w.write(len(header).to_bytes(4, "little") + header + self.words.tobytes())

    @classmethod
    def load(cls, url: str) -> BloomFilter:
        with io.open_url(url, "rb") as f:
            data = f.read()
        size = int.from_bytes(data[:4], "little")
        header = msgspec.json.decode(data[4 : 4 + size], type=BloomHeader)
        bloom = cls.__new__(cls)
        bloom.header = header
        bloom.words = np.frombuffer(data[4 + size :], np.uint64).copy()
        if len(bloom.words) * 64 != header.bits:
            raise UserError(f"bloom filter {url!r} is truncated")
        return bloom


@dataclass
class ParagraphDedupStage(Stage):
    input: str = param(help="glob of document files under a 'documents/' folder")
    name: str = param("paragraph_dedup", "attribute set name")
    ngram: int = param(13, "n-gram length in words", ge=1, le=1000)
    overlap_threshold: float = param(
        0.5, "share of a paragraph's n-grams already seen that makes it a duplicate", gt=0, le=1
    )
    min_words: int = param(
        5,
        "paragraphs with fewer words are neither marked nor remembered (lines like `1` or `\\fi` recur everywhere)",
        ge=0,
    )
    expected_ngrams: int = param(100_000_000, "sizes the filter (with false_positive_rate)", ge=1)
    false_positive_rate: float = param(1e-4, "the filter's false-positive rate at expected_ngrams", gt=0, lt=1)
    bloom_in: str | None = param(None, "start from this saved filter")
    bloom_out: str | None = param(None, "save the filter here after the run")
    read_only: bool = param(False, "check only; add nothing to the filter (needs bloom_in)")
    batch_size: int = param(2048, "documents per batch", ge=1)

    @property
    def output(self) -> str:
        head = self.input.rpartition("/documents/")[0] or "."
        return io.join(head, "attributes", self.name)

    def tasks(self) -> list[Task]:
        return [Task("all", Files(tuple(io.document_files(self.input))))]

    def task_basis(self, tasks: list[Task]) -> str:
        return f"one Bloom filter over all {len(tasks[0].payload.urls):,} files, read in order"

    def inputs(self, task: Task) -> list[str]:
        return list(task.payload.urls) + ([self.bloom_in] if self.bloom_in else [])

    def run(self, task: Task, ledger: ShardLedger) -> None:
        if self.read_only and not self.bloom_in:
            raise UserError("read_only paragraph dedup needs bloom_in: the filter to check against")
        bloom = (
            BloomFilter.load(self.bloom_in)
            if self.bloom_in
            else BloomFilter(self.expected_ngrams, self.false_positive_rate)
        )
        key = f"{self.name}__paragraph_bloom__"
        for url in task.payload.urls:
            with file_boundary(ledger, url), AlignedAttributes(io.attributes_url(url, self.name)) as out:
                for batch in read_shard(url, ledger, self.batch_size, keep_all=True):
                    spans = self._duplicate_spans(bloom, [d.text for d in batch.docs], ledger)
                    lines = []
                    for doc, doc_spans in zip(batch.docs, spans):
                        covered = sum(e - s for s, e, _ in doc_spans)
                        attrs = {
                            key + "duplicate_fraction": [[0, len(doc.text), round(covered / max(len(doc.text), 1), 6)]]
                        }
                        if doc_spans:
                            attrs[key + "duplicate_paragraph"] = doc_spans
                        lines.append(AttributeLine(doc.id, attrs))
                    out.write(batch, lines)
        if self.bloom_out and not self.read_only:
            bloom.save(self.bloom_out)

    def _duplicate_spans(self, bloom: BloomFilter, texts: list[str], ledger: ShardLedger) -> list[list]:
        paragraphs, owner, starts = [], [], []
        for i, text in enumerate(texts):
            for m in LINE.finditer(text):
                if m.group().strip():
                    paragraphs.append(m.group())
                    owner.append(i)
                    starts.append(m.start())
        out: list[list] = [[] for _ in texts]
        if not paragraphs:
            return out
        words = (
            pl.DataFrame({"w": pl.Series(paragraphs).str.to_lowercase().str.extract_all(r"\w+")})
            .with_row_index("p")
            .explode("w")
            .drop_nulls("w")
        )
        par = words["p"].to_numpy().astype(np.int64)
        h = words["w"].hash(seed=11).to_numpy()
        counts = np.bincount(par, minlength=len(paragraphs))
        eligible = counts >= max(self.min_words, 1)  # short paragraphs: never marked, never added
        length = counts[par]
        pos = np.arange(len(par)) - np.searchsorted(par, par)
        g1, g2 = h.copy(), words["w"].hash(seed=12).to_numpy()
        with np.errstate(over="ignore"):
            for j in range(1, self.ngram):
                nxt1 = np.where(pos + j < length, np.roll(h, -j), np.uint64(0))
                g1 = g1 * np.uint64(0x100000001B3) + nxt1
                g2 = g2 * np.uint64(0x9E3779B97F4A7C15) + nxt1
        keep = ((pos + self.ngram <= length) | ((length < self.ngram) & (pos == 0))) & eligible[par]
        par, g1, g2 = par[keep], g1[keep], g2[keep]
        seen = bloom.contains(g1, g2)
        # an n-gram first met in an earlier paragraph of this batch counts as seen too
        _, first, inverse = np.unique(g1 ^ (g2 << np.uint64(1)), return_index=True, return_inverse=True)
        seen |= par[first[inverse]] < par
        found = np.bincount(par, weights=seen, minlength=len(paragraphs))
        total = np.bincount(par, minlength=len(paragraphs))
        duplicate = (total > 0) & (found >= self.overlap_threshold * total) & eligible
        ledger.metrics["paragraphs"] += len(paragraphs)
        ledger.metrics["duplicate_paragraphs"] += int(duplicate.sum())
        for p in np.flatnonzero(duplicate):
            out[owner[p]].append([starts[p], starts[p] + len(paragraphs[p]), 1.0])
        if not self.read_only:
            bloom.add(g1, g2)
        return out
