"""The ``pdf`` stage: PDF files to Dolma documents, with per-page quality signals as attributes.

Each task is a shard of up to ``files_per_shard`` PDFs (in sorted path order) and writes
``<output>/pdf-NNNNN.jsonl.zst`` plus ``attributes/<attribute_set>/pdf-NNNNN.jsonl.zst`` beside it. Every PDF
is accounted for: extracted (kept), no text at all (dropped, ``no_text``), or quarantined with its reason
(``encrypted``, ``unreadable``, ``no_pages``, ``timeout``, ``memory_limit``, ``worker_crashed``, ``error``).

A document's ``id`` is the SHA-1 of the PDF's bytes, so the same PDF found at two URLs gets one id and exact
dedup sees it. The ``length_bucket`` metadata field is what a long-context mix samples by.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import numpy as np
import polars as pl

from dolma import io
from dolma.core.config import param
from dolma.core.document import ENCODER, AttributeLine, Document
from dolma.core.errors import UserError
from dolma.core.fasttext import default_lid_model, load_fasttext, one_line, predict
from dolma.core.tokenizer import DEFAULT_TOKENIZER, load_tokenizer, token_counts
from dolma.runtime.executors import report_progress
from dolma.runtime.ledger import ShardLedger
from dolma.runtime.report import Section
from dolma.runtime.stage import Files, Stage, Task, pack_by_size
from pdf_extract.answer import Options
from pdf_extract.worker import Answer, PdfWorker

TAGGER = "pdf_extract_v1"
BUCKETS = [(8192, "<=8k"), (16384, "8k-16k"), (32768, "16k-32k"), (65536, "32k-64k"), (131072, "64k-128k")]


def length_bucket(tokens: int) -> str:
    for limit, name in BUCKETS:
        if tokens <= limit:
            return name
    return ">128k"


class PdfMetadata(msgspec.Struct, omit_defaults=True):
    url: str
    bytes: int
    pages: int
    pages_ocr: int
    tokens: int
    length_bucket: str
    language: str
    running_lines_removed: int
    title: str = ""
    pages_failed: int = 0  # pages that could not be read (the rest of the document was)
    junk_pages: int = 0  # pages cleaned as junk: left out (unmapped glyphs, low OCR confidence) or symbol lines
    pages_rotated: int = 0  # OCR'd pages turned upright before reading (Tesseract's orientation detection)


@dataclass
class PdfStage(Stage):
    input: str = param(help="glob or folder of .pdf files (local, s3://, gs://)")
    # a Dolma `documents/` folder, so the signals land in the parallel `attributes/` tree
    output: str = param(help="output folder; must be a 'documents/' folder")
    source: str = param("pdf", "the documents' source field")
    files_per_shard: int = param(64, "PDFs per output shard at most", ge=1)
    shard_mb: float = param(8.0, "PDF bytes per shard (MB): a large file (a scan, a book) is a shard alone", gt=0)
    timeout: float = param(180.0, "seconds allowed per PDF, OCR included", gt=0)
    memory_mb: int = param(3072, "address-space limit of each extraction process, in MiB (0: none)", ge=0)
    ocr: bool = param(True, "OCR pages without a text layer with Tesseract")
    ocr_language: str = param("eng", "Tesseract language(s), e.g. eng+deu")
    ocr_dpi: int = param(200, "resolution pages are rendered at for OCR", ge=36, le=1200)
    min_page_chars: int = param(20, "a page with less text than this and an image is OCRed", ge=0)
    password: str = param("", "tried on encrypted PDFs; others are quarantined as encrypted")
    tokenizer: str = param(DEFAULT_TOKENIZER, "tokenizer that counts the tokens metadata (default: the bundled dolma2)")
    attribute_set: str = param("pdf", "attribute set of the per-page signals")
    lid_model: str = param("", "fastText language-ID model (default: lid.176)")
    name: str = param("pdf", "the stage's name in the ledger (unique in a recipe)")

    def __post_init__(self) -> None:
        io.refuse_output_in_input(self.input, self.output, self.name)
        if "/documents" not in "/" + self.output:
            raise UserError(f"pdf output {self.output!r} must be a 'documents/' folder (Dolma layout)")

    def tasks(self) -> list[Task]:
        files = sorted(f for f in io.list_files(self.input) if f.lower().endswith(".pdf"))
        if not files:
            raise UserError(f"no .pdf files match {self.input!r}")
        groups = pack_by_size(files, self.shard_mb * 1e6, self.files_per_shard)
        return [Task(f"pdf-{k:05d}", Files(tuple(group))) for k, group in enumerate(groups)]

    def task_basis(self, tasks: list[Task]) -> str:
        files = sum(len(t.payload.urls) for t in tasks)
        return f"{files:,} PDFs in groups of about {self.shard_mb:g} MB or {self.files_per_shard} files at most"

    def run(self, task: Task, ledger: ShardLedger) -> None:
        options = Options(self.ocr, self.ocr_language, self.ocr_dpi, self.min_page_chars, self.password)
        answers: list[tuple[str, Answer]] = []
        with PdfWorker(self.timeout, self.memory_mb) as worker:
            for url in task.payload.urls:
                answer = worker.extract(url, options)
                ledger.read += 1
                result = answer.result
                ledger.metrics["seconds"] += result.seconds
                if result.reason:
                    detail = f"{url}: {result.error}"
                    ledger.quarantined(url, [io.Rejected(1, result.reason, detail, id=answer.sha1 or None)])
                elif not result.text.strip():
                    ledger.dropped(url, [1], [answer.sha1], "no_text")
                else:
                    ledger.kept(url, [1], [answer.sha1])
                    answers.append((url, answer))
                report_progress(1, answer.size)
        texts = [a.result.text for _, a in answers]
        tokens = token_counts(load_tokenizer(self.tokenizer), texts).tolist()
        lid = load_fasttext(self.lid_model or default_lid_model())
        labels, probs = predict(lid, one_line(pl.Series([t[:100_000] for t in texts], dtype=pl.String)), k=1)
        docs, attributes = [], []
        for (url, answer), n_tokens, label, prob in zip(answers, tokens, labels, probs):
            r = answer.result
            pages_ocr = sum(p.method == "ocr" for p in r.pages)
            ledger.metrics["pages"] += len(r.pages)
            ledger.metrics["pages_ocr"] += pages_ocr
            meta = PdfMetadata(
                url, answer.size, len(r.pages), pages_ocr, n_tokens, length_bucket(n_tokens),
                label[0], r.running_lines_removed, r.title, sum(p.method == "error" for p in r.pages),
                sum(p.junk for p in r.pages), sum(p.rotation != 0 for p in r.pages),
            )  # fmt: skip
            ledger.metrics["pages_junk"] += meta.junk_pages
            docs.append(Document(answer.sha1, r.text, self.source, None, None, msgspec.Raw(ENCODER.encode(meta))))
            attributes.append(AttributeLine(answer.sha1, self._signals(answer, n_tokens, label[0], float(prob[0]))))
        out = io.join(self.output, task.key + ".jsonl.zst")
        with io.DocumentWriter(out) as writer:
            writer.write(docs)
        with io.AtomicWriter(io.attributes_url(out, self.attribute_set)) as writer:
            writer.write(ENCODER.encode_lines(attributes))

    def report(self) -> list[Section]:
        from pdf_extract.report import long_context_section

        return long_context_section(self)

    def _signals(self, answer: Answer, tokens: int, language: str, probability: float) -> dict[str, list]:
        """Document-level signals as one span over the text; page-level ones as one span per page."""
        r = answer.result
        n = len(r.text)
        chars = np.array([p.chars for p in r.pages], dtype=float)
        weights = chars / chars.sum() if chars.sum() else np.full(len(chars), 1 / len(chars))
        ends = r.page_offsets[1:] + [n]
        key = f"{self.attribute_set}__{TAGGER}__"
        out: dict[str, list] = {
            key + "pages": [[0, n, len(r.pages)]],
            key + "tokens": [[0, n, tokens]],
            key + "ocr_page_ratio": [[0, n, round(sum(p.method == "ocr" for p in r.pages) / len(r.pages), 4)]],
            key + "junk_page_ratio": [[0, n, round(sum(p.junk for p in r.pages) / len(r.pages), 4)]],
            key + f"lang_{language}": [[0, n, round(probability, 4)]],
        }
        for name in ("garbled", "alpha", "mean_line", "symbol_lines"):
            values = np.array([getattr(p, name) for p in r.pages], dtype=float)
            doc_key = "mean_line_length" if name == "mean_line" else f"{name}_ratio"
            out[key + doc_key] = [[0, n, round(float((values * weights).sum()), 4)]]
            out[key + "page_" + doc_key] = [
                [start, end, value] for start, end, value in zip(r.page_offsets, ends, values.tolist())
            ]
        ocr = [(s, e, p) for s, e, p in zip(r.page_offsets, ends, r.pages) if p.method == "ocr"]
        if ocr:
            out[key + "page_ocr"] = [[s, e, 1] for s, e, _ in ocr]
            out[key + "page_ocr_confidence"] = [[s, e, p.ocr_confidence] for s, e, p in ocr]
        return out
