"""Decontamination: word n-gram overlap (default 13-grams) between documents and evaluation sets.

Evaluation sets are files (Dolma JSONL with ``text``, or plain text with one item per line). The document
score is the share of its n-grams that occur in an evaluation set; ``overlap`` spans mark the matching text.
Words are lower-cased ``\\w+`` runs, so punctuation and case do not hide a match.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import polars as pl

from dolma import io
from dolma.core.errors import UserError
from taggers.registry import Tagger, TagResult, TextBatch, tagger

WORD = r"\w+"


def _gram_hashes(words: pl.DataFrame, n: int) -> pl.DataFrame:
    """``(doc, pos, g)``: the hash of the n lower-cased words starting at each position."""
    shifted = [
        pl.when(pl.col("doc").shift(-i) == pl.col("doc")).then(pl.col("h").shift(-i)).alias(f"h{i}") for i in range(n)
    ]
    return (
        words.with_columns(h=pl.col("w").str.to_lowercase().hash())
        .with_columns(g=pl.when(shifted[-1].is_not_null()).then(pl.struct(shifted).hash()))
        .filter(pl.col("g").is_not_null())
        .select("doc", "pos", "g")
    )


def _words(texts: pl.Series) -> pl.DataFrame:
    words = pl.DataFrame({"w": texts.str.extract_all(WORD)}).with_row_index("doc").explode("w").drop_nulls("w")
    doc = words["doc"].to_numpy()
    return words.with_columns(pos=pl.Series(np.arange(len(doc)) - np.searchsorted(doc, doc), dtype=pl.UInt32))


@lru_cache(maxsize=4)
def eval_ngrams(files: tuple[str, ...], n: int) -> pl.Series:
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
    return _gram_hashes(_words(pl.Series(texts, dtype=pl.String)), n)["g"].unique()


@tagger
class Decontamination(Tagger):
    name = "decontam_v1"
    description = "n-gram overlap with evaluation sets: share of the document's n-grams found, and matching spans"
    eval_files: list[str] = None  # type: ignore[assignment]
    ngram: int = 13

    def __post_init__(self) -> None:
        if not self.eval_files:
            raise UserError("decontam_v1 needs eval_files: files of evaluation texts")

    def tag(self, batch: TextBatch) -> TagResult:
        bad = eval_ngrams(tuple(self.eval_files), self.ngram)
        grams = _gram_hashes(_words(batch.texts), self.ngram).with_columns(hit=pl.col("g").is_in(bad.implode()))
        per_doc = grams.group_by("doc").agg(total=pl.len(), hits=pl.col("hit").sum())
        score = np.zeros(len(batch))
        score[per_doc["doc"].to_numpy()] = (per_doc["hits"] / per_doc["total"]).to_numpy()
        spans: list[list] = [[] for _ in range(len(batch))]
        for i in np.flatnonzero(score > 0):  # contamination is rare: offsets only for documents with a hit
            spans[i] = self._spans(batch.texts[int(i)], bad)
        return {"overlap_fraction": score, "overlap": spans}

    def _spans(self, text: str, bad: pl.Series) -> list[list]:
        matches = list(re.finditer(WORD, text))
        grams = _gram_hashes(_words(pl.Series([" ".join(m.group() for m in matches)])), self.ngram)
        hit = grams.filter(pl.col("g").is_in(bad.implode()))["pos"].to_list()
        merged: list[list] = []
        for p in hit:
            start, end = matches[p].start(), matches[p + self.ngram - 1].end()
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end, 1.0])
        return merged
