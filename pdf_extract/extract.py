"""One PDF to text with PyMuPDF: per-page text layer or OCR, reading order, running lines removed.

A junk page is marked in its page facts and cleaned (see ``layout.is_junk``): one of mostly unmapped glyphs
is left out, one of mostly lines without a letter or digit loses those lines, so a drawing made of characters
or the OCR of noise does not become a long document.

This runs inside an isolated worker process (see ``pdf_extract.worker``): PyMuPDF is not thread-safe, and a
hostile PDF can hang MuPDF or exhaust memory, which only a separate process can survive.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from functools import lru_cache
from typing import NamedTuple

import pymupdf

from pdf_extract import layout
from pdf_extract.answer import OUT_OF_MEMORY, Extracted, Options, Page
from pdf_extract.ocr import ocr_page

__all__ = ["Extracted", "Options", "Page", "PageRead", "extract", "tessdata"]

# expand ligatures (no TEXT_PRESERVE_LIGATURES), collapse odd whitespace, and ignore text outside the page
TEXT_FLAGS = pymupdf.TEXT_MEDIABOX_CLIP


class PageRead(NamedTuple):
    """One page as read: its blocks, how ("text", "ocr", "empty", "error"), the raw text for signals."""

    blocks: list[layout.Block]
    method: str
    raw_text: str
    ocr_confidence: float = -1.0
    rotation: int = 0


@lru_cache(maxsize=1)
def tessdata() -> str | None:
    """Tesseract's language-data folder: ``TESSDATA_PREFIX``, else asked of the installed ``tesseract``."""
    if os.environ.get("TESSDATA_PREFIX"):
        return os.environ["TESSDATA_PREFIX"]
    if not shutil.which("tesseract"):
        return None
    out = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True).stdout
    head = out.splitlines()[0] if out else ""
    return head.split('"')[1] if '"' in head else None


def extract(data: bytes, options: Options) -> Extracted:
    start = time.perf_counter()
    if b"%PDF-" not in data[:1024]:  # MuPDF would "repair" an HTML error page into a PDF of one page
        return Extracted(reason="unreadable", error="not a PDF: no %PDF- header in the first 1024 bytes")
    try:
        doc = pymupdf.open(stream=data, filetype="pdf")
    except Exception as e:  # MuPDF raises FileDataError, RuntimeError, ValueError for unreadable files
        return Extracted(reason="unreadable", error=f"{type(e).__name__}: {e}")
    with doc:
        if doc.needs_pass and not (options.password and doc.authenticate(options.password)):
            return Extracted(reason="encrypted", error="the PDF needs a password to open")
        if doc.page_count == 0:
            return Extracted(reason="no_pages", error="the PDF has no pages")
        pages, heights, facts, errors = [], [], [], []
        for page in doc:
            try:
                read = _read_page(page, options)
            except Exception as e:  # one broken page (an overly large image, a failed OCR) loses only itself
                if isinstance(e, MemoryError) or OUT_OF_MEMORY.search(str(e)):
                    raise
                errors.append(f"page {page.number + 1}: {type(e).__name__}: {e}")
                read = PageRead([], "error", "")
            pages.append(layout.reading_order(read.blocks, page.rect.width))  # rect is upright once turned
            heights.append(page.rect.height)
            facts.append(read)
        title = (doc.metadata or {}).get("title") or ""
    if len(errors) == len(pages):
        return Extracted(reason="error", error="; ".join(errors[:3]))
    pages, removed = layout.remove_running_lines(pages, heights)
    paragraphs: list[str] = []
    first_paragraph: list[int] = []
    page_facts: list[Page] = []
    for blocks, read in zip(pages, facts):
        first_paragraph.append(len(paragraphs))
        page = [p for p in (layout.clean(layout.paragraph_text(b)).strip() for b in blocks) if p]
        garbled, alpha, mean_line = layout.page_signals(read.raw_text)
        symbols, lines = layout.symbol_line_share("\n".join(page))
        junk = layout.is_junk(garbled, symbols, lines, read.ocr_confidence)
        page = layout.without_symbol_lines(page) if junk == "symbols" else [] if junk else page
        paragraphs += page
        chars = sum(len(p) for p in page)
        signals = (round(garbled, 4), round(alpha, 4), round(mean_line, 1), round(symbols, 4), bool(junk))
        page_facts.append(Page(read.method, chars, *signals, read.ocr_confidence, read.rotation))
    text, starts = layout.join_paragraphs(paragraphs)
    starts.append(len(text))
    offsets = [starts[i] for i in first_paragraph]
    return Extracted(
        text=text,
        pages=page_facts,
        page_offsets=offsets,
        running_lines_removed=removed,
        title=layout.clean(title).strip(),
        seconds=round(time.perf_counter() - start, 4),
    )


def _read_page(page: pymupdf.Page, options: Options) -> PageRead:
    """The page's text layer; OCR (see :mod:`pdf_extract.ocr`) when it has too little text and an image."""
    blocks = layout.blocks_of(page.get_text("blocks", flags=TEXT_FLAGS))
    raw_text = "\n".join(b.text for b in blocks)
    if len(raw_text.strip()) >= options.min_page_chars or not options.ocr or not page.get_images():
        return PageRead(blocks, "text" if blocks else "empty", raw_text)
    folder = tessdata()
    if folder is None:
        raise RuntimeError("OCR needs Tesseract: install tesseract-ocr (and a language pack) or set ocr: false")
    read = ocr_page(page, options.ocr_language, options.ocr_dpi, folder)
    text = "\n".join(b.text for b in read.blocks)
    return PageRead(read.blocks, "ocr" if read.blocks else "empty", text, read.confidence, read.rotation)
