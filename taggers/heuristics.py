"""Heuristic quality rules: Gopher quality and Gopher repetition (C4 and FineWeb: ``line_rules``), in polars.

Every rule's measured value is an attribute of its own (so a mix can threshold it differently), plus ``pass``
(1.0 or 0.0) at the published default thresholds. The whole batch is computed at once: texts are split into
words, lines and paragraphs once per tagger, exploded into long frames and aggregated per document, so no Python
code runs per document or per word. The rule definitions, defaults and their sources are in
``taggers/README.md``, with the places where we knowingly differ from datatrove's implementation.
"""

from __future__ import annotations

import bisect

import numpy as np
import polars as pl

from taggers.registry import Tagger, TagResult, TextBatch, tagger

SYMBOL_WORD = r"^[\p{P}\p{S}\p{Cc}]+$"
TERMINAL = r"[\p{Sentence_Terminal}]$"
SEP = "\ue000"  # private-use character used to split on a regex (polars splits on literals only)
GOPHER_STOP_WORDS = ["the", "be", "to", "of", "and", "that", "have", "with"]


def _ratio(num, den):
    """num / den, 0 where den is 0; for expressions or Series."""
    if isinstance(num, pl.Series):
        num, den = num.cast(pl.Float64), pl.Series(den).cast(pl.Float64)
        return (num / den.replace(0, None)).fill_null(0.0)
    return pl.when(den > 0).then(num.cast(pl.Float64) / den).otherwise(0.0)


def _explode(texts: pl.Series, parts: pl.Expr) -> pl.DataFrame:
    """One row per part (line, paragraph) with its document index, in order."""
    return pl.DataFrame({"t": texts}).with_row_index("doc").select("doc", p=parts).explode("p")


def _per_doc(n: int, frame: pl.DataFrame, **aggs: pl.Expr) -> pl.DataFrame:
    """Aggregate a long frame per document, with a row (zeros) for documents the frame has no rows for."""
    agg = frame.group_by("doc").agg(**aggs)
    return (
        pl.DataFrame({"doc": pl.int_range(n, eager=True).cast(pl.UInt32)})
        .join(agg, on="doc", how="left")
        .sort("doc")
        .fill_null(0)
    )


def _duplicates(frame: pl.DataFrame, n: int) -> pl.DataFrame:
    """Per document: how many parts repeat an earlier part, and their characters (Gopher's find_duplicates)."""
    counts = frame.filter(pl.col("p").is_not_null()).group_by("doc", "p").agg(c=pl.len())
    return _per_doc(
        n,
        counts,
        dup=(pl.col("c") - 1).sum(),
        dup_chars=((pl.col("c") - 1) * pl.col("p").str.len_chars()).sum(),
        parts=pl.col("c").sum(),
    )


def _as_result(values: pl.DataFrame, passed: pl.Expr) -> TagResult:
    out = values.with_columns(**{"pass": passed.cast(pl.Float64)})
    return {c: out[c].to_numpy() for c in out.columns}


