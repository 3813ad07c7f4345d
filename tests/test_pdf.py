"""PDF extraction: reading order, running lines, OCR, isolation, and every PDF accounted for."""

import gzip
import json
import shutil
import threading

import pymupdf
import pytest
from conftest import ROOT, SHARED, read_jsonl, run_cli

from bench.pdf_layouts import write_pdf, write_scanned_pdf
from pdf_extract import layout
from pdf_extract.extract import Options
from pdf_extract.stage import length_bucket
from pdf_extract.worker import PdfWorker

PARAGRAPHS = [json.loads(line)["text"] for line in gzip.open(ROOT / "tests/fixtures/wikipedia.jsonl.gz")]
HAS_TESSERACT = shutil.which("tesseract") is not None


@pytest.fixture
def pdf_folder(tmp_path):
    folder = tmp_path / "pdfs"
    folder.mkdir()
    checks = {
        "two-column.pdf": write_pdf(folder / "two-column.pdf", PARAGRAPHS[:20], columns=2, title="Annals of Tests"),
        "one-column.pdf": write_pdf(folder / "one-column.pdf", PARAGRAPHS[20:], columns=1, title="Notes"),
    }
    locked = pymupdf.open(folder / "two-column.pdf")
    locked.save(folder / "locked.pdf", encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="secret", owner_pw="owner")
    (folder / "broken.pdf").write_bytes((folder / "one-column.pdf").read_bytes()[:300])
    (folder / "not-a-pdf.pdf").write_bytes(b"<html>an error page saved as .pdf</html>")
    write_scanned_pdf(folder / "scanned.pdf", PARAGRAPHS[0])
    return folder, checks


def by_url(docs):
    return {d["metadata"]["url"].rsplit("/", 1)[-1]: d for d in docs}


def test_pdf_stage_reads_columns_in_order_drops_running_lines_and_accounts_for_every_file(pdf_folder, tmp_path):
    folder, checks = pdf_folder
    out = tmp_path / "out" / "documents"
    run_cli("pdf", "--input", str(folder), "--output", str(out), "--workers", "1", "--files-per-shard", "4")
    docs = by_url(read_jsonl(out / "pdf-00000.jsonl.zst") + read_jsonl(out / "pdf-00001.jsonl.zst"))
    assert set(docs) == {"two-column.pdf", "one-column.pdf", "scanned.pdf"}
    for name, check in checks.items():
        passed, total = check.score(docs[name]["text"])
        assert passed == total, name  # every paragraph, in order; no header; "compli-\ncated" rejoined
        meta = docs[name]["metadata"]
        assert meta["pages"] >= 2 and meta["pages_ocr"] == 0 and meta["language"] == "en"
        assert meta["tokens"] > 500 and meta["length_bucket"] == "<=8k"
        assert meta["running_lines_removed"] >= 2 * meta["pages"]  # header and page number on every page

    summary = json.loads((out / "_ledger/pdf/summary.json").read_text())
    assert summary["read"] == 6 and summary["kept"] == 3
    assert summary["quarantined"] == {"encrypted": 1, "unreadable": 2}
    quarantine = [r for f in sorted((out / "_ledger/pdf/quarantine").glob("*")) for r in read_jsonl(f)]
    assert {r["file"].rsplit("/", 1)[-1]: r["reason"] for r in quarantine} == {
        "locked.pdf": "encrypted",
        "broken.pdf": "unreadable",
        "not-a-pdf.pdf": "unreadable",
    }

    attrs = read_jsonl(out.parent / "attributes/pdf/pdf-00000.jsonl.zst")
    shard = read_jsonl(out / "pdf-00000.jsonl.zst")
    assert [a["id"] for a in attrs] == [d["id"] for d in shard]
    for a, d in zip(attrs, shard):
        spans = a["attributes"]["pdf__pdf_extract_v1__page_alpha_ratio"]
        assert len(spans) == d["metadata"]["pages"] and spans[-1][1] == len(d["text"])
        assert a["attributes"]["pdf__pdf_extract_v1__garbled_ratio"][0][2] < 0.01
        assert a["attributes"]["pdf__pdf_extract_v1__tokens"][0][2] == d["metadata"]["tokens"]

    # a rerun finds every shard done, and the password opens the encrypted one
    again = run_cli("pdf", "--input", str(folder), "--output", str(out), "--workers", "1", "--files-per-shard", "4")
    assert "0/2" not in again.stdout
    out2 = tmp_path / "out2" / "documents"
    run_cli("pdf", "--input", str(folder / "locked.pdf"), "--output", str(out2), "--password", "secret")
    (locked,) = read_jsonl(out2 / "pdf-00000.jsonl.zst")
    assert checks["two-column.pdf"].score(locked["text"])[0] == checks["two-column.pdf"].score(locked["text"])[1]


