"""Decontamination: word n-gram overlap (default 13-grams) between documents and evaluation sets.

Evaluation sets are files (Dolma JSONL with ``text``, or plain text with one item per line). Words are
lower-cased ``\\w+`` runs, so punctuation and case do not hide a match. An item of at least ``ngram`` words is
checked by its n-grams: the document score ``overlap_fraction`` is the share of the document's n-grams found in
some item. An item shorter than that (a short question or answer) could never share an n-gram, so it is matched
whole: its ``min_words`` to ``ngram - 1`` words in a row anywhere in a document (``whole_item_matches`` counts
them). Items under ``min_words`` would match ordinary text everywhere and are not checked; how many items each
rule checked is printed once when the sets are loaded. ``overlap`` spans mark the matching text of both kinds.

Hashes are polynomial rolling hashes of the word hashes in numpy, so every length from 1 to ``ngram`` comes
out of one pass.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import polars as pl

from dolma import io
from dolma.core.errors import UserError
from taggers.registry import Tagger, TagResult, TextBatch, tagger

WORD = r"\w+"
PRIME = np.uint64(0x100000001B3)


@dataclass(frozen=True)
class Words:
    doc: np.ndarray  # the text each word belongs to
    pos: np.ndarray  # the word's position in its text
    left: np.ndarray  # words of its text from this one to the end
    h: np.ndarray  # the lower-cased word's hash


def _words(texts: pl.Series) -> Words:
    words = pl.DataFrame({"w": texts.str.extract_all(WORD)}).with_row_index("doc").explode("w").drop_nulls("w")
    doc = words["doc"].to_numpy().astype(np.int64)
    pos = np.arange(len(doc)) - np.searchsorted(doc, doc)
    left = np.bincount(doc, minlength=len(texts))[doc] - pos if len(doc) else pos
    return Words(doc, pos, left, words["w"].str.to_lowercase().hash(seed=5).to_numpy())


def _grams(words: Words, n: int):
    """(k, rows whose k-gram exists, their hashes) for k = 1 .. n, one rolling pass."""
    g = np.zeros(len(words.h), np.uint64)
    with np.errstate(over="ignore"):
        for k in range(1, n + 1):
            g = g * PRIME + np.roll(words.h, -(k - 1))
            rows = np.flatnonzero(words.left >= k)
            yield k, rows, g[rows]


@dataclass(frozen=True)
class EvalSets:
    ngrams: np.ndarray  # sorted hashes of every n-gram of the long items
    whole: dict[int, np.ndarray]  # words -> sorted hashes of the short items of that length
    counts: tuple[int, int, int]  # items checked by n-grams, whole, not at all


@lru_cache(maxsize=4)
def eval_sets(files: tuple[str, ...], n: int, min_words: int) -> EvalSets:
    texts: list[str] = []
    for pattern in files:
        for url in io.list_files(pattern):
            if url.endswith(io.DOC_SUFFIXES):
                texts += [d.text for b in io.read_documents(url) for d in b.docs]
            else:
                with io.open_url(url, "rt", encoding="utf-8", errors="replace") as f:
                    texts += [line for line in f if line.strip()]
    if not texts:
        raise UserError(f"no evaluation texts found in {list(files)}")
    words = _words(pl.Series(texts, dtype=pl.String))
    size = np.bincount(words.doc, minlength=len(texts))
    long_grams, whole = [], {}
    for k, rows, g in _grams(words, n):
        if k == n:
            long_grams.append(g)
        elif k >= min_words:
            starts = (words.pos[rows] == 0) & (size[words.doc[rows]] == k)  # the item whole, from its first word
            whole[k] = np.unique(g[starts])
    counts = (int((size >= n).sum()), int(((size >= min_words) & (size < n)).sum()), int((size < min_words).sum()))
    print(
        f"decontam_v1: {counts[0]:,} evaluation items checked by {n}-gram overlap, {counts[1]:,} shorter ones "
        f"matched whole, {counts[2]:,} under {min_words} words not checked",
        file=sys.stderr,
    )
    return EvalSets(np.unique(np.concatenate(long_grams)), {k: v for k, v in whole.items() if len(v)}, counts)


@tagger
class Decontamination(Tagger):
    name = "decontam_v1"
    description = "n-gram overlap with evaluation sets (short items matched whole): share of n-grams found, spans"
    eval_files: list[str] = None  # type: ignore[assignment]
    ngram: int = 13
    min_words: int = 4  # shorter evaluation items are not checked: they would match ordinary text

    def __post_init__(self) -> None:
        if not self.eval_files:
            raise UserError("decontam_v1 needs eval_files: files of evaluation texts")
        if not 1 <= self.min_words <= self.ngram:
            raise UserError(f"decontam_v1: min_words must be between 1 and ngram ({self.ngram})")

    def tag(self, batch: TextBatch) -> TagResult:
        sets = eval_sets(tuple(self.eval_files), self.ngram, self.min_words)
        hits = self._hits(_words(batch.texts), sets, len(batch))
        total, found, whole = hits["total"], hits["found"], hits["whole"]
        score = np.divide(found, total, out=np.zeros(len(batch)), where=total > 0)
        spans: list[list] = [[] for _ in range(len(batch))]
        for i in np.flatnonzero((found > 0) | (whole > 0)):  # contamination is rare: offsets only where it is
            spans[i] = self._spans(batch.texts[int(i)], sets)
        return {"overlap_fraction": score, "whole_item_matches": whole.astype(np.float64), "overlap": spans}

    def _hits(self, words: Words, sets: EvalSets, n_docs: int, where: list | None = None) -> dict[str, np.ndarray]:
        """Per document: n-grams, n-grams found, short items found whole; ``where`` collects (row, k) of hits."""
        out = {key: np.zeros(n_docs, np.int64) for key in ("total", "found", "whole")}
        for k, rows, g in _grams(words, self.ngram):
            bad = sets.ngrams if k == self.ngram else sets.whole.get(k)
            if bad is None:
                continue
            hit = np.isin(g, bad, assume_unique=False)
            if k == self.ngram:
                out["total"] += np.bincount(words.doc[rows], minlength=n_docs)
                out["found"] += np.bincount(words.doc[rows[hit]], minlength=n_docs)
            else:
                out["whole"] += np.bincount(words.doc[rows[hit]], minlength=n_docs)
            if where is not None:
                where += [(int(r), k) for r in rows[hit]]
        return out

    def _spans(self, text: str, sets: EvalSets) -> list[list]:
        matches = list(re.finditer(WORD, text))
        where: list = []
        self._hits(_words(pl.Series([text])), sets, 1, where)
        merged: list[list] = []
        for p, k in sorted(where):
            start, end = matches[p].start(), matches[p + k - 1].end()
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end, 1.0])
        return merged
