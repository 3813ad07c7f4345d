"""Word splitting that follows spaCy's English tokenizer rules, vectorised with polars.

datatrove's Gopher and FineWeb rules count words as spaCy's blank English tokenizer splits them; spaCy itself
runs at a few hundred documents per second, which would cap every heuristic tagger. We apply the same kinds of
rules as regular expressions over all whitespace-separated chunks of a batch at once:

1. leading punctuation, quotes, brackets and currency signs come off one character at a time (ellipses whole);
2. trailing ones likewise, plus ``'s``, a final period after a lower-case letter, digit or two capitals, and
   the contractions ``n't 're 'll 've 'd 'm`` (and ``cannot``);
3. inside what is left, hyphens, slashes, ``: < > =`` and commas between letters, ``+ - * ^`` between digits,
   a period between a lower- and an upper-case letter, and ellipses split the chunk;
4. URLs stay whole.

spaCy's ~1,300 special-case exceptions (``e.g.``, emoticons, ``gonna``) are not copied; see taggers/README.md.
"""

from __future__ import annotations

import numpy as np
import polars as pl

_PUNCT = r"""…,:;!?¿؟¡()\[\]{}<>_#*&。？！，、；：～·।،۔؛٪'"”“`‘´’‚„»«「」『』（）〔〕【】《》〈〉⟦⟧"""
_CURRENCY = r"$£€¥฿₽﷼₴₠-₿"
PREFIX = rf"(?:\.\.+|[§%=—–+{_PUNCT}{_CURRENCY}\p{{So}}])"
SUFFIX = rf"(?:\.\.+|['’][sS]|\):|:\)|;\)|:\(|[—–.{_PUNCT}\p{{So}}])"
SUFFIX_TOKEN = r"\.\.+|['’][sS]|\):|:\)|;\)|:\(|."
# chunks that keep their final period: initials and dotted abbreviations ("e.g.", "U.K.", "p."), and a few words
ABBREVIATION = (
    r"^(?:(?:\p{L}\.)+|Inc\.|Ltd\.|Co\.|Corp\.|Dr\.|Mr\.|Mrs\.|Ms\.|Jr\.|Sr\.|St\.|Mt\.|vs\.|"
    r"Gov\.|Gen\.|Rev\.|Jan\.|Feb\.|Mar\.|Apr\.|Jun\.|Jul\.|Aug\.|Sep\.|Sept\.|Oct\.|Nov\.|Dec\.|Mass\.|Calif\.|Conn\.|Ill\.|Fla\.|Ga\.|Ariz\.|Colo\.)[^.\p{L}\p{N}]*$"
)
# contractions written without an apostrophe, split where the apostrophe would be
BARE_CONTRACTION = (
    r"^([Dd]o|[Dd]oes|[Dd]id|[Ii]s|[Aa]re|[Ww]as|[Ww]ere|[Hh]as|[Hh]ave|[Hh]ad|[Cc]ould|[Ss]hould|[Ww]ould|"
    r"[Cc]a|[Ww]o|[Aa]i|[Nn]eed)(nt)$|^([iI])(d|m|ve)$|^([Yy]ou|[Tt]hey)(re)$|^([Ww]hat|[Hh]e|[Ss]he)(s)$"
)
UNIT = r"[0-9]((?:[kcm]?m|km|[kmµ]?g|lb|oz|ft|in|[KMGT]B|[kmgt]b|[KMGT]|%|[$£€¥])[²³]?)$"
CONTRACTION = r"(?i:n['’]t|['’](?:re|ll|ve|d|m))"
CANNOT = r"^(?i:cannot)$"  # a regex, not a lower-cased copy of every chunk
URL = (
    r"^(?:[\w+\-.]{2,}://|www\.|[^@\s]+@[^@\s]+\.\p{L}{2,})|^(?i:and/or)$"
    r"|^(?:[\p{L}\p{N}][\p{L}\p{N}_\-]{0,62}\.)+\p{Ll}{2,63}\.?(?::\d{2,5})?(?:[/?#]\S*)?$"
)  # host names
INFIXES = [
    (r"(\.\.+|…)", " $1 "),
    (r"([0-9])([+\-*^])([0-9\-])", "$1 $2 $3"),
    (r"(\p{Ll})\.(\p{Lu})", "$1 . $2"),
    (r"(\p{L}),(\p{L})", "$1 , $2"),
    (r"([\p{L}0-9])(---|--|——|-|–|—|~)(\p{L})", "$1 $2 $3"),
    (r"([\p{L}0-9])([:<>=/])(\p{L})", "$1 $2 $3"),
]


