"""Reading order, running headers and footers, and text clean-up for PyMuPDF text blocks.

Pages are read as PyMuPDF blocks ``(x0, y0, x1, y1, text, ...)`` (PyMuPDF's ``blocks`` mode is as fast as plain
``get_text()`` and keeps each paragraph's box). Choices, on purpose:

- **Columns are detected, not guessed from sort order.** A page is two-column when a vertical gutter in its
  middle half is crossed by little text while text stands on both sides of it at the same heights. Blocks that
  cross the gutter (titles, abstracts, full-width figures) cut the page into sections; each section is read
  left column first, then right. Other pages are read top to bottom, left to right.
- **Running headers, footers and page numbers** are the blocks at the top or bottom edge of a page whose text,
  with digits removed, recurs at an edge of other pages (or is only a page number), and the one-line blocks in
  the top band of a later page made mostly of the title's words (a header printed once, on the second page of
  a two-page paper). Slanted text (a diagonal "DRAFT", a rotated label) is read after the rest of its page.
- **Line breaks inside a paragraph become spaces** when the block is prose (most of its lines are full) and the
  line is full; short lines and blocks that are not prose keep their breaks, so code listings, lists, tables
  and verse keep their shape. A word hyphenated over a line end is rejoined (PyMuPDF's
  dehyphenation); a paragraph cut by a column or page break is joined back when it continues in lower case.
- **Tables and figure captions** stay as the text of their blocks in reading order (a caption is a paragraph of
  its own; a table is its cells row by row as PyMuPDF groups them); no Markdown tables are made, since table
  detection is slow and wrong often enough to garble more text than it saves. Images are skipped.
- **Unicode** is NFKC-normalised (ligatures such as "ﬁ" become "fi", full-width letters and digits become
  ASCII) except full-width punctuation and the ideographic space, which stay as the script writes them ("，"
  is not ","); control characters other than newline are removed. A line break inside Chinese or Japanese
  prose is joined without a space.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

import numpy as np

EDGE = 0.09  # top and bottom share of the page height where running headers and footers sit
PAGE_NUMBER = re.compile(r"^\s*(?:page\s*)?(?:\d+|[ivxlcdm]+)(?:\s*(?:/|of)\s*\d+)?\s*$", re.I)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
DIGITS = re.compile(r"\d+")
WORD = re.compile(r"\w{2,}")
# Han, kana, CJK punctuation and full-width forms: scripts written without spaces (Hangul has them: not here)
WIDE = re.compile(r"[\u2e80-\u2fff\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef]")
WIDE_PUNCTUATION = re.compile(r"[\u3000\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65]+")
HYPHENS = "-\u00ad\u2010"
LEADER = re.compile(r"[\s.·…‥∙•_]+")  # a line of dot leaders (a table of contents), or of dots alone
SYMBOLS_ONLY = re.compile(r"[^\w]*|_+")  # a line without a letter or a digit
JUNK_GARBLED = 0.25  # share of unmapped code points (pages of real math with a few broken glyphs reach 0.14)
JUNK_SYMBOL_LINES = 0.7  # share of lines without a letter or digit (symbol tables of a manual reach 0.5)
JUNK_MIN_LINES = 20
JUNK_OCR_CONFIDENCE = 50.0  # mean word confidence: upright scans measured 86-96, upside-down text 29-30


@dataclass
class Block:
    x0: float
    y0: float
    x1: float
    y1: float
    text: str


def blocks_of(raw: list[tuple]) -> list[Block]:
    """PyMuPDF ``get_text("blocks")`` rows to text blocks (image rows and blank blocks dropped)."""
    return [Block(b[0], b[1], b[2], b[3], b[4]) for b in raw if b[6] == 0 and b[4].strip()]


def slanted(blocks: list[Block]) -> list[bool]:
    """Which blocks are not set in horizontal lines: a diagonal or vertical line ("DRAFT" across the page, a
    rotated margin note) has a box far taller than its lines, about as tall as wide or taller (a display
    formula or a heading in a large font is tall for its lines too, but wider than tall). Such a block would
    weigh as a column's worth of text crossing every gutter, and cut both columns into sections where it
    stands."""
    height = np.array([b.y1 - b.y0 for b in blocks])
    per_line = height / np.array([max(1, b.text.strip().count("\n") + 1) for b in blocks])
    typical = float(np.median(per_line)) if len(per_line) else 0.0
    wide = np.array([b.x1 - b.x0 for b in blocks])
    return ((per_line > 3 * typical + 1) & (height > 0.8 * wide)).tolist()


def find_gutter(blocks: list[Block], width: float) -> float | None:
    """The x of a two-column page's gutter (the middle of the stretch crossed by the least text), or None when
    the page is not two-column."""
    left_only = sum(b.x1 < 0.6 * width for b in blocks)
    right_only = sum(b.x0 > 0.4 * width for b in blocks)
    if left_only < 2 or right_only < 2:  # no text confined to either half: not two columns
        return None
    x0 = np.array([b.x0 for b in blocks])
    x1 = np.array([b.x1 for b in blocks])
    y0 = np.array([b.y0 for b in blocks])
    y1 = np.array([b.y1 for b in blocks])
    height = y1 - y0
    xs = np.linspace(0.3 * width, 0.7 * width, 81)
    crossing = (x0[None, :] < xs[:, None] - 2) & (x1[None, :] > xs[:, None] + 2)
    crossed = (crossing * height).sum(axis=1)
    best = np.flatnonzero(crossed == crossed.min())
    x = float(xs[best[len(best) // 2]])  # the middle of the least-crossed stretch
    left = x1 <= x + 2
    right = x0 >= x - 2
    total = height.sum()
    if height[left].sum() < 0.15 * total or height[right].sum() < 0.15 * total:
        return None
    # side by side: the heights covered by left-column text and by right-column text must overlap
    grid = np.linspace(y0.min(), y1.max(), 200)
    cover_left = ((y0[left][None, :] <= grid[:, None]) & (y1[left][None, :] >= grid[:, None])).any(axis=1)
    cover_right = ((y0[right][None, :] <= grid[:, None]) & (y1[right][None, :] >= grid[:, None])).any(axis=1)
    both = (cover_left & cover_right).sum()
    if both < 0.25 * min(cover_left.sum(), cover_right.sum()) or both < 10:
        return None
    return x


def reading_order(blocks: list[Block], width: float) -> list[Block]:
    """Top to bottom, or column by column between full-width blocks; slanted blocks come last."""
    aside = slanted(blocks)
    last = [b for b, a in zip(blocks, aside) if a]
    blocks = [b for b, a in zip(blocks, aside) if not a]
    gutter = find_gutter(blocks, width)
    by_position = sorted(blocks, key=lambda b: (round(b.y0 / 3), b.x0))
    if gutter is None:
        return by_position + last
    ordered: list[Block] = []
    left: list[Block] = []
    right: list[Block] = []
    margin = 0.08 * width
    for b in by_position:
        if b.x0 < gutter - margin and b.x1 > gutter + margin:  # spans both columns: closes a section
            ordered += left + right + [b]
            left, right = [], []
        elif (b.x0 + b.x1) / 2 < gutter:
            left.append(b)
        else:
            right.append(b)
    return ordered + left + right + last


def _edge_key(text: str) -> str:
    return " ".join(DIGITS.sub("", text).lower().split())


def _title_words(blocks: list[Block]) -> set[str]:
    """The words of the first page's three topmost blocks: the title and author lines a header repeats."""
    return {w for b in sorted(blocks, key=lambda b: b.y0)[:3] for w in WORD.findall(_edge_key(b.text))}


