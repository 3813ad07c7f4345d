"""OCR of a page without a text layer: Tesseract's orientation detection, then its layout and word confidences.

Why Tesseract's own command rather than MuPDF's OCR device: the device hands back lines that run across both
columns of a two-column scan (the columns came out interleaved) and no confidence, and a page scanned sideways
or upside down came out as lines of noise. Here the page is rendered once, Tesseract's orientation and script
detection (``--psm 0``) says how far to turn it; when it is sure enough (``ROTATE_CONFIDENCE``: turned pages of
text measured 10-13, a false call on a noisy real scan 2.2) the page is turned and rendered again. Tesseract's
automatic page segmentation (``--psm 3``) then gives words with their paragraph, position and confidence: each
paragraph becomes a block in page coordinates, so the reading order and running-line rules of text pages apply
unchanged, and the page's confidence is the mean of its words' confidences weighted by their length.

A page is rendered at ``ocr_dpi`` or less: at most ``MAX_PIXELS`` and ``MAX_SIDE`` pixels on a side (Tesseract
refuses wider images; a poster-sized page at 200 dpi is half a gigapixel). A page that renders blank although
it holds an image is checked image by image: one that MuPDF cannot decode (over its size limit) makes the page
an error with that reason rather than an empty page. Tesseract runs with one thread (``OMP_THREAD_LIMIT=1``): a
worker is one core.
"""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess

import msgspec
import numpy as np
import pymupdf

from pdf_extract.layout import Block

ROTATE_CONFIDENCE = 5.0  # Tesseract's orientation confidence needed to turn a page
MAX_PIXELS = 40e6  # a letter page at 600 dpi is 34 million
MAX_SIDE = 30_000
ONE_THREAD = {**os.environ, "OMP_THREAD_LIMIT": "1"}


class OcrPage(msgspec.Struct):
    blocks: list[Block]
    confidence: float  # mean word confidence (0-100) weighted by word length; -1 without words
    rotation: int  # degrees the page was turned clockwise before OCR


def ocr_page(page: pymupdf.Page, language: str, dpi: int, tessdata: str) -> OcrPage:
    """Turn the page upright when Tesseract is sure it is not, then read its words as paragraph blocks."""
    image, dpi = _render(page, dpi)
    rotation, confidence = orientation(image, tessdata)
    if rotation and confidence >= ROTATE_CONFIDENCE:
        page.set_rotation((page.rotation + rotation) % 360)
        image, dpi = _render(page, dpi)
    else:
        rotation = 0
    tsv = _tesseract(image, tessdata, "-l", language, "--psm", "3", "--dpi", str(dpi), "tsv").stdout
    blocks, mean = _paragraphs(tsv, dpi)
    return OcrPage(blocks, mean, rotation)


def orientation(image: bytes, tessdata: str) -> tuple[int, float]:
    """(degrees to turn clockwise, Tesseract's confidence); (0, 0.0) when it finds too little text to say."""
    proc = _tesseract(image, tessdata, "--psm", "0", check=False)
    out = proc.stdout.decode("utf-8", "replace")
    rotate, confidence = re.search(r"Rotate: (\d+)", out), re.search(r"Orientation confidence: ([\d.]+)", out)
    if proc.returncode != 0 or not rotate or not confidence:  # "Too few characters": nothing to turn
        return 0, 0.0
    return int(rotate.group(1)) % 360, float(confidence.group(1))


def _render(page: pymupdf.Page, dpi: int) -> tuple[bytes, int]:
    """The page as a grey PNG, and the resolution it was rendered at (``dpi`` or less, within the caps)."""
    width, height = page.rect.width / 72, page.rect.height / 72  # inches
    dpi = max(1, int(min(dpi, (MAX_PIXELS / max(width * height, 1e-6)) ** 0.5, MAX_SIDE / max(width, height, 1e-6))))
    pixmap = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY)
    samples = np.frombuffer(pixmap.samples_mv, dtype=np.uint8)
    if samples.size and samples.min() == samples.max():
        for xref, *_ in page.get_images():
            pymupdf.Pixmap(page.parent, xref)  # raises (e.g. MuPDF's "Overly large image") for one it cannot read
    return pixmap.tobytes("png"), dpi


def _tesseract(image: bytes, tessdata: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Tesseract on a PNG from stdin, one thread; with ``check``, a failure raises with its message."""
    proc = subprocess.run(
        ["tesseract", "stdin", "stdout", "--tessdata-dir", tessdata, *args],
        input=image, capture_output=True, env=ONE_THREAD,
    )  # fmt: skip
    if check and proc.returncode != 0:
        raise RuntimeError(f"tesseract failed: {proc.stderr.decode('utf-8', 'replace').strip()[-300:]}")
    return proc


def _paragraphs(tsv: bytes, dpi: int) -> tuple[list[Block], float]:
    """Tesseract's TSV words grouped into paragraph blocks (lines kept), in points; and the mean confidence.

    The standard library's csv reads the few hundred words of a page: OCR takes seconds a page, and a
    dataframe library would add ~600 MB of address space to a worker that runs under a memory limit."""
    rows = csv.DictReader(io.StringIO(tsv.decode("utf-8", "replace")), delimiter="\t", quoting=csv.QUOTE_NONE)
    paragraphs: dict[tuple[str, str], dict[str, list[str]]] = {}
    boxes: dict[tuple[str, str], list[float]] = {}
    weighted = chars = 0.0
    for row in rows:
        text = (row.get("text") or "").strip()
        if row["level"] != "5" or not text or float(row["conf"]) < 0:
            continue
        weighted, chars = weighted + float(row["conf"]) * len(text), chars + len(text)
        key = (row["block_num"], row["par_num"])
        paragraphs.setdefault(key, {}).setdefault(row["line_num"], []).append(text)
        x0, y0 = float(row["left"]), float(row["top"])
        x1, y1 = x0 + float(row["width"]), y0 + float(row["height"])
        box = boxes.setdefault(key, [x0, y0, x1, y1])
        box[:] = [min(box[0], x0), min(box[1], y0), max(box[2], x1), max(box[3], y1)]
    if not chars:
        return [], -1.0
    scale = 72.0 / dpi
    blocks = [
        Block(*(v * scale for v in boxes[key]), "\n".join(" ".join(words) for words in lines.values()))
        for key, lines in paragraphs.items()
    ]
    return blocks, round(weighted / chars, 2)
