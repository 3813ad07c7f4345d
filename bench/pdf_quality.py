"""PDF extraction quality: olmOCR-bench-style checks (present, absent, order) on real and laid-out PDFs.

Real PDFs: hand-written checks on journal and conference templates from ``../shared/corpora/pdf`` (running
headers and page footers must be absent; sections and the two halves of a paragraph cut by a column or page
break must come in order). Laid-out PDFs: Wikipedia paragraphs flowed into one and two columns with running
headers and page numbers (``bench.pdf_layouts``), where every paragraph's start is checked and every pair of
consecutive paragraphs is checked for order. The score is the share of checks passed.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

from bench.pdf_layouts import Checks, write_pdf

TWO_COLUMN = "files/two_column/texlive-publishers-doc__"
REAL: dict[str, Checks] = {
    TWO_COLUMN + "sample-acmtog.pdf": Checks(
        present=["insight and instruction into more recent changes to the article template"],
        absent=["ACM Trans. Graph., Vol. 37, No. 4, Article 111. Publication date: August 2018.", "Trovato et al."],
        order=[
            ("INTRODUCTION", "TEMPLATE OVERVIEW"),
            ("If you have published with ACM before, this document provides", "insight and instruction"),
            ("TEMPLATE OVERVIEW", "MODIFICATIONS"),
            ("MODIFICATIONS", "TYPEFACES"),
        ],
    ),
    TWO_COLUMN + "sample-sigconf.pdf": Checks(
        absent=["Conference acronym ’XX, June 03–05, 2018, Woodstock, NY Trovato et al."],
        order=[
            ("ABSTRACT", "INTRODUCTION"),
            ("INTRODUCTION", "TEMPLATE OVERVIEW"),
            ("TEMPLATE OVERVIEW", "MODIFICATIONS"),
        ],
    ),
    TWO_COLUMN + "p_007.pdf": Checks(
        absent=["Proc. of the 9th Int. Conference on Digital Audio Effects (DAFx-06), Montreal", "DAFX-17"],
        order=[
            ("ABSTRACT", "1. INTRODUCTION"),
            ("1. INTRODUCTION", "1.1. Figures"),
            ("1.1. Figures", "1.2. Tables"),
            ("1.2. Tables", "1.3. Equations"),
            ("1.4. Page Numbers", "1.5. References"),
            ("2. CONCLUSIONS", "3. ACKNOWLEDGEMENTS"),
        ],
    ),
    TWO_COLUMN + "aapmsamp.pdf": Checks(
        order=[
            ("I. FIRST-LEVEL HEADING", "I.A. Second-level heading"),
            ("This sample document demonstrates proper use", "When commands are referred to in this example"),
        ],
    ),
}


def laid_out(corpora: Path, folder: Path) -> dict[Path, Checks]:
    """Six PDFs (one and two columns, three pages each) from consecutive Wikipedia paragraphs."""
    paragraphs = [
        json.loads(line)["text"] for line in gzip.open(corpora / "text" / "wikipedia_boolq_passages.jsonl.gz")
    ]
    paragraphs = [p for p in paragraphs if 300 < len(p) < 900 and p.isascii()]
    out = {}
    for i in range(6):
        path = folder / f"laid-out-{i}.pdf"
        out[path] = write_pdf(path, paragraphs[i * 30 : (i + 1) * 30], columns=1 + i % 2, title=f"Annals {i}")
    return out


def score(extract_text, corpora: Path) -> dict[str, float]:
    """Share of checks passed by ``extract_text(path) -> str``, on the real and the laid-out PDFs."""
    with tempfile.TemporaryDirectory() as tmp:
        sets = {
            "real": {corpora / "pdf" / name: checks for name, checks in REAL.items()},
            "laid_out": laid_out(corpora, Path(tmp)),
        }
        result = {}
        for name, pdfs in sets.items():
            passed = total = 0
            for path, checks in pdfs.items():
                p, t = checks.score(extract_text(path))
                passed, total = passed + p, total + t
            result[name] = passed / total
            result[name + "_checks"] = total
        return result