@tagger
class GopherQuality(Tagger):
    name = "gopher_quality_v1"
    description = "Gopher quality rules (Rae et al. 2021): word count, word length, symbols, bullets, alpha, stop words"
    min_doc_words: int = 50
    max_doc_words: int = 100_000
    min_avg_word_length: float = 3
    max_avg_word_length: float = 10
    max_symbol_word_ratio: float = 0.1
    max_bullet_lines_ratio: float = 0.9
    max_ellipsis_lines_ratio: float = 0.3
    min_alpha_words_ratio: float = 0.8
    min_stop_words: int = 2

    def tag(self, batch: TextBatch) -> TagResult:
        n = len(batch)
        w = pl.col("w")
        words = batch.words.with_columns(symbol=w.str.contains(SYMBOL_WORD))
        counts = _per_doc(
            n,
            words,
            tokens=pl.len(),
            words=(~pl.col("symbol")).sum(),
            mean_word_length=w.filter(~pl.col("symbol")).str.len_chars().mean(),
            alpha=w.str.contains(r"\p{L}").sum(),
            stop_words=w.filter(w.is_in(GOPHER_STOP_WORDS)).n_unique(),
        )
        lines = _explode(
            batch.texts,
            pl.col("t")
            .str.replace_all(r"\r\n|[\r\v\f\x1c-\x1e\x85\u2028\u2029]", "\n")
            .str.replace(r"\n$", "")
            .str.split("\n"),
        )
        lines = _per_doc(
            n,
            lines.filter(pl.col("p").is_not_null()),
            lines=pl.len(),
            bullets=pl.col("p").str.contains(r"^\s*[•\-]").sum(),
            ellipsis=pl.col("p").str.contains(r"(?:\.\.\.|…)\s*$").sum(),
        )
        lines = lines.with_columns(lines=pl.when(pl.Series(batch.lengths) > 0).then("lines").otherwise(0))
        t = batch.texts
        v = pl.DataFrame(
            {
                "words": counts["words"],
                "mean_word_length": counts["mean_word_length"].cast(pl.Float64),
                "hash_ratio": _ratio(t.str.count_matches("#", literal=True), counts["tokens"]),
                "ellipsis_ratio": _ratio(
                    t.str.count_matches("...", literal=True) + t.str.count_matches("…", literal=True), counts["tokens"]
                ),
                "bullet_lines_ratio": _ratio(lines["bullets"], lines["lines"]),
                "ellipsis_lines_ratio": _ratio(lines["ellipsis"], lines["lines"]),
                "alpha_words_ratio": _ratio(counts["alpha"], counts["tokens"]),
                "stop_words": counts["stop_words"],
            }
        )
        passed = (
            pl.col("words").is_between(self.min_doc_words, self.max_doc_words)
            & pl.col("mean_word_length").is_between(self.min_avg_word_length, self.max_avg_word_length)
            & (pl.col("hash_ratio") <= self.max_symbol_word_ratio)
            & (pl.col("ellipsis_ratio") <= self.max_symbol_word_ratio)
            & (pl.col("bullet_lines_ratio") <= self.max_bullet_lines_ratio)
            & (pl.col("ellipsis_lines_ratio") <= self.max_ellipsis_lines_ratio)
            & (pl.col("alpha_words_ratio") >= self.min_alpha_words_ratio)
            & (pl.col("stop_words") >= self.min_stop_words)
        )
        return _as_result(v, passed)