@pytest.mark.skipif(not HAS_TESSERACT, reason="Tesseract is not installed (.ci/run installs tesseract-ocr)")
def test_page_without_text_layer_is_ocred_and_recorded(pdf_folder, tmp_path):
    folder, _ = pdf_folder
    out = tmp_path / "documents"
    run_cli("pdf", "--input", str(folder / "scanned.pdf"), "--output", str(out), "--workers", "1")
    (doc,) = read_jsonl(out / "pdf-00000.jsonl.zst")
    assert doc["metadata"]["pages_ocr"] == 1
    words = PARAGRAPHS[0].split()
    found = sum(w in doc["text"] for w in words)
    assert found >= 0.9 * len(words), doc["text"]
    (attrs,) = read_jsonl(out.parent / "attributes/pdf/pdf-00000.jsonl.zst")
    assert attrs["attributes"]["pdf__pdf_extract_v1__page_ocr"] == [[0, len(doc["text"]), 1]]
    ((start, end, confidence),) = attrs["attributes"]["pdf__pdf_extract_v1__page_ocr_confidence"]
    assert (start, end) == (0, len(doc["text"])) and 85 < confidence <= 100

    no_ocr = tmp_path / "no-ocr" / "documents"
    run_cli("pdf", "--input", str(folder / "scanned.pdf"), "--output", str(no_ocr), "--no-ocr")
    summary = json.loads((no_ocr / "_ledger/pdf/summary.json").read_text())
    assert summary["dropped"] == {"no_text": 1}


def test_worker_survives_timeout_memory_limit_and_a_killed_process(pdf_folder, tmp_path):
    folder, _ = pdf_folder
    big = tmp_path / "big-image.pdf"  # a page whose image alone decodes to 108 MB
    doc = pymupdf.open()
    page = doc.new_page(width=3000, height=3000)
    pixmap = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 6000, 6000), False)
    pixmap.clear_with(200)
    page.insert_image(page.rect, pixmap=pixmap)
    doc.save(big, deflate=True)
    good = str(folder / "one-column.pdf")
    with PdfWorker(timeout=60, memory_mb=300) as worker:
        assert worker.extract(good, Options()).result.text
        answer = worker.extract(str(big), Options(ocr_dpi=300))
        assert answer.result.reason == "memory_limit" and "failed" in answer.result.error
        assert worker.extract(good, Options()).result.text  # a fresh process took over

        worker.timeout = 0.05
        answer = worker.extract(str(folder / "scanned.pdf"), Options(ocr_dpi=400))
        assert answer.result.reason == "timeout"
        worker.timeout = 60
        assert worker.extract(good, Options()).result.text

        threading.Timer(0.3, lambda: worker._worker._proc.kill()).start()
        answer = worker.extract(str(folder / "scanned.pdf"), Options(ocr_dpi=300))  # OCR takes seconds
        assert answer.result.reason == "worker_crashed" and "SIGKILL" in answer.result.error
        assert worker.extract(good, Options()).result.text