PIECE = 1_000_000  # characters: a longer text is split into words a piece at a time, its memory bounded
GROUP = 2 * PIECE  # characters split together: the splitter's columns take ~40 bytes per character at the peak


def split_words_bounded(texts: pl.Series) -> pl.DataFrame:
    """:func:`split_words_long`, with texts over ``PIECE`` characters cut into pieces at whitespace and the
    pieces split ``GROUP`` characters at a time: words never span whitespace, so the words are the same, and the
    intermediate columns of one giant document (or a batch of large ones) no longer grow with it. The texts stay
    in polars (a Python copy of a giant text takes up to four bytes a character)."""
    lengths = texts.str.len_chars().fill_null(0).to_numpy()
    if lengths.sum() <= GROUP:
        return split_words_long(texts)
    owners, starts, sizes = _segments(texts, lengths)
    frames, first, size, chunks = [], 0, 0, 0
    for k in range(len(owners)):
        size += sizes[k]
        if size >= GROUP or k == len(owners) - 1:
            rows = slice(first, k + 1)
            pieces = texts.gather(owners[rows]).str.slice(pl.Series(starts[rows]), pl.Series(sizes[rows]))
            words, n_chunks = _split(pieces)
            docs = pl.Series(owners[rows], dtype=pl.UInt32)
            frames.append(words.with_columns(doc=docs.gather(words["doc"]), chunk=pl.col("chunk") + chunks))
            chunks += n_chunks
            first, size = k + 1, 0
    return pl.concat(frames, rechunk=False)