@tagger
class GopherRepetition(Tagger):
    name = "gopher_repetition_v1"
    description = (
        "Gopher repetition rules: duplicate lines/paragraphs, top 2-4-gram and duplicate 5-10-gram char fractions"
    )
    dup_line_frac: float = 0.3
    dup_para_frac: float = 0.3
    dup_line_char_frac: float = 0.2
    dup_para_char_frac: float = 0.2
    top_ngram_char_frac: dict[int, float] = None  # type: ignore[assignment]
    dup_ngram_char_frac: dict[int, float] = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.top_ngram_char_frac = self.top_ngram_char_frac or {2: 0.2, 3: 0.18, 4: 0.16}
        self.dup_ngram_char_frac = self.dup_ngram_char_frac or {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}

    def tag(self, batch: TextBatch) -> TagResult:
        n, texts = len(batch), batch.texts
        length = pl.Series(batch.lengths, dtype=pl.Float64)
        paragraphs = _duplicates(
            _explode(texts, pl.col("t").str.strip_chars().str.replace_all(r"\n{2,}", SEP).str.split(SEP)), n
        )
        lines = _duplicates(_explode(texts, pl.col("t").str.replace_all(r"\n+", SEP).str.split(SEP)), n)
        values = {
            "dup_para_frac": _ratio(paragraphs["dup"], paragraphs["parts"]),
            "dup_para_char_frac": _ratio(paragraphs["dup_chars"], length),
            "dup_line_frac": _ratio(lines["dup"], lines["parts"]),
            "dup_line_char_frac": _ratio(lines["dup_chars"], length),
        }
        grams = _NGrams(batch.words)
        for k in sorted(self.top_ngram_char_frac):
            values[f"top_{k}_gram_char_frac"] = _ratio(pl.Series(grams.top_chars(k, n)), length)
        for k in sorted(self.dup_ngram_char_frac):
            values[f"dup_{k}_gram_char_frac"] = _ratio(pl.Series(grams.greedy_duplicate_chars(k, n)), length)
        v = pl.DataFrame(values)
        passed = pl.lit(batch.lengths > 0)
        for key, limit in (
            ("dup_para_frac", self.dup_para_frac),
            ("dup_para_char_frac", self.dup_para_char_frac),
            ("dup_line_frac", self.dup_line_frac),
            ("dup_line_char_frac", self.dup_line_char_frac),
        ):
            passed = passed & (pl.col(key) <= limit)
        for k, limit in self.top_ngram_char_frac.items():
            passed = passed & (pl.col(f"top_{k}_gram_char_frac") <= limit)
        for k, limit in self.dup_ngram_char_frac.items():
            passed = passed & (pl.col(f"dup_{k}_gram_char_frac") <= limit)
        return _as_result(v, passed)


def _in_slices(columns: tuple[np.ndarray, ...], size: int = 1 << 16):
    """The rows of equal-length arrays as tuples of Python numbers, converted a slice at a time (a list of a
    giant document's repeats as Python ints would take ~30 bytes a number)."""
    for at in range(0, len(columns[0]), size):
        yield from zip(*(c[at : at + size].tolist() for c in columns))


