"""Heuristic line rules of C4 and FineWeb, computed as polars expressions over the whole batch.

Like :mod:`taggers.heuristics` (which holds the shared helpers and the Gopher rules): every rule's measured
value is an attribute of its own, plus ``pass`` at the published defaults; sources and defaults are in
``taggers/README.md``.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from taggers.heuristics import TERMINAL, _as_result, _duplicates, _explode, _per_doc, _ratio
from taggers.registry import Tagger, TagResult, TextBatch, tagger
from taggers.words import split_words_bounded

C4_POLICY = ["terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies"]


def _within_doc_cumsum(doc: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Exclusive running sum of ``values`` that restarts at each document (rows sorted by document)."""
    before = np.cumsum(values) - values
    return before - before[np.searchsorted(doc, doc, side="left")]


def _sentences(line: np.ndarray, words: pl.Series, n: int) -> np.ndarray:
    """Sentences per line as spaCy's sentencizer counts them, from the words of ``n`` lines (``line``: each
    word's line, sorted): a new sentence starts at a word that follows a sentence-final mark (. ! ? and other
    Sentence_Terminal characters), skipping punctuation in between."""
    term = words.str.contains(r"^[\p{Sentence_Terminal}]$").to_numpy()
    punct = words.str.contains(r"^\p{P}+$").to_numpy()
    terms_before = _within_doc_cumsum(line, term.astype(np.int64))
    regular = ~term & ~punct
    # a regular word starts a sentence when a terminal mark came after the previous regular word of its line
    r_line, r_terms = line[regular], terms_before[regular]
    prev_terms = np.where(np.r_[False, r_line[1:] == r_line[:-1]], np.r_[0, r_terms[:-1]], 0)
    starts = np.bincount(r_line[r_terms > prev_terms], minlength=n)
    has_words = np.bincount(line, minlength=n) > 0
    return (starts + has_words).astype(np.uint32)


def _counted_words(batch: TextBatch, lines: pl.DataFrame, counted: np.ndarray) -> tuple[np.ndarray, pl.Series]:
    """The words of the counted lines (with their citation marks removed), as (line, word) sorted by line. A
    line's words are those of its whitespace chunks, so they are taken from the batch's words (split once for
    every tagger) by chunk; only lines that lost a citation mark are split again."""
    chunks_before = np.cumsum(lines["words"].fill_null(0).to_numpy().astype(np.int64))
    words = batch.words
    word_line = np.searchsorted(chunks_before, words["chunk"].to_numpy(), side="right")
    cited = (lines["cited"] != lines["s"]).fill_null(False).to_numpy()
    reused = (counted & ~cited)[word_line]
    resplit = np.flatnonzero(counted & cited)
    again = split_words_bounded(lines["cited"].gather(resplit))
    line = np.concatenate([word_line[reused], resplit[again["doc"].to_numpy()]])
    order = np.argsort(line, kind="stable")  # each line's words stay in order
    w = pl.concat([words["w"].filter(pl.Series(reused)), again["w"]]).gather(order)
    return line[order], w


def _merged_spans(lines: pl.DataFrame, n: int) -> list[list]:
    """Spans per document of the given lines, consecutive lines merged into one span (fewer, larger spans)."""
    doc, start, end = (lines[c].to_numpy().astype(np.int64) for c in ("doc", "start", "end"))
    new_run = np.r_[True, (doc[1:] != doc[:-1]) | (start[1:] != end[:-1] + 1)] if len(doc) else np.empty(0, bool)
    first = np.flatnonzero(new_run)
    last = np.r_[first[1:] - 1, len(doc) - 1] if len(first) else first
    out: list[list] = [[] for _ in range(n)]
    for d, s, e in zip(doc[first].tolist(), start[first].tolist(), end[last].tolist()):
        out[d].append([s, e, 1.0])
    return out


