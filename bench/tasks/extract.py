"""Extraction tasks: WARC pages to documents (ours against datatrove's WarcReader + Trafilatura) and PDFs to
documents (ours, one worker, against poppler's ``pdftotext`` run file by file).

Web: the same WARC bytes for both: the CommonCrawl excerpt and the first 100 (small) or 400 (large) records of
the Python-docs crawl, so the marginal rate is that of Python-docs pages; the check is that both keep mostly
the same pages (by URL). The ClueWeb excerpt is left out: datatrove's reader gets no page from it (ours gets 29
of its 30 records), so it would time unequal work. PDF: the
text-layer PDFs of the shared set that are not scans, broken or over 500 pages (30 small, all large); the
check is that ours makes a document of nearly every PDF from which ``pdftotext`` gets text.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import polars as pl

from bench.harness import Contender, Size, Target, Task
from bench.tasks.common import attributes, datatrove, ours, require

WEB_OURS, WEB_PEER = "ours: dolma web", "datatrove WarcReader + Trafilatura"
PDF_OURS, PDF_PEER = "ours: dolma pdf", "pdftotext (poppler), file by file"


def ours_pdf(size: Size, out: Path) -> list[str]:
    return ours("pdf", "--input", str(size.inputs["dir"]), "--output", str(out / "documents"), "--workers", "1")


def head_of_warc(src: Path, dst: Path, records: int) -> None:
    """The first ``records`` records of a .warc.gz (one gzip member each), copied byte for byte."""
    from fastwarc.warc import ArchiveIterator

    with open(src, "rb") as f:
        offsets = [r.stream_pos for _, r in zip(range(records + 1), ArchiveIterator(f, parse_http=False))]
    dst.write_bytes(src.read_bytes()[: offsets[-1]] if len(offsets) > records else src.read_bytes())


def web(corpora: Path, work: Path, quick: bool) -> Task:
    warc = corpora / "web" / "warc"
    small, large = work / "in" / "small", work / "in" / "large"
    for folder in (small, large):
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(warc / "commoncrawl-CC-MAIN-2020-34-excerpt.warc.gz", folder / "cc.warc.gz")
    docs = warc / "python311-docs-wget-loopback.warc.gz"
    head_of_warc(docs, small / "python-docs.warc.gz", 15 if quick else 100)
    head_of_warc(docs, large / "python-docs.warc.gz", 45 if quick else 400)
    sizes = tuple(Size(f.name, sum(p.stat().st_size for p in f.iterdir()) / 1e3, {"dir": f}) for f in (small, large))

    def check(outs: dict[str, Path]) -> dict:
        mine = {d["metadata"]["url"] for d in attributes(outs[WEB_OURS] / "documents")}
        theirs = set(json.loads((outs[WEB_PEER] / "dt.json").read_text())["urls"])
        common = len(mine & theirs) / max(len(mine | theirs), 1)
        require(common >= 0.85, f"ours and datatrove keep {common:.3f} of the same pages (< 0.85)")
        return {"pages kept (ours, datatrove)": [len(mine), len(theirs)], "same pages": round(common, 4)}

    return Task(
        "web",
        "WARC kB",
        sizes,
        [
            Contender(
                WEB_OURS,
                "ours",
                lambda s, o: (
                    ours("web", "--input", str(s.inputs["dir"]), "--output", str(o / "documents")) + ["--workers", "1"]
                ),
            ),
            Contender(
                WEB_PEER, "peer", lambda s, o: datatrove("datatrove_warc.py", str(s.inputs["dir"]), str(o / "dt.json"))
            ),
        ],
        check,
        [Target(WEB_OURS, WEB_PEER, 1.5)],
        "HTTP 200 HTML responses through trafilatura (balanced: comments out, tables in) on both sides",
    )


def pdf(corpora: Path, work: Path, quick: bool) -> Task:
    if not shutil.which("pdftotext"):
        raise SystemExit("the pdf task needs pdftotext: apt-get install poppler-utils")
    manifest = pl.read_csv(corpora / "pdf" / "MANIFEST.tsv", separator="\t", infer_schema_length=0)
    chosen = manifest.filter(
        (pl.col("has_text_layer") == "yes")
        & (pl.col("encrypted") == "no")
        & ~pl.col("category").is_in(["very_long", "broken_or_odd", "scanned", "image_only"])
    ).sort("file")
    counts = (8, 24) if quick else (30, len(chosen))
    sizes = []
    for label, n in zip(("small", "large"), counts):
        folder = work / "in" / label
        folder.mkdir(parents=True, exist_ok=True)
        for f in chosen["file"][:n]:
            os.symlink(corpora / "pdf" / f, folder / Path(f).name)
        sizes.append(Size(label, int(chosen["pages"][:n].cast(pl.Int64).sum()), {"dir": folder, "files": n}))

    def pdftotext(size: Size, out: Path) -> list[str]:
        loop = 'for f in "$1"/*.pdf; do pdftotext -q "$f" "$2/$(basename "$f").txt"; done'
        return ["sh", "-c", loop, "pdftotext-loop", str(size.inputs["dir"]), str(out)]

    def check(outs: dict[str, Path]) -> dict:
        mine = sum(1 for _ in attributes(outs[PDF_OURS] / "documents"))
        texts = [p.read_text(errors="replace") for p in outs[PDF_PEER].glob("*.txt")]
        theirs = sum(len(t.strip()) >= 100 for t in texts)
        require(mine >= 0.95 * theirs, f"ours made {mine} documents, pdftotext got text from {theirs} PDFs")
        return {"PDFs with text (ours, pdftotext)": [mine, theirs]}

    return Task(
        "pdf",
        "pages",
        (sizes[0], sizes[1]),
        [
            Contender(PDF_OURS, "ours", ours_pdf),
            Contender(PDF_PEER, "peer", pdftotext),
        ],
        check,
        [Target(PDF_OURS, PDF_PEER, 1.5)],
        "text-layer PDFs (two-column papers, manuals, multilingual); ours adds layout order and running-line removal",
    )
