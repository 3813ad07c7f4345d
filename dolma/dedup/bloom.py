"""Paragraph dedup's ``bloom`` method: one task, and a Bloom filter of n-grams saved with a small header.

Sized from the expected number of items and the false-positive rate; probed at k positions per item by double
hashing over two 64-bit hashes, in numpy. Saved as a 4-byte header length, the JSON header and the bit array.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec
import numpy as np

from dolma import io
from dolma.core.document import ENCODER
from dolma.core.errors import UserError
from dolma.dedup.paragraph_ngrams import ParagraphProductStep, paragraph_ngrams
from dolma.runtime.ledger import ShardLedger
from dolma.runtime.shards import AlignedAttributes, file_boundary, read_shard
from dolma.runtime.stage import Files, Task


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
class BloomParagraphStep(ParagraphProductStep):
    """Paragraph dedup in one task: every file in order through one Bloom filter (see :mod:`dolma.dedup.paragraphs`).
    Within a batch, an n-gram counts as seen if an earlier paragraph had it; across batches, if the filter
    holds it. The result does not depend on the number of workers."""

    step = "bloom"

    def tasks(self) -> list[Task]:
        return [Task("all", Files(tuple(io.document_files(self.params.input))))]

    def task_basis(self, tasks: list[Task]) -> str:
        return f"one Bloom filter over all {len(tasks[0].payload.urls):,} files, read in order (method: bloom)"

    def inputs(self, task: Task) -> list[str]:
        return list(task.payload.urls) + ([self.params.bloom_in] if self.params.bloom_in else [])

    def run(self, task: Task, ledger: ShardLedger) -> None:
        p = self.params
        bloom = BloomFilter.load(p.bloom_in) if p.bloom_in else BloomFilter(p.expected_ngrams, p.false_positive_rate)
        for url in task.payload.urls:
            with file_boundary(ledger, url), AlignedAttributes(io.attributes_url(url, p.name)) as out:
                for batch in read_shard(url, ledger, p.batch_size, keep_all=True):
                    spans = self._duplicate_spans(bloom, [d.text for d in batch.docs], ledger)
                    out.write(batch, [p.attribute_line(doc, s) for doc, s in zip(batch.docs, spans)])
        if p.bloom_out and not p.read_only:
            bloom.save(p.bloom_out)

    def _duplicate_spans(self, bloom: BloomFilter, texts: list[str], ledger: ShardLedger) -> list[list]:
        p = self.params
        ng = paragraph_ngrams(texts, p.ngram, p.min_words)
        out: list[list] = [[] for _ in texts]
        ledger.metrics["paragraphs"] += len(ng.owner)
        if not len(ng.owner):
            return out
        seen = bloom.contains(ng.g1, ng.g2)
        # an n-gram first met in an earlier paragraph of this batch counts as seen too
        _, first, inverse = np.unique(ng.key, return_index=True, return_inverse=True)
        seen |= ng.par[first[inverse]] < ng.par
        found = np.bincount(ng.par, weights=seen, minlength=len(ng.owner))
        total = np.bincount(ng.par, minlength=len(ng.owner))
        duplicate = (total > 0) & (found >= p.overlap_threshold * total) & ng.eligible
        ledger.metrics["duplicate_paragraphs"] += int(duplicate.sum())
        for i in np.flatnonzero(duplicate).tolist():
            out[ng.owner[i]].append([int(ng.starts[i]), int(ng.ends[i]), 1.0])
        if not p.read_only:
            bloom.add(ng.g1, ng.g2)
        return out
