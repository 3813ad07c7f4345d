"""What both paragraph dedup methods share: their parameters, the n-grams of a batch's paragraphs, and the
attribute line written for a document.

A paragraph is a non-blank line. One of at least ``min_words`` words (``\\w+``, lower-cased) is split into word
n-grams (a shorter one is one n-gram); shorter paragraphs are neither marked nor remembered. Each n-gram is two
64-bit hashes (the Bloom filter probes with both; the exact method folds them into one 64-bit key).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from dolma import io
from dolma.core.config import param
from dolma.core.document import AttributeLine, Document
from dolma.core.errors import UserError
from dolma.runtime.stage import Step

LINE = re.compile(r"[^\n]+")
MAX_PARTITIONS = 512  # the exact method's default key partitions: one per input file or PARTITION_BYTES, at most
PARTITION_BYTES = 8 << 20  # of (compressed) input per default key partition: a large file gets several


@dataclass
class ParagraphParams:
    """Shared by the paragraph dedup steps; ``name`` is the attribute set, written beside the documents."""

    input: str = param(help="glob of document files under a 'documents/' folder")
    name: str = param("paragraph_dedup", "attribute set name")
    method: Literal["auto", "exact", "bloom"] = param(
        "auto",
        "exact: many tasks (per file, then per n-gram key partition), no filter; bloom: one task over every file "
        "in order through a Bloom filter; auto: bloom when bloom_in, bloom_out or read_only is set, else exact",
    )
    ngram: int = param(13, "n-gram length in words", ge=1, le=1000)
    overlap_threshold: float = param(
        0.5, "share of a paragraph's n-grams already seen that makes it a duplicate", gt=0, le=1
    )
    min_words: int = param(
        5,
        "paragraphs with fewer words are neither marked nor remembered (lines like `1` or `\\fi` recur everywhere)",
        ge=0,
    )
    partitions: int | None = param(
        None,
        "exact method: n-gram key partitions, one task each (unset: one per input file or per 8 MB of local input, "
        f"whichever is more, at most {MAX_PARTITIONS})",
        ge=1,
        le=65536,
    )
    expected_ngrams: int = param(100_000_000, "bloom method: sizes the filter (with false_positive_rate)", ge=1)
    false_positive_rate: float = param(
        1e-4, "bloom method: the filter's false-positive rate at expected_ngrams", gt=0, lt=1
    )
    bloom_in: str | None = param(None, "bloom method: start from this saved filter")
    bloom_out: str | None = param(None, "bloom method: save the filter here after the run")
    read_only: bool = param(False, "bloom method: check only; add nothing to the filter (needs bloom_in)")
    batch_size: int = param(2048, "documents per batch", ge=1)

    def __post_init__(self) -> None:
        bloom_only = [k for k in ("bloom_in", "bloom_out", "read_only") if getattr(self, k)]
        if self.method == "exact" and bloom_only:
            raise UserError(f"paragraph dedup: {', '.join(bloom_only)} needs method: bloom (or auto), not exact")
        if self.read_only and not self.bloom_in:
            raise UserError("read_only paragraph dedup needs bloom_in: the filter to check against")

    @property
    def chosen(self) -> str:
        """The method that runs: ``auto`` resolved."""
        if self.method != "auto":
            return self.method
        return "bloom" if self.bloom_in or self.bloom_out or self.read_only else "exact"

    @property
    def output(self) -> str:
        head = self.input.rpartition("/documents/")[0] or "."
        return io.join(head, "attributes", self.name)

    @property
    def work(self) -> str:
        """The exact method's intermediates (n-gram keys, first occurrences), beside the attribute ledger."""
        return io.join(self.output, "_work")

    def attribute_line(self, doc: Document, spans: list[list]) -> AttributeLine:
        """A document's attributes: the share of its text in duplicate paragraphs, and their spans."""
        key = f"{self.name}__paragraph_bloom__"
        covered = sum(e - s for s, e, _ in spans)
        attrs = {key + "duplicate_fraction": [[0, len(doc.text), round(covered / max(len(doc.text), 1), 6)]]}
        if spans:
            attrs[key + "duplicate_paragraph"] = spans
        return AttributeLine(doc.id, attrs)


@dataclass
class ParagraphNgrams:
    """The paragraphs of a batch of texts, and the n-grams of those long enough to count."""

    owner: np.ndarray  # per paragraph: the index of its text in the batch
    starts: np.ndarray  # per paragraph: its first and one-past-last character
    ends: np.ndarray
    eligible: np.ndarray  # per paragraph: long enough to be marked and remembered
    par: np.ndarray  # per n-gram: its paragraph, ascending
    g1: np.ndarray
    g2: np.ndarray

    @property
    def key(self) -> np.ndarray:
        """One 64-bit key per n-gram, from its two hashes."""
        return self.g1 ^ (self.g2 << np.uint64(1))


def paragraph_ngrams(texts: list[str], ngram: int, min_words: int) -> ParagraphNgrams:
    """Split ``texts`` into paragraphs and hash the word n-grams of the eligible ones, in numpy."""
    paragraphs, owner, starts = [], [], []
    for i, text in enumerate(texts):
        for m in LINE.finditer(text):
            if m.group().strip():
                paragraphs.append(m.group())
                owner.append(i)
                starts.append(m.start())
    start = np.asarray(starts, np.int64)
    ends = start + np.fromiter(map(len, paragraphs), np.int64, len(paragraphs))
    if not paragraphs:
        none, empty = np.empty(0, np.int64), np.empty(0, np.uint64)
        return ParagraphNgrams(none, start, ends, np.empty(0, bool), none, empty, empty)
    words = (
        pl.DataFrame({"w": pl.Series(paragraphs).str.to_lowercase().str.extract_all(r"\w+")})
        .with_row_index("p")
        .explode("w")
        .drop_nulls("w")
    )
    par = words["p"].to_numpy().astype(np.int64)
    h = words["w"].hash(seed=11).to_numpy()
    counts = np.bincount(par, minlength=len(paragraphs))
    eligible = counts >= max(min_words, 1)  # short paragraphs: never marked, never added
    length = counts[par]
    pos = np.arange(len(par)) - np.searchsorted(par, par)
    g1, g2 = h.copy(), words["w"].hash(seed=12).to_numpy()
    with np.errstate(over="ignore"):
        for j in range(1, ngram):
            nxt1 = np.where(pos + j < length, np.roll(h, -j), np.uint64(0))
            g1 = g1 * np.uint64(0x100000001B3) + nxt1
            g2 = g2 * np.uint64(0x9E3779B97F4A7C15) + nxt1
    keep = ((pos + ngram <= length) | ((length < ngram) & (pos == 0))) & eligible[par]
    return ParagraphNgrams(np.asarray(owner, np.int64), start, ends, eligible, par[keep], g1[keep], g2[keep])


@dataclass
class ParagraphProductStep(Step):
    """The step that writes the attribute set itself (either method's last): named after the set, its ledger in
    the set's folder."""

    params: ParagraphParams

    @property
    def name(self) -> str:
        return self.params.name

    @property
    def output(self) -> str:
        return self.params.output
