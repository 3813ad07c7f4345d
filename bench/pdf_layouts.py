"""PDFs with a known reading order, built with PyMuPDF from real paragraphs, for extraction tests and scoring.

Each page carries a running header (title and page number), a footer page number, and paragraphs flowed down
one or two columns; one paragraph per document is broken over lines with a hyphenated word. The checks that
score an extraction follow olmOCR-bench's style: a snippet must be present, must be absent, or must come
before another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pymupdf

PAGE = pymupdf.paper_rect("letter")
MARGIN = 54
GAP = 18
HYPHENATED = "The reading order of a scanned journal is compli-\ncated by columns, so the extractor must rejoin words."


@dataclass
class Checks:
    present: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    order: list[tuple[str, str]] = field(default_factory=list)

    def score(self, text: str) -> tuple[int, int]:
        """(checks passed, checks in all) on an extracted text, whitespace-normalised."""
        flat = " ".join(text.split())
        passed = sum(s in flat for s in self.present) + sum(s not in flat for s in self.absent)
        for a, b in self.order:
            i, j = flat.find(a), flat.find(b)
            passed += 0 <= i < j
        return passed, len(self.present) + len(self.absent) + len(self.order)


def snippet(paragraph: str, at: str) -> str:
    """Six words from the start or the end of a paragraph (what a reader checks the order by)."""
    words = paragraph.split()
    return " ".join(words[:6] if at == "start" else words[-6:])


def write_pdf(path: Path, paragraphs: list[str], columns: int, title: str, pages: int = 3) -> Checks:
    """Flow ``paragraphs`` (each kept whole) down ``columns`` columns over at most ``pages`` pages."""
    doc = pymupdf.open()
    width = (PAGE.width - 2 * MARGIN - GAP * (columns - 1)) / columns
    placed: list[str] = []
    queue = [HYPHENATED] + [p for p in paragraphs if p.isascii()]  # the base-14 font has no other glyphs
    for number in range(1, pages + 1):
        if not queue:
            break
        page = doc.new_page(width=PAGE.width, height=PAGE.height)
        page.insert_text((MARGIN, 36), f"{title} · Volume 12 · page {number}", fontsize=8)
        page.insert_text((PAGE.width / 2, PAGE.height - 30), str(number), fontsize=9)
        for column in range(columns):
            x0 = MARGIN + column * (width + GAP)
            y = 72.0
            while queue:
                box = pymupdf.Rect(x0, y, x0 + width, PAGE.height - 60)
                spare = page.insert_textbox(box, queue[0], fontsize=10, fontname="helv", align=0)
                if spare < 0:  # does not fit in what is left of this column: nothing was written
                    break
                placed.append(queue.pop(0))
                y += box.height - spare + 8
    doc.save(path)
    doc.close()
    checks = Checks()
    checks.present = [snippet(p, "start") for p in placed[1:]] + ["complicated by columns"]
    checks.absent = [f"{title} · Volume 12", "compli- cated"]
    checks.order = [(snippet(a, "end"), snippet(b, "start")) for a, b in zip(placed[1:], placed[2:])]
    return checks


def write_scanned_pdf(path: Path, paragraph: str, dpi: int = 200) -> None:
    """One page whose text is only an image (rendered from a text page): what OCR must read."""
    src = pymupdf.open()
    page = src.new_page(width=PAGE.width, height=PAGE.height)
    page.insert_textbox(pymupdf.Rect(MARGIN, 72, PAGE.width - MARGIN, PAGE.height - 72), paragraph, fontsize=14)
    pixmap = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY)
    out = pymupdf.open()
    out.new_page(width=PAGE.width, height=PAGE.height).insert_image(PAGE, stream=pixmap.tobytes("jpg", jpg_quality=70))
    out.save(path)


def scan_pdf(src: Path, dst: Path, dpi: int = 200, rotate: int = 0, mirror: bool = False) -> None:
    """Every page of ``src`` as an image only, as a scanner gives it: its content turned ``rotate`` degrees
    (the page itself has no /Rotate, so only the image says which way is up), or mirrored."""
    out = pymupdf.open()
    for page in pymupdf.open(src):
        matrix = pymupdf.Matrix(dpi / 72, dpi / 72).prerotate(rotate)
        if mirror:
            matrix = matrix * pymupdf.Matrix(-1, 0, 0, 1, 0, 0)
        pixmap = page.get_pixmap(matrix=matrix, colorspace=pymupdf.csGRAY)
        width, height = pixmap.width * 72 / dpi, pixmap.height * 72 / dpi
        image = pixmap.tobytes("jpg", jpg_quality=70)
        out.new_page(width=width, height=height).insert_image(pymupdf.Rect(0, 0, width, height), stream=image)
    out.save(dst)