def test_paragraph_lines_hyphenation_and_page_joins():
    prose = "A line of prose that fills the col-\numn and then it goes on and\non to its end.\n"
    expected = "A line of prose that fills the column and then it goes on and on to its end."
    assert layout.paragraph_text(layout.Block(0, 0, 100, 50, prose)) == expected
    code = layout.Block(0, 0, 100, 50, "def main():\n    value = compute_the_answer(42)\n    return value\n")
    assert layout.paragraph_text(code) == "def main():\nvalue = compute_the_answer(42)\nreturn value"
    text, starts = layout.join_paragraphs(["First paragraph.", "A second one that is cut by a col-", "umn break."])
    assert text == "First paragraph.\n\nA second one that is cut by a column break."
    assert starts == [0, 18, 18 + len("A second one that is cut by a col")]
    assert layout.clean("ﬁnd the ﬂow\x07") == "find the flow"
    assert [length_bucket(n) for n in (10, 8192, 8193, 40_000, 200_000)] == [
        "<=8k", "<=8k", "8k-16k", "32k-64k", ">128k",
    ]  # fmt: skip


@pytest.mark.skipif(not SHARED.exists(), reason="needs ../shared/corpora")
def test_every_hostile_pdf_in_the_corpus_is_extracted_or_quarantined(tmp_path):
    """Broken, fuzzed, zero-page and encrypted real PDFs: the run finishes and accounts for each one."""
    folder = tmp_path / "pdfs"
    for category in ("broken_or_odd", "encrypted"):
        shutil.copytree(SHARED / "pdf" / "files" / category, folder / category)
    n = len(list(folder.rglob("*.pdf")))
    out = tmp_path / "documents"
    run_cli("pdf", "--input", str(folder), "--output", str(out), "--workers", "2", "--files-per-shard", "8")
    summary = json.loads((out / "_ledger/pdf/summary.json").read_text())
    assert summary["read"] == n
    assert summary["kept"] + sum(summary["dropped"].values()) + sum(summary["quarantined"].values()) == n
    assert summary["quarantined"]["encrypted"] >= 5 and summary["quarantined"]["no_pages"] >= 1
    assert summary["kept"] >= 10  # owner-password-only and repairable files still give text


@pytest.mark.skipif(not (SHARED.exists() and HAS_TESSERACT), reason="needs ../shared/corpora and Tesseract")
def test_a_poster_sized_scan_is_read_smaller_and_a_page_that_cannot_be_read_loses_only_itself(pdf_folder, tmp_path):
    """A real 35,000-pixel scan (116 inches a side) is rendered within the pixel cap and read; the same scan
    declared a hundred times larger is over MuPDF's image limit at any resolution: that page is an error with
    its reason, and the readable pages around it are kept."""
    folder, checks = pdf_folder
    doc = pymupdf.open(folder / "one-column.pdf")
    doc.insert_pdf(pymupdf.open(SHARED / "pdf/files/scanned/ocrmypdf__hugemono.pdf"))
    over = pymupdf.open(SHARED / "pdf/files/scanned/ocrmypdf__hugemono.pdf")
    xref = over[0].get_images()[0][0]
    for key in ("Width", "Height"):
        over.xref_set_key(xref, key, "3500000")
    over.xref_set_key(xref, "DecodeParms", "<< /K -1 /Columns 3500000 /Rows 3500000 >>")
    doc.insert_pdf(over)
    doc.save(tmp_path / "mixed.pdf")
    with PdfWorker(timeout=120, memory_mb=3072) as worker:
        answer = worker.extract(str(tmp_path / "mixed.pdf"), Options())
    methods = [p.method for p in answer.result.pages]
    assert answer.result.reason == "" and methods[-2:] == ["ocr", "error"] and "text" in methods
    assert "This is a very big image with a tiny amount of text." in answer.result.text
    from pdf_extract.extract import tessdata
    from pdf_extract.ocr import ocr_page

    poster = pymupdf.open(SHARED / "pdf/files/scanned/ocrmypdf__hugemono.pdf")[0]  # read at ~54 dpi, not 200
    blocks = ocr_page(poster, "eng", 200, tessdata()).blocks
    assert blocks and all(0 <= b.x0 < b.x1 <= poster.rect.width and b.y1 <= poster.rect.height for b in blocks)
    assert max(b.x1 for b in blocks) > 0.15 * poster.rect.width  # in points (the line ends at 1,993 of 8,400)
    assert checks["one-column.pdf"].score(answer.result.text)[0] >= len(checks["one-column.pdf"].present)