@tagger
class C4(Tagger):
    name = "c4_v1"
    description = "C4 rules (Raffel et al. 2020): line filters as spans, lorem ipsum, curly bracket, sentence count"
    min_sentences: int = 5
    min_words_per_line: int = 3
    max_word_length: int = 1000

    def tag(self, batch: TextBatch) -> TagResult:
        n, texts = len(batch), batch.texts
        lines = _explode(texts, pl.col("t").str.split("\n"))
        starts = _within_doc_cumsum(lines["doc"].to_numpy(), (lines["p"].str.len_chars() + 1).to_numpy())
        lines = lines.with_columns(start=pl.Series(starts))
        # every column is materialised once (an eager polars expression used twice is computed twice)
        lines = lines.with_columns(s=pl.col("p").str.strip_chars()).with_columns(
            cited=pl.col("s").str.replace_all(r"\[\d*]|\[edit]|\[citation needed]", ""),
            words=pl.col("s").str.count_matches(r"\S+"),
        )
        lines = lines.with_columns(lower=pl.col("cited").str.to_lowercase())
        # the word-length check is a costly regex: run it only on lines long enough to fail it
        too_long = np.zeros(len(lines), bool)
        long_lines = (lines["p"].str.len_chars() > self.max_word_length).fill_null(False).to_numpy()
        if long_lines.any():
            too_long[long_lines] = lines.filter(long_lines)["p"].str.contains(rf"\S{{{self.max_word_length + 1}}}")
        lower = pl.col("lower")
        lines = lines.with_columns(
            survives=pl.lit(~too_long)
            & pl.col("cited").str.contains(r"[.?!\"']$")
            & ~pl.col("cited").str.ends_with("...")
            & (pl.col("words") >= self.min_words_per_line),
            has_lorem=lower.str.contains("lorem ipsum", literal=True),
            has_js=lower.str.contains("javascript", literal=True),
            has_curly=pl.col("cited").str.contains("{", literal=True),
            has_policy=lower.str.contains_any(C4_POLICY),
        )
        survives, has_js, has_policy = pl.col("survives"), pl.col("has_js"), pl.col("has_policy")
        lines = lines.with_columns(
            lorem=survives & pl.col("has_lorem"),
            # sentences are counted over the lines the line filters keep, whatever the
            # document-level rules say
            counted=survives & ~has_js & ~has_policy,
        )
        lines = lines.with_columns(
            curly=survives & ~pl.col("lorem") & ~has_js & pl.col("has_curly"),
            kept=pl.col("counted") & ~pl.col("has_lorem") & ~pl.col("has_curly"),
            end=pl.col("start") + pl.col("p").str.len_chars(),
        )
        counted = lines["counted"].fill_null(False).to_numpy()
        sentences = _sentences(*_counted_words(batch, lines, counted), len(lines))
        lines = lines.with_columns(sentences=pl.Series(sentences))
        per_doc = _per_doc(
            n,
            lines,
            lorem_ipsum=pl.col("lorem").any().cast(pl.Float64),
            curly_bracket=pl.col("curly").any().cast(pl.Float64),
            sentences=pl.col("sentences").sum(),
            removed_lines=(~pl.col("kept") & (pl.col("s") != "")).sum(),
        )
        result = _as_result(
            per_doc.drop("doc"),
            (pl.col("lorem_ipsum") == 0) & (pl.col("curly_bracket") == 0) & (pl.col("sentences") >= self.min_sentences),
        )
        result["removed_line"] = _merged_spans(lines.filter(~pl.col("kept") & (pl.col("s") != "")), n)
        return result


@tagger
class FineWeb(Tagger):
    name = "fineweb_v1"
    description = (
        "FineWeb rules (Penedo et al. 2024): terminal punctuation, short lines, duplicate line chars, list ratio"
    )
    line_punct_thr: float = 0.12
    short_line_thr: float = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float = 0.01
    new_line_ratio: float = 0.3

    def tag(self, batch: TextBatch) -> TagResult:
        n, texts = len(batch), batch.texts
        lines = _explode(texts, pl.col("t").str.split("\n")).filter(pl.col("p").str.strip_chars() != "")
        stats = _per_doc(
            n,
            lines,
            lines=pl.len(),
            punct=pl.col("p").str.contains(TERMINAL).sum(),
            short=(pl.col("p").str.len_chars() <= self.short_line_length).sum(),
        )
        dups = _duplicates(lines, n)
        words = pl.DataFrame(
            {
                "words": _per_doc(n, batch.words, c=pl.len())["c"],
                "newlines": texts.str.count_matches("\n"),
                "chars": texts.str.replace_all("\n", "", literal=True).str.len_chars(),
            }
        )
        v = pl.DataFrame(
            {
                "line_punct_ratio": _ratio(stats["punct"], stats["lines"]),
                "short_line_ratio": _ratio(stats["short"], stats["lines"]),
                "char_dup_ratio": _ratio(dups["dup_chars"], words["chars"]),
                "list_ratio": _ratio(words["newlines"], words["words"]),
                "lines": stats["lines"],
            }
        )
        passed = (
            (pl.col("lines") > 0)
            & (pl.col("line_punct_ratio") >= self.line_punct_thr)
            & (pl.col("short_line_ratio") <= self.short_line_thr)
            & (pl.col("char_dup_ratio") <= self.char_duplicates_ratio)
            & (pl.col("list_ratio") <= self.new_line_ratio)
        )
        return _as_result(v, passed)
