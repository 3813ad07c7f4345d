"""What a PDF worker answers (text, per-page facts, or a reason) and the options it reads with.

Kept apart from :mod:`pdf_extract.extract` so the parent process (the stage, the CLI) never imports PyMuPDF:
only the worker process reads PDFs.
"""

from __future__ import annotations

import re

import msgspec

OUT_OF_MEMORY = re.compile(r"\b[mc]?alloc\b.*failed|out of memory", re.I)  # how MuPDF words it


class Page(msgspec.Struct, array_like=True):
    method: str  # "text", "ocr", "empty" or "error" (the page could not be read; the others still are)
    chars: int
    garbled: float
    alpha: float
    mean_line: float
    symbol_lines: float = 0.0  # share of the page's lines without a letter or digit (leaders left out)
    junk: bool = False  # the page's text (garbled, low OCR confidence) or its symbol-only lines were left out
    ocr_confidence: float = -1.0  # Tesseract's mean word confidence (0-100) on an OCR'd page; -1 otherwise
    rotation: int = 0  # degrees an OCR'd page was turned (clockwise) to read it upright


class Extracted(msgspec.Struct):
    """What a worker answers for one PDF: ``text`` and per-page facts, or ``reason`` and ``error``."""

    text: str = ""
    pages: list[Page] = []
    page_offsets: list[int] = []  # start of each page's text in ``text``
    running_lines_removed: int = 0
    title: str = ""
    seconds: float = 0.0
    reason: str = ""  # set when the PDF is unusable: encrypted, unreadable, no_pages, memory_limit, error
    error: str = ""


class Options(msgspec.Struct):
    ocr: bool = True
    ocr_language: str = "eng"
    ocr_dpi: int = 200
    min_page_chars: int = 20  # a page with less text than this (and an image) goes to OCR
    password: str = ""