def _title_header(block: Block, height: float, title: set[str]) -> bool:
    """A one-line block in the top band of a later page made mostly of the title's words: a running header
    even where it is printed once (the second page of a two-page paper)."""
    if block.y1 > EDGE * height or "\n" in block.text.strip():
        return False
    words = set(WORD.findall(_edge_key(block.text)))
    shared = len(words & title)
    return shared >= 2 and shared >= 0.5 * len(words)


def remove_running_lines(pages: list[list[Block]], heights: list[float]) -> tuple[list[list[Block]], int]:
    """Drop page numbers, edge blocks (in the top or bottom margin band, or a page's first or last block)
    whose digit-free text recurs at an edge of other pages, and one-line headers of later pages that repeat
    the title (see ``_title_header``)."""
    title = _title_words(pages[0]) if pages else set()
    edges: list[list[tuple[int, str]]] = []
    for blocks, h in zip(pages, heights):
        top = min(range(len(blocks)), key=lambda i: blocks[i].y0, default=None)
        bottom = max(range(len(blocks)), key=lambda i: blocks[i].y1, default=None)
        edges.append(
            [
                (i, _edge_key(b.text))
                for i, b in enumerate(blocks)
                if b.y1 <= EDGE * h or b.y0 >= (1 - EDGE) * h or i in (top, bottom)
            ]
        )
    counts = Counter(key for edge in edges for key in {k for _, k in edge} if key)
    needed = 2 if len(pages) <= 4 else 3
    removed = 0
    kept_pages = []
    for n, (blocks, edge, h) in enumerate(zip(pages, edges, heights)):
        drop = {i for i, key in edge if counts[key] >= needed or PAGE_NUMBER.match(blocks[i].text)}
        drop |= {i for i, _ in edge if n and _title_header(blocks[i], h, title)}
        removed += len(drop)
        kept_pages.append([b for i, b in enumerate(blocks) if i not in drop])
    return kept_pages, removed


def paragraph_text(block: Block) -> str:
    """A block's lines joined: in prose (most lines full), a full line by a space; short lines, and every line
    of a block that is not prose (code, lists, tables), keep their line break. Lines of dot leaders alone (a
    table of contents set line by line: ``.`` after ``.``) are left out."""
    text = block.text.strip()
    if LEADER.fullmatch(text):
        return ""
    if "\n" not in text:
        return text
    lines = [line for line in map(str.strip, text.split("\n")) if line and not LEADER.fullmatch(line)]
    if not lines:
        return ""
    full = 0.7 * max(len(line) for line in lines)
    prose = sum(len(line) >= full for line in lines[:-1]) >= 0.6 * (len(lines) - 1)
    out = [lines[0]]
    for prev, line in zip(lines, lines[1:]):
        if prev[-1] in HYPHENS and prev[-2:-1].isalpha() and line[:1].islower():
            out[-1] = out[-1][:-1]  # a word hyphenated over the line end
        elif prose and len(prev) >= full:
            out.append("" if WIDE.match(prev[-1]) and WIDE.match(line[0]) else " ")  # no space inside CJK text
        else:
            out.append("\n")
        out.append(line)
    return "".join(out)