def _segments(texts: pl.Series, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(text, start, length) of every piece, in order: a text of up to ``PIECE`` characters is one piece
    (taken as a whole, no Python per text); a longer one is cut at the first whitespace after every ``PIECE``
    characters (:func:`_cuts`)."""
    whole = np.flatnonzero((lengths > 0) & (lengths <= PIECE))
    owners, starts = [whole], [np.zeros(len(whole), np.int64)]
    sizes = [lengths[whole].astype(np.int64)]
    for i in np.flatnonzero(lengths > PIECE).tolist():
        cuts = np.array(_cuts(texts.slice(i, 1), int(lengths[i])), np.int64)
        owners.append(np.full(len(cuts) - 1, i))
        starts.append(cuts[:-1])
        sizes.append(np.diff(cuts))
    owner, start, size = (np.concatenate(x).astype(np.int64) for x in (owners, starts, sizes))
    order = np.lexsort((start, owner))  # text order: by text, then by position in it
    return owner[order], start[order], size[order]


def _cuts(one: pl.Series, n: int) -> list[int]:
    """Where a text of ``n`` characters is cut: 0, the first whitespace after every ``PIECE`` characters
    (found in a small window of the text at a time, widened while it is all word), and ``n``."""
    cuts = [0]
    while n - cuts[-1] > PIECE:
        at, window = cuts[-1] + PIECE, 4096
        while True:
            run = one.str.slice(at, window).str.extract(r"^(\S*)", 1).str.len_chars().item()
            if run < window or at + run >= n:
                break
            window *= 16
        if at + run >= n:
            break
        cuts.append(at + run)
    return [*cuts, n]


def split_words_long(texts: pl.Series) -> pl.DataFrame:
    """Words of every text as a long frame ``(doc, chunk, w)``, in order; ``chunk`` numbers the
    whitespace-separated chunks of the batch in order, so the words of any whitespace-bounded span (a line) can
    be found without splitting it again."""
    return _split(texts)[0]


def _split(texts: pl.Series) -> tuple[pl.DataFrame, int]:
    """The words of :func:`split_words_long` and the number of chunks they came from. Plain words (letters
    only, or digits only) take no further work; only chunks with punctuation, digits next to letters or a
    contraction shape go through the affix and infix rules, each step materialising its columns once."""
    c, prefix, suffix = pl.col("c"), pl.col("prefix"), pl.col("suffix")
    chunks = (
        pl.DataFrame({"t": texts})
        .with_row_index("doc")
        .select("doc", c=pl.col("t").str.extract_all(r"\S+"))
        .explode("c")
        .drop_nulls("c")
        .with_row_index("chunk")
    )
    plain = c.str.contains(r"^(?:\p{L}+|[0-9]+)$") & ~c.str.contains(rf"{BARE_CONTRACTION}|{CANNOT}")
    chunks = chunks.with_columns(plain=plain)
    simple = chunks.filter("plain").select("chunk", "doc", w="c")
    df = _split_infixes(_peel_affixes(chunks.filter(~pl.col("plain"))))
    # every piece, space-separated, then one split on spaces (tokens never contain spaces)
    spaced = pl.concat_str(
        [
            prefix.str.replace_all(r"\.\.+|.", "$0 "),
            pl.col("split"),
            pl.col("contraction"),
            pl.col("unit"),
            suffix.str.replace_all(SUFFIX_TOKEN, " $0"),
        ],
        separator=" ",
    )
    # a chunk holds no whitespace, so the pieces are the non-empty fields between the spaces put in above
    complex_ = df.select("chunk", "doc", w=spaced.str.split(" ")).explode("w").filter(pl.col("w") != "")
    # a stable sort by chunk restores text order (the words of one chunk are already in order)
    words = pl.concat([simple, complex_]).sort("chunk", maintain_order=True).select("doc", "chunk", "w")
    return words, chunks.height


def _peel_affixes(chunks: pl.DataFrame) -> pl.DataFrame:
    """Prefix and suffix punctuation, units, contractions and "cannot" peeled off each chunk's core."""
    c, prefix, rest, suffix, core = (pl.col(n) for n in ("c", "prefix", "rest", "suffix", "core"))
    length = pl.col("core").str.len_chars()
    df = (
        chunks.with_columns(prefix=c.str.extract(rf"^({PREFIX}*)", 1))
        .with_columns(rest=c.str.slice(prefix.str.len_chars()))
        .with_columns(suffix=rest.str.extract(rf"({SUFFIX}*)$", 1), abbreviation=rest.str.contains(ABBREVIATION))
        .with_columns(core=rest.str.slice(0, rest.str.len_chars() - suffix.str.len_chars()))
    )
    # a period leading the suffix splits off only after a lower-case letter, digit, %, - + …, or two capitals
    keep_period = (
        suffix.str.starts_with(".")
        & ~suffix.str.starts_with("..")
        & (length > 0)
        & (pl.col("abbreviation") | ~core.str.contains(r"(?:[\p{Ll}0-9%²\-+…]|\p{Lu}\p{Lu})$"))
    )
    df = (
        df.with_columns(keep=keep_period)
        .with_columns(
            core=pl.when("keep").then(core + ".").otherwise(core),
            suffix=pl.when("keep").then(suffix.str.slice(1)).otherwise(suffix),
        )
        .with_columns(unit=core.str.extract(UNIT, 1).fill_null(""))  # "100%", "5$", "4cm" split after digits
        .with_columns(core=core.str.slice(0, length - pl.col("unit").str.len_chars()))
        .with_columns(contraction=core.str.extract(rf"\p{{L}}({CONTRACTION})$", 1).fill_null(""))
        .with_columns(core=core.str.slice(0, length - pl.col("contraction").str.len_chars()))
        .with_columns(
            core=pl.when(core.str.contains(CANNOT))
            .then(core.str.slice(0, 3) + " " + core.str.slice(3))
            .otherwise(core.str.replace(BARE_CONTRACTION, "$1$3$5$7 $2$4$6$8"))
        )
        .with_columns(infix=core.str.contains(r"[.…,:<>=/~+*^\-–—]"))
    )
    return df


def _split_infixes(df: pl.DataFrame) -> pl.DataFrame:
    """Each core split at its infixes (``split``), URLs left whole."""
    core = pl.col("core")
    split = core
    for pattern, replacement in INFIXES:
        for _ in range(2):  # twice, so overlapping matches such as a-b-c both split
            split = split.str.replace_all(pattern, replacement)
    candidates = df.filter("infix").with_columns(url=core.str.contains(URL))
    df = pl.concat(
        [
            candidates.filter(~pl.col("url")).with_columns(split=split).drop("url"),
            candidates.filter("url").with_columns(split=core).drop("url"),
            df.filter(~pl.col("infix")).with_columns(split=core),
        ]
    )
    return df
