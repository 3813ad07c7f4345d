"""The ``web`` stage: WARC files (or folders of loose ``.html`` files) to Dolma documents with trafilatura.

Every WARC record is accounted for: HTTP 200 HTML responses become documents; requests, metadata, warcinfo,
revisits, redirects and other statuses, non-HTML responses, truncated records, pages over ``max_page_mb`` and
pages with no main text are dropped with their reason; a record that cannot be read or parsed, and a page whose
extraction runs past ``timeout`` seconds or crashes its process, is quarantined, and the rest of the file still
goes through (:mod:`dolma.ingest.warc` reads records one at a time, :mod:`dolma.ingest.html` decodes and
extracts in a process that can be killed). A loose page that cannot be read is quarantined and its folder goes on.

Extraction uses trafilatura's balanced setting with comments excluded and tables kept
(:func:`dolma.ingest.html.main_text`, where the measurement behind the choice is): it finds more of a page's
main text than trafilatura's defaults and lets in less boilerplate. ``favor_precision`` trades about 3% of the
main text for about 2% less boilerplate.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import msgspec

from dolma import io
from dolma.core.config import param
from dolma.core.document import ENCODER, Document
from dolma.core.errors import UserError
from dolma.ingest.html import Extractor, Options, Page
from dolma.ingest.warc import Unreadable, records
from dolma.io.streams import Damage, chunks
from dolma.runtime.executors import report_progress
from dolma.runtime.ledger import ShardLedger
from dolma.runtime.stage import Files, Shard, Stage, Task, pack_by_size

TRAFILATURA = importlib.metadata.version("trafilatura")  # the parent never imports it: extraction is in a child
WARC_SUFFIXES = (".warc", ".warc.gz", ".arc", ".arc.gz")
HTML_SUFFIXES = (".html", ".htm", ".html.gz", ".htm.gz")


class WebMetadata(msgspec.Struct, omit_defaults=True):
    url: str
    domain: str
    source_file: str
    offset: int | None = None
    content_type: str | None = None
    http_charset: str | None = None
    charset: str = ""
    decode_errors: int = 0
    extractor: str = ""


def _http_charset(content_type: str | None) -> str | None:
    m = re.search(r"charset=([^;\s]+)", content_type or "", re.I)
    return m.group(1).strip("\"'") if m else None


@dataclass
class WebStage(Stage):
    input: str = param(help="glob or folder of .warc(.gz) and/or .html files")
    output: str = param(help="output documents folder")
    source: str = param("web", "the documents' source field")
    timeout: float = param(10.0, "seconds allowed per page (its process is killed past it)", gt=0)
    max_page_mb: float = param(10.0, "pages larger than this (MB) are dropped as oversize, unparsed", gt=0)
    memory_mb: int = param(2048, "address-space limit of the extraction process (MiB; 0: none)", ge=0)
    favor_precision: bool = param(False, "trafilatura's precision setting (less boilerplate, loses ~3% of main text)")
    include_tables: bool = param(True, "keep the text of tables")
    include_comments: bool = param(False, "keep comment sections")
    min_chars: int = param(1, "extracted text shorter than this is dropped as no_main_text", ge=0)
    task_mb: float = param(
        4.0, "loose HTML bytes per task (MB): a folder of pages is split to keep every worker busy", gt=0
    )
    name: str = param("web", "the stage's name in the ledger (unique in a recipe)")

    def __post_init__(self) -> None:
        io.refuse_output_in_input(self.input, self.output, self.name)

    def tasks(self) -> list[Task]:
        files = [f for f in io.list_files(self.input) if f.endswith(WARC_SUFFIXES + HTML_SUFFIXES)]
        if not files:
            raise UserError(f"no WARC or HTML files match {self.input!r}")
        warcs = [Task(_key(f, self.input), Shard(f)) for f in files if f.endswith(WARC_SUFFIXES)]
        folders: dict[str, list[str]] = {}
        for f in files:  # loose HTML: tasks of about task_mb per folder
            if f.endswith(HTML_SUFFIXES):
                folders.setdefault(os.path.dirname(io.relative_to_root(f, self.input)) or "html", []).append(f)
        html = []
        for folder, fs in sorted(folders.items()):
            groups = pack_by_size(fs, self.task_mb * 1e6, 10_000)
            for k, group in enumerate(groups):
                suffix = "" if len(groups) == 1 else f"-{k:05d}"
                html.append(Task(folder.replace("/", "_") + "-html" + suffix, Files(tuple(group))))
        return warcs + html

    def task_basis(self, tasks: list[Task]) -> str:
        warcs = sum(isinstance(t.payload, Shard) for t in tasks)
        pages = sum(len(t.payload.urls) for t in tasks if isinstance(t.payload, Files))
        parts = [f"one per WARC file ({warcs:,})"] if warcs else []
        if pages:
            groups = len(tasks) - warcs
            parts.append(f"{pages:,} loose HTML pages in {groups:,} groups of about {self.task_mb:g} MB (task_mb)")
        return ", ".join(parts)

    def run(self, task: Task, ledger: ShardLedger) -> None:
        options = Options(self.favor_precision, self.include_tables, self.include_comments)
        out_url = io.join(self.output, task.key + ".jsonl.zst")
        with io.DocumentWriter(out_url) as out, Extractor(self.timeout, self.memory_mb) as extractor:
            if isinstance(task.payload, Shard):
                pages = self._warc_records(task.payload.url, ledger)
            else:
                pages = self._html_records(task.payload.urls, ledger)
            batch: list[Document] = []
            for number, record_id, body, meta, created in pages:
                doc = self._document(extractor, options, number, record_id, body, meta, created, ledger)
                if doc is not None:
                    batch.append(doc)
                if len(batch) >= 256:
                    out.write(batch)
                    report_progress(len(batch), sum(len(d.text) for d in batch))
                    batch = []
            out.write(batch)
            report_progress(len(batch), sum(len(d.text) for d in batch))

    def _document(self, extractor, options, number, record_id, body, meta: WebMetadata, created, ledger):
        """The page as a document, or None with its outcome in the ledger."""
        if len(body) > self.max_page_mb * 1e6:
            detail = f"{len(body)} bytes, over max_page_mb {self.max_page_mb:g}"
            ledger.dropped(meta.source_file, [number], [record_id], "oversize", detail)
            return None
        got = extractor.extract(Page(body, meta.url, meta.http_charset, options))
        if got.reason:
            reason = {"timeout": "extraction_timeout"}.get(got.reason, got.reason)
            rejected = io.Rejected(number, reason, f"{meta.url}: {got.error}", id=record_id, size=len(body))
            ledger.quarantined(meta.source_file, [rejected])
            return None
        meta.charset, meta.decode_errors = got.charset, got.decode_errors
        text = got.text
        if not text or len(text.strip()) < self.min_chars:
            ledger.dropped(meta.source_file, [number], [record_id], "no_main_text")
            return None
        ledger.kept(meta.source_file, [number], [record_id])
        meta.extractor = f"trafilatura {TRAFILATURA}"
        return Document(record_id, text, self.source, None, created, msgspec.Raw(ENCODER.encode(meta)))

    def _warc_records(self, url: str, ledger: ShardLedger):
        """(record number, id, body, metadata, created) of HTML responses; everything else is accounted here."""
        if url.endswith((".arc", ".arc.gz")):
            ledger.read += 1
            ledger.quarantined(url, [io.Rejected(1, "unsupported_format", "ARC files are not read (WARC only)")])
            return
        for number, item in enumerate(records(url), 1):
            ledger.read += 1
            if isinstance(item, Unreadable):
                error = f"at byte {item.offset}: {item.error}"
                ledger.quarantined(url, [io.Rejected(number, "malformed_record", error)])
                continue
            offset, record = item
            try:
                page = _page(url, number, offset, record, ledger)
            except Exception as e:  # a record fastwarc parsed but cannot give (a bad payload encoding, ...)
                error = f"at byte {offset}: {type(e).__name__}: {e}"
                ledger.quarantined(url, [io.Rejected(number, "malformed_record", error)])
                continue
            if page is not None:
                yield page

    def _html_records(self, files: tuple[str, ...], ledger: ShardLedger):
        """Each loose page; one that cannot be read whole (missing, cut .gz) is quarantined, the rest go on."""
        for path in files:
            ledger.read += 1
            record_id = io.strip_suffix(os.path.basename(path)).removesuffix(".html").removesuffix(".htm")
            try:
                parts = list(chunks(path))
            except OSError as e:
                ledger.quarantined(path, [io.Rejected(1, "unreadable_file", f"{type(e).__name__}: {e}", id=record_id)])
                continue
            damage = next((p for p in parts if isinstance(p, Damage)), None)
            if damage is not None:
                ledger.quarantined(path, [io.Rejected(1, "corrupt_stream", damage.error, id=record_id)])
                continue
            url = "file://" + os.path.abspath(path) if not io.is_remote(path) else path
            yield 1, record_id, b"".join(parts), WebMetadata(url, "", path), None


def _page(url: str, number: int, offset: int, record, ledger: ShardLedger):
    """(number, id, body, metadata, created) of an HTML response record, or None with its outcome recorded."""
    from fastwarc.warc import WarcRecordType

    record_id = (record.record_id or f"{url}#{number}").strip("<>").removeprefix("urn:uuid:")
    kind = str(record.record_type).rsplit(".", 1)[-1]
    if kind in ("unknown", "no_type"):  # fastwarc's verdict on an unparsable header
        ledger.quarantined(url, [io.Rejected(number, "malformed_record", f"at byte {offset}: no WARC-Type")])
        return None
    if record.record_type != WarcRecordType.response:
        ledger.dropped(url, [number], [record_id], f"record_type:{kind}")
        return None
    if record.headers.get("WARC-Truncated"):
        ledger.dropped(url, [number], [record_id], "truncated")
        return None
    http = record.http_headers
    if http is None:
        ledger.dropped(url, [number], [record_id], "not_http")
        return None
    if http.status_code is None:
        error = f"at byte {offset}: a response without an HTTP status line"
        ledger.quarantined(url, [io.Rejected(number, "malformed_record", error, id=record_id)])
        return None
    if http.status_code != 200:
        ledger.dropped(url, [number], [record_id], f"http_status:{http.status_code // 100}xx")
        return None
    body = record.reader.read()
    content_type = http.get("Content-Type")
    if not _is_html(content_type, body):
        ledger.dropped(url, [number], [record_id], "not_html")
        return None
    target = record.headers.get("WARC-Target-URI", "").strip("<>")
    meta = WebMetadata(target, urlsplit(target).hostname or "", url, offset, content_type, _http_charset(content_type))
    return number, record_id, body, meta, record.headers.get("WARC-Date")


SNIFF_HTML = re.compile(rb"<(?:!doctype html|html|head|body|div|p|table|span|a)\b", re.I)


def _is_html(content_type: str | None, body: bytes) -> bool:
    """The Content-Type says so, or, without one, the first kilobyte looks like HTML."""
    if content_type:
        return "html" in content_type.lower()
    return SNIFF_HTML.search(body[:1024]) is not None


def _key(path: str, pattern: str) -> str:
    return io.relative_to_root(path, pattern).removesuffix(".gz")  # x.warc.gz -> x.warc (x.arc stays apart)