class _NGrams:
    """Word k-grams of a batch as 64-bit keys, built incrementally in numpy (key_k = key_{k-1} * P + hash of
    the k-th word, wrapping), with the document mixed in so equal k-grams of two documents never meet."""

    PRIME = np.uint64(0x9E3779B97F4A7C15)

    def __init__(self, words: pl.DataFrame):
        self.doc = words["doc"].to_numpy().astype(np.int32)
        self.pos = words["pos"].to_numpy().astype(np.int32)
        self.wlen = words["w"].str.len_chars().to_numpy().astype(np.int32)
        self.hash = words["w"].hash(seed=1).to_numpy()
        self._repeating: dict[int, np.ndarray] = {}  # k -> per row: its k-gram occurs more than once
        self._start()

    def _start(self) -> None:
        self._k = 1
        self._key = self.hash ^ (self.doc.astype(np.uint64) * np.uint64(0xD6E8FEB86659FD93))
        self._char = self.wlen.astype(np.int64)

    def valid(self, k: int) -> np.ndarray:
        """Which rows start a k-gram that ends in the same document. The key and character arrays are updated in
        place to the k-grams (callers go up in k): row i's k-gram adds the word at i + k - 1; the last rows,
        whose k-gram would run past the batch, are never valid."""
        if k < self._k:
            self._start()
        with np.errstate(over="ignore"):
            for j in range(self._k + 1, k + 1):
                self._key *= self.PRIME
                self._key[: len(self._key) - (j - 1)] += self.hash[j - 1 :]
                self._char[: len(self._char) - (j - 1)] += self.wlen[j - 1 :]
                self._k = j
        n = len(self.doc)
        valid = np.zeros(n, bool)
        valid[: max(n - (k - 1), 0)] = self.doc[k - 1 :] == self.doc[: max(n - (k - 1), 0)]
        return valid

    def repeats(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rows (in text order) whose k-gram occurs more than once, each with the first row of its k-gram and
        the k-gram's count, found by one streaming query over the key array in place. A k-gram can only repeat
        where its (k-1)-gram prefix repeats, so once those rows are known only they are looked at: going up in
        k, each step reads fewer rows."""
        valid = self.valid(k)
        if k - 1 in self._repeating:
            valid &= self._repeating[k - 1]
        for shorter in [j for j in self._repeating if j < k - 1]:  # masks no later k needs
            del self._repeating[shorter]
        found = (
            pl.LazyFrame({"key": self._key, "valid": valid})
            .with_row_index("i")
            .filter("valid")
            .select("i", first=pl.col("i").min().over("key"), n=pl.len().over("key"))
            .filter(pl.col("n") > 1)
            .collect(engine="streaming")
        )
        rows, first, count = (found[c].to_numpy() for c in ("i", "first", "n"))
        del found
        if (np.diff(rows.astype(np.int64)) < 0).any():  # the callers need text order (row-wise steps keep it)
            order = np.argsort(rows, kind="stable")
            rows, first, count = rows[order], first[order], count[order]
        valid[:] = False
        valid[rows] = True
        self._repeating[k] = valid
        return rows, first, count

    def top_chars(self, k: int, n_docs: int) -> np.ndarray:
        """Characters of the most frequent k-gram (words joined by spaces) times its count, per document; ties go
        to the k-gram seen first (Gopher's most_common). A document none of whose k-grams repeats scores its
        first k-gram once; the others score their best repeated one."""
        rows, first, count = self.repeats(k)
        out = np.zeros(n_docs)
        words = np.bincount(self.doc, minlength=n_docs)
        whole = np.flatnonzero(words >= k)  # the documents that have a k-gram
        out[whole] = self._char[(np.cumsum(words) - words)[whole]] + k - 1
        if not len(rows):
            return out
        # rows are in text order, so each document's repeats are one segment; per segment the highest count
        # wins, then the earliest first occurrence (first < 2**32, so the score orders by count, then -first)
        score = count.astype(np.int64) * 2**32 - first.astype(np.int64)
        doc = self.doc[rows]
        segments = np.flatnonzero(np.r_[True, doc[1:] != doc[:-1]])
        best = np.maximum.reduceat(score, segments)
        best_count = -((-best) >> 32)
        best_first = best_count * 2**32 - best
        out[doc[segments]] = best_count * (self._char[best_first] + k - 1)
        return out

    def greedy_duplicate_chars(self, k: int, n_docs: int) -> np.ndarray:
        """Characters in repeated k-grams, counted as Gopher's reference code does: scan left to right, and
        when the k-gram at the cursor was already seen at a visited position, count its characters and jump
        past it; otherwise remember it and step one word. Only repeated positions need the scan, so the
        Python loop runs over repeats, not words."""
        rows, first_row, _ = self.repeats(k)
        out = np.zeros(n_docs)
        if not len(rows):
            return out
        repeated = np.flatnonzero(first_row < rows)
        doc_prev, total, cursor = -1, 0, 0
        skipped_starts: list[int] = []
        skipped_ends: list[int] = []
        seen_again: set[int] = set()
        at, first_at = rows[repeated], first_row[repeated]
        columns = (self.doc[at], self.pos[at], self.pos[first_at], first_at, self._char[at])
        del rows, first_row, repeated, at
        for doc, p, f, key, c in _in_slices(columns):
            if doc != doc_prev:  # a new document: reset the scan
                if doc_prev >= 0:
                    out[doc_prev] = total
                doc_prev, total, cursor = doc, 0, 0
                skipped_starts, skipped_ends, seen_again = [], [], set()
            if p < cursor:
                continue
            w = bisect.bisect_right(skipped_starts, f) - 1
            if w < 0 or f >= skipped_ends[w] or key in seen_again:  # an earlier occurrence was visited
                total += c
                skipped_starts.append(p + 1)
                skipped_ends.append(p + k)
                cursor = p + k
            else:
                seen_again.add(key)
                cursor = p + 1
        if doc_prev >= 0:
            out[doc_prev] = total
        return out