def join_paragraphs(paragraphs: list[str]) -> tuple[str, list[int]]:
    """Paragraphs separated by a blank line, and where each one starts in the result. A paragraph cut by a
    column or page break (the next one goes on in lower case after no closing punctuation) is joined back."""
    out: list[str] = []
    starts: list[int] = []
    length = 0  # of "\n\n".join(out)
    for p in paragraphs:
        if out and p[:1].islower() and out[-1][-1:] not in ".:;!?":
            hyphen = out[-1].endswith("-") and not out[-1].endswith(" -")
            joined = out[-1][:-1] + p if hyphen else out[-1] + " " + p
            starts.append(length - len(out[-1]) + len(joined) - len(p))
            length += len(joined) - len(out[-1])
            out[-1] = joined
        else:
            length += 2 if out else 0
            starts.append(length)
            out.append(p)
            length += len(p)
    return "\n\n".join(out), starts


def clean(text: str) -> str:
    """NFKC (ligatures, full-width letters and digits to ASCII) except the full-width punctuation and the
    ideographic space of Chinese and Japanese text, which NFKC would turn into ASCII; control characters go."""
    if not WIDE_PUNCTUATION.search(text):
        return CONTROL.sub("", unicodedata.normalize("NFKC", text))
    out, at = [], 0
    for m in WIDE_PUNCTUATION.finditer(text):
        out += [unicodedata.normalize("NFKC", text[at : m.start()]), m.group()]
        at = m.end()
    out.append(unicodedata.normalize("NFKC", text[at:]))
    return CONTROL.sub("", "".join(out))


def page_signals(text: str) -> tuple[float, float, float]:
    """(garbled share, letter share, mean line length) of a page's text before clean-up, over code points.

    Garbled: U+FFFD, private-use code points and control characters, what a font without a usable Unicode map
    turns into. Letters: ASCII letters and every code point from U+00C0 up outside punctuation, symbols and
    private use (so CJK, Cyrillic and Greek count); the share is of the non-space characters."""
    if not text:
        return 0.0, 0.0, 0.0
    cp = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    garbled = (cp == 0xFFFD) | ((cp >= 0xE000) & (cp <= 0xF8FF)) | ((cp < 32) & (cp != 10) & (cp != 9))
    garbled |= (cp >= 0x7F) & (cp <= 0x9F)
    space = (cp == 32) | (cp == 10) | (cp == 9) | (cp == 13)
    ascii_letter = ((cp | 32) >= ord("a")) & ((cp | 32) <= ord("z")) & (cp < 128)
    other_letter = (cp >= 0xC0) & ~((cp >= 0x2000) & (cp <= 0x2BFF)) & ~garbled & (cp != 0xD7) & (cp != 0xF7)
    letters = int((ascii_letter | other_letter).sum())
    lines = int((cp == 10).sum()) + 1
    return float(garbled.mean()), letters / max(1, len(cp) - int(space.sum())), (len(cp) - lines + 1) / lines


def symbol_line_share(text: str) -> tuple[float, int]:
    """(share of the text's non-empty lines that hold no letter or digit, number of non-empty lines)."""
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        return 0.0, 0
    return sum(SYMBOLS_ONLY.fullmatch(line.strip()) is not None for line in lines) / len(lines), len(lines)


def is_junk(garbled: float, symbol_lines: float, lines: int, ocr_confidence: float = -1.0) -> str:
    """Why a page's text would add noise, or "": ``garbled`` when it is mostly unmapped glyphs (a Type3 or
    symbol font without a Unicode map comes out as U+FFFD: nothing of it can be read, the page is left out),
    ``low_confidence`` when it was OCR'd and Tesseract is unsure of its words on the whole (an upside-down or
    noisy scan read as words: left out), ``symbols`` when most of its lines hold no letter or digit once
    leaders are gone (a picture-mode drawing made of characters, the OCR of a blank scan: those lines are left
    out, the others kept)."""
    if garbled >= JUNK_GARBLED:
        return "garbled"
    if 0 <= ocr_confidence < JUNK_OCR_CONFIDENCE:
        return "low_confidence"
    return "symbols" if lines >= JUNK_MIN_LINES and symbol_lines >= JUNK_SYMBOL_LINES else ""


def without_symbol_lines(paragraphs: list[str]) -> list[str]:
    """The paragraphs with their lines that hold no letter or digit left out (empty paragraphs dropped)."""
    out = []
    for p in paragraphs:
        kept = "\n".join(line for line in p.split("\n") if not SYMBOLS_ONLY.fullmatch(line.strip()))
        if kept.strip():
            out.append(kept.strip())
    return out