@pytest.mark.skipif(not HAS_TESSERACT, reason="Tesseract is not installed (.ci/run installs tesseract-ocr)")
def test_ocr_turns_sideways_and_upside_down_scans_reads_columns_in_order_and_drops_unreadable_pages(tmp_path):
    """A two-column journal of real paragraphs, scanned upright, turned 90 and 180 degrees, and mirrored.
    MuPDF's OCR device read the upright scan's columns interleaved (14 of 22 checks) and the turned one as
    noise (2 of 22); a mirrored scan is read as words Tesseract is unsure of and must not become text."""
    from bench.pdf_layouts import scan_pdf
    from pdf_extract.extract import extract

    checks = write_pdf(tmp_path / "journal.pdf", PARAGRAPHS[:12], columns=2, title="Scanned Journal", pages=2)
    for name, rotate, turned in (("upright", 0, 0), ("sideways", 90, 270), ("upside-down", 180, 180)):
        scan_pdf(tmp_path / "journal.pdf", tmp_path / f"{name}.pdf", rotate=rotate)
        result = extract((tmp_path / f"{name}.pdf").read_bytes(), Options())
        assert [(p.method, p.rotation, p.junk) for p in result.pages] == [("ocr", turned, False)] * 2, name
        assert min(p.ocr_confidence for p in result.pages) > 85, name
        passed, total = checks.score(result.text)
        assert passed >= total - 1, (name, passed, total)  # columns in order, header and page numbers gone
    scan_pdf(tmp_path / "journal.pdf", tmp_path / "mirrored.pdf", mirror=True)
    mirrored = extract((tmp_path / "mirrored.pdf").read_bytes(), Options())
    assert [(p.method, p.junk) for p in mirrored.pages] == [("ocr", True)] * 2
    assert max(p.ocr_confidence for p in mirrored.pages) < 50 and mirrored.text == ""


def _pages_of(shared_pdf: str, pages: list[int], out) -> str:
    doc = pymupdf.open(SHARED / "pdf" / "files" / shared_pdf)
    doc.select(pages)
    doc.save(str(out))
    return str(out)


def test_dot_leaders_and_character_drawings_do_not_reach_the_text(tmp_path):
    """A table of contents set line by line gave lines of "." alone; a picture-mode drawing made of characters
    gave lines of symbols. Leaders go, the drawing's symbol lines go (the page is marked junk), words stay."""
    from pdf_extract.extract import extract

    lwarp = _pages_of("very_long/texlive-latex-recommended-doc__lwarp.pdf", [2, 3], tmp_path / "a.pdf")
    toc = extract(open(lwarp, "rb").read(), Options(ocr=False))
    assert "Support TEX development" in toc.text and "List of Figures" in toc.text
    assert not [line for line in toc.text.split("\n") if line.strip() and layout.LEADER.fullmatch(line)]
    lshort = _pages_of("multilingual/texlive-lang-cyrillic__lshortru.pdf", [107, 108], tmp_path / "b.pdf")
    drawing = extract(open(lshort, "rb").read(), Options(ocr=False))
    assert [p.junk for p in drawing.pages] == [False, True]
    second = drawing.text[drawing.page_offsets[1] :]
    assert "\\qbezier" in second and "picture" in second
    assert not [line for line in second.split("\n") if line.strip() and layout.SYMBOLS_ONLY.fullmatch(line.strip())]
    assert drawing.pages[1].symbol_lines >= 0.7


