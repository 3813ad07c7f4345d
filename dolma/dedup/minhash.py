"""MinHash signatures of word n-grams, vectorised in numpy, and the LSH S-curve they give.

Text is normalised (lower case, digits to 0, punctuation and symbols as separators); a document's shingles are
the 64-bit hashes of its word n-grams (a text shorter than n words is one shingle).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from dolma.dedup.params import DedupParams


def s_curve(bands: int, rows: int, points: int = 11) -> list[tuple[float, float]]:
    """Probability that two documents of Jaccard similarity s share at least one band: 1 - (1 - s^r)^b."""
    return [(s, 1 - (1 - s**rows) ** bands) for s in np.linspace(0, 1, points).round(2).tolist()]


def normalise(texts: pl.Series) -> pl.Series:
    return (
        texts.str.to_lowercase()
        .str.replace_all(r"[\p{P}\p{S}]", " ")
        .str.replace_all(r"\d", "0")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )


WORD = r"[^\p{P}\p{S}\s]+"


def shingle_hashes(texts: pl.Series, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(document index, 64-bit hash) of every word n-gram of every text (a text shorter than n words is one
    shingle). Hashes combine word hashes polynomially, in numpy, with wrap-around."""
    # the words of normalise(text), found in one pass: runs of what is neither punctuation, symbol nor space
    words = (
        pl.DataFrame({"w": texts.str.to_lowercase().str.replace_all(r"\d", "0").str.extract_all(WORD)})
        .with_row_index("doc")
        .explode("w")
        .filter(pl.col("w").is_not_null())
    )
    doc = words["doc"].to_numpy().astype(np.int64)
    h = words["w"].hash(seed=7).to_numpy()
    if not len(doc):
        return doc, h
    counts = np.bincount(doc, minlength=len(texts))
    length = counts[doc]
    pos = np.arange(len(doc)) - (np.cumsum(counts) - counts)[doc]  # the word's place in its text
    # a full n-gram starts at pos; a text shorter than n words has one shingle, at its first word
    start = np.flatnonzero((pos + n <= length) | ((length < n) & (pos == 0)))
    key = h[start]
    padded = np.r_[h, np.zeros(n, np.uint64)]
    with np.errstate(over="ignore"):
        for j in range(1, n):
            following = np.where(pos[start] + j < length[start], padded[start + j], np.uint64(0))
            key = key * np.uint64(0x100000001B3) + following
    return doc[start], key


def minhash(
    doc: np.ndarray, shingles: np.ndarray, n_docs: int, n_perm: int, seed: int, chunk: int = 2048
) -> np.ndarray:
    """MinHash signatures (n_docs × n_perm, uint32): h_i(x) = a_i·x + b_i mod 2^32 (a_i odd, so each h_i is a
    permutation of 32-bit values) over the shingle hashes folded to 32 bits.

    Shingles go through in small chunks with a reused buffer (cache-sized, no temporaries), so memory stays at
    chunk × n_perm; documents without shingles keep the maximum in every slot."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**32, n_perm, dtype=np.uint64).astype(np.uint32) | np.uint32(1)
    b = rng.integers(0, 2**32, n_perm, dtype=np.uint64).astype(np.uint32)
    x32 = (shingles ^ (shingles >> np.uint64(32))).astype(np.uint32)
    sig = np.full((n_docs, n_perm), np.iinfo(np.uint32).max, np.uint32)
    buf = np.empty((chunk, n_perm), np.uint32)
    for start in range(0, len(x32), chunk):
        x = x32[start : start + chunk]
        hashed = buf[: len(x)]
        np.multiply(x[:, None], a[None, :], out=hashed)
        np.add(hashed, b[None, :], out=hashed)
        d = doc[start : start + chunk]
        bounds = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])
        np.minimum.at(sig, d[bounds], np.minimum.reduceat(hashed, bounds, axis=0))
    return sig


def describe(params: DedupParams) -> str:
    if params.method == "exact":
        return "exact: documents with the same normalised text (xxh3 hash)"
    threshold = (1 / params.bands) ** (1 / params.rows)
    lines = [
        f"MinHash LSH: {params.ngram}-grams, {params.bands} bands × {params.rows} rows "
        f"({params.bands * params.rows} hashes), S-curve midpoint ≈ {threshold:.2f}"
        + (f", candidates verified at Jaccard ≥ {params.jaccard_threshold}" if params.jaccard_threshold else "")
        + (f", a removed document ≥ {params.keeper_jaccard} like its keeper" if params.keeper_jaccard else "")
    ]
    lines.append("  similarity  P(candidate)")
    lines += [
        f"  {s:10.2f}  {prob:12.3f}  {'#' * int(round(prob * 40))}" for s, prob in s_curve(params.bands, params.rows)
    ]
    return "\n".join(lines)