def test_a_running_header_printed_once_on_the_second_page_of_two_is_removed(tmp_path):
    """A two-page paper: the title and authors on page 1, a one-line header repeating them on page 2 only.
    Recurrence alone cannot see it (it is printed once); its title words can."""
    from pdf_extract.extract import extract

    doc = pymupdf.open()
    width, height = pymupdf.paper_size("letter")
    first = doc.new_page(width=width, height=height)
    first.insert_textbox(pymupdf.Rect(54, 72, width - 54, 110), "Phantom Limb Sensations in Amputees", fontsize=20)
    first.insert_textbox(pymupdf.Rect(54, 112, width - 54, 140), "Ann Author and Bob Writer", fontsize=11)
    first.insert_textbox(pymupdf.Rect(54, 150, width - 54, height - 72), PARAGRAPHS[0], fontsize=10)
    second = doc.new_page(width=width, height=height)
    header = "Phantom Limb Sensations · Author and Writer"
    second.insert_textbox(pymupdf.Rect(54, 40, width - 54, 54), header, fontsize=8)
    second.insert_textbox(pymupdf.Rect(54, 72, width - 54, height - 72), PARAGRAPHS[2], fontsize=10)
    doc.save(tmp_path / "paper.pdf")
    result = extract((tmp_path / "paper.pdf").read_bytes(), Options(ocr=False))
    assert header not in result.text and result.running_lines_removed == 1
    assert result.text.startswith("Phantom Limb Sensations in Amputees\n\nAnn Author and Bob Writer")
    assert " ".join(PARAGRAPHS[2].split()[:12]) in " ".join(result.text.split())


@pytest.mark.skipif(not SHARED.exists(), reason="needs ../shared/corpora")
def test_a_diagonal_watermark_does_not_move_the_gutter_or_cut_the_columns(tmp_path):
    """ACM's author-draft template prints "Unpublished working draft. Not for distribution." diagonally across
    every page: its tall boxes moved the detected gutter into the left column, whose paragraphs then counted
    as full-width breaks, and the page was read across the columns."""
    from pdf_extract.extract import extract

    page = _pages_of("two_column/texlive-publishers-doc__sample-authordraft.pdf", [3], tmp_path / "draft.pdf")
    text = " ".join(extract(open(page, "rb").read(), Options(ocr=False)).text.split())
    left_end, right_start = "A figure description must be unformatted", "For additional information regarding"
    assert text.index("The “figure” environment should be used") < text.index(left_end) < text.index(right_start)
    assert text.index("Unpublished working draft.") > text.index("Some examples. A paginated journal article")


@pytest.mark.skipif(not SHARED.exists(), reason="needs ../shared/corpora")
def test_chinese_text_keeps_its_punctuation_and_gets_no_spaces_at_line_breaks(tmp_path):
    """The ctex manual (real Chinese typesetting): NFKC turned every "，" into "," and joining prose lines put a
    space between two characters at every line break; the text layer has neither."""
    import re

    from pdf_extract.extract import extract

    path = _pages_of("multilingual/texlive-lang-chinese__ctex.pdf", list(range(2, 8)), tmp_path / "ctex.pdf")
    raw = "".join(page.get_text() for page in pymupdf.open(path))
    text = extract(open(path, "rb").read(), Options(ocr=False)).text
    assert raw.count("，") > 20 and text.count("，") == raw.count("，") and text.count("。") == raw.count("。")
    han_space_han = re.compile(r"[\u4e00-\u9fff] [\u4e00-\u9fff]")
    assert len(han_space_han.findall(text)) <= len(han_space_han.findall(raw))
    assert layout.clean("ﬁle Ａ１，ok。\u3000次") == "file A1，ok。\u3000次"  # ligatures and wide letters still fold
