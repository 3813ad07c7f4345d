"""The ``web`` stage: WARC files (or folders of loose ``.html`` files) to Dolma documents with trafilatura.

Every WARC record is accounted for: HTTP 200 HTML responses become documents; requests, metadata, warcinfo,
revisits, redirects and other statuses, non-HTML responses, truncated records and pages with no main text are
dropped with their reason; a record that cannot be parsed or whose extraction runs past ``timeout`` seconds is
quarantined, and the rest of the file still goes through.

Decoding follows the HTTP ``Content-Type`` charset, then the HTML ``<meta charset>``, then detection
(charset-normalizer); undecodable bytes are replaced, never fatal.

Extraction favours precision (``favor_precision=True``, comments excluded, tables kept): pretraining text
suffers more from navigation, cookie banners and link lists leaking in than from losing a marginal paragraph, and
the quality taggers downstream cannot tell boilerplate inside a document apart from content.
"""

from __future__ import annotations

import io as stdio
import os
import re
import signal
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import msgspec
import trafilatura

from dolma import io
from dolma.core.config import param
from dolma.core.document import ENCODER, Document
from dolma.core.errors import UserError
from dolma.runtime.executors import report_progress
from dolma.runtime.ledger import ShardLedger
from dolma.runtime.stage import Files, Shard, Stage, Task

WARC_SUFFIXES = (".warc", ".warc.gz", ".arc", ".arc.gz")
HTML_SUFFIXES = (".html", ".htm", ".html.gz", ".htm.gz")
META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_\-:.]+)""", re.I)


class WebMetadata(msgspec.Struct, omit_defaults=True):
    url: str
    domain: str
    source_file: str
    offset: int | None = None
    content_type: str | None = None
    http_charset: str | None = None
    charset: str = ""
    extractor: str = ""


class ExtractionTimeout(Exception):
    pass


@contextmanager
def time_limit(seconds: float):
    """Interrupt the block after ``seconds`` (SIGALRM: workers run tasks in their main thread)."""

    def expire(signum, frame):
        raise ExtractionTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def decode(body: bytes, http_charset: str | None) -> tuple[str, str]:
    """(text, charset used): the HTTP charset, then the meta tag, then detection."""
    for charset in (http_charset, _meta_charset(body)):
        if charset:
            try:
                return body.decode(charset), charset.lower()
            except (LookupError, UnicodeDecodeError):
                continue
    from charset_normalizer import from_bytes

    best = from_bytes(body[:200_000]).best()
    charset = best.encoding if best else "utf-8"
    return body.decode(charset, errors="replace"), charset


def _meta_charset(body: bytes) -> str | None:
    m = META_CHARSET.search(body[:4096])
    return m.group(1).decode("ascii", "replace") if m else None


def _http_charset(content_type: str | None) -> str | None:
    m = re.search(r"charset=([^;\s]+)", content_type or "", re.I)
    return m.group(1).strip("\"'") if m else None


@dataclass
class WebStage(Stage):
    input: str = param(help="glob or folder of .warc(.gz) and/or .html files")
    output: str = param(help="output documents folder")
    source: str = param("web", "the documents' source field")
    timeout: float = param(10.0, "seconds allowed per page")
    favor_precision: bool = param(True, "trafilatura's precision setting (less boilerplate, may lose text)")
    include_tables: bool = param(True, "keep the text of tables")
    include_comments: bool = param(False, "keep comment sections")
    min_chars: int = param(1, "extracted text shorter than this is dropped as no_main_text")
    name: str = param("web", "the stage's name in the ledger (unique in a recipe)")

    def __post_init__(self) -> None:
        io.refuse_output_in_input(self.input, self.output, self.name)

    def tasks(self) -> list[Task]:
        files = [f for f in io.list_files(self.input) if f.endswith(WARC_SUFFIXES + HTML_SUFFIXES)]
        if not files:
            raise UserError(f"no WARC or HTML files match {self.input!r}")
        warcs = [Task(_key(f, self.input), Shard(f)) for f in files if f.endswith(WARC_SUFFIXES)]
        folders: dict[str, list[str]] = {}
        for f in files:  # loose HTML: one task per folder
            if f.endswith(HTML_SUFFIXES):
                folders.setdefault(os.path.dirname(io.relative_to_root(f, self.input)) or "html", []).append(f)
        html = [Task(folder.replace("/", "_") + "-html", Files(tuple(fs))) for folder, fs in sorted(folders.items())]
        return warcs + html

    def run(self, task: Task, ledger: ShardLedger) -> None:
        with io.DocumentWriter(io.join(self.output, task.key + ".jsonl.zst")) as out:
            if isinstance(task.payload, Shard):
                records = self._warc_records(task.payload.url, ledger)
            else:
                records = self._html_records(task.payload.urls, ledger)
            batch: list[Document] = []
            for number, record_id, body, meta, created in records:
                doc = self._document(number, record_id, body, meta, created, ledger)
                if doc is not None:
                    batch.append(doc)
                if len(batch) >= 256:
                    out.write(batch)
                    report_progress(len(batch), sum(len(d.text) for d in batch))
                    batch = []
            out.write(batch)
            report_progress(len(batch), sum(len(d.text) for d in batch))

    def _document(self, number, record_id, body, meta: WebMetadata, created, ledger) -> Document | None:
        try:
            html, meta.charset = decode(body, meta.http_charset)
            with time_limit(self.timeout):
                text = trafilatura.extract(
                    html,
                    url=meta.url,
                    favor_precision=self.favor_precision,
                    include_comments=self.include_comments,
                    include_tables=self.include_tables,
                    deduplicate=False,
                    with_metadata=False,
                )
        except ExtractionTimeout:
            ledger.quarantined(
                meta.source_file,
                [io.Rejected(number, "extraction_timeout", f"{meta.url}: over {self.timeout} s", id=record_id)],
            )
            return None
        except Exception as e:  # trafilatura and lxml raise many kinds on hostile pages: quarantine, go on
            ledger.quarantined(
                meta.source_file,
                [io.Rejected(number, "extraction_error", f"{meta.url}: {type(e).__name__}: {e}", id=record_id)],
            )
            return None
        if not text or len(text.strip()) < self.min_chars:
            ledger.dropped(meta.source_file, [number], [record_id], "no_main_text")
            return None
        ledger.kept(meta.source_file, [number], [record_id])
        meta.extractor = f"trafilatura {trafilatura.__version__}"
        return Document(record_id, text, self.source, None, created, msgspec.Raw(ENCODER.encode(meta)))

    def _warc_records(self, url: str, ledger: ShardLedger):
        """(record number, id, body, metadata, created) of HTML responses; everything else is accounted here."""
        from fastwarc.warc import WarcRecordType

        source_file = url
        number = 0
        if url.endswith((".arc", ".arc.gz")):
            ledger.read += 1
            ledger.quarantined(url, [io.Rejected(1, "unsupported_format", "ARC files are not read (WARC only)")])
            return
        for record, offset, error in _records(url):
            number += 1
            ledger.read += 1
            if error:
                ledger.quarantined(url, [io.Rejected(number, "malformed_record", f"at byte {offset}: {error}")])
                continue
            record_id = (record.record_id or f"{url}#{number}").strip("<>").removeprefix("urn:uuid:")
            kind = str(record.record_type).rsplit(".", 1)[-1]
            if kind in ("unknown", "no_type"):  # fastwarc's verdict on an unparsable header
                ledger.quarantined(url, [io.Rejected(number, "malformed_record", f"at byte {offset}: no WARC-Type")])
                continue
            if record.record_type != WarcRecordType.response:
                ledger.dropped(url, [number], [record_id], f"record_type:{kind}")
                continue
            if record.headers.get("WARC-Truncated"):
                ledger.dropped(url, [number], [record_id], "truncated")
                continue
            http = record.http_headers
            if http is None:
                ledger.dropped(url, [number], [record_id], "not_http")
                continue
            if http.status_code != 200:
                ledger.dropped(url, [number], [record_id], f"http_status:{http.status_code // 100}xx")
                continue
            body = record.reader.read()
            content_type = http.get("Content-Type")
            if not _is_html(content_type, body):
                ledger.dropped(url, [number], [record_id], "not_html")
                continue
            target = record.headers.get("WARC-Target-URI", "").strip("<>")
            meta = WebMetadata(
                target, urlsplit(target).hostname or "", source_file, offset, content_type, _http_charset(content_type)
            )
            yield number, record_id, body, meta, record.headers.get("WARC-Date")

    def _html_records(self, files: tuple[str, ...], ledger: ShardLedger):
        for path in files:
            ledger.read += 1
            with io.open_url(path, "rb") as f:
                body = f.read()
            url = "file://" + os.path.abspath(path) if not io.is_remote(path) else path
            record_id = io.strip_suffix(os.path.basename(path)).removesuffix(".html").removesuffix(".htm")
            yield 1, record_id, body, WebMetadata(url, "", path), None


SNIFF_HTML = re.compile(rb"<(?:!doctype html|html|head|body|div|p|table|span|a)\b", re.I)


def _records(url: str):
    """(record, byte offset, error) for every record of a WARC file.

    A ``.warc.gz`` holds one gzip member per record: members are read one at a time, so a malformed record is
    reported (with error) and reading resumes at the next member. In a plain ``.warc`` a malformed record ends
    what can be read; the rest of the file is reported as one error."""
    from fastwarc.warc import ArchiveIterator

    with io.open_url(url, "rb", compression="disable") as f:
        if not url.endswith(".gz"):
            offset = 0
            try:
                for record in ArchiveIterator(f, parse_http=True):
                    offset = record.stream_pos
                    yield record, offset, None
            except Exception as e:  # fastwarc raises on a malformed header
                yield None, offset, f"{type(e).__name__}: {e}; the rest of the file is unreadable"
            return
        offset, pending = 0, b""
        while True:
            member, consumed, pending, error = _next_member(f, pending)
            if member is None and error is None:
                return
            if error is None:  # the member's records are read while iterating (their readers are live then)
                seen = 0
                try:
                    for record in ArchiveIterator(stdio.BytesIO(member), parse_http=True):
                        seen += 1
                        yield record, offset, None
                    if not seen:
                        error = "no WARC record in this gzip member"
                except Exception as e:
                    error = f"{type(e).__name__}: {e}"
            if error is not None:
                yield None, offset, error
                if consumed == 0:
                    return
            offset += consumed


def _next_member(f, pending: bytes) -> tuple[bytes | None, int, bytes, str | None]:
    """The next gzip member of a stream: (decompressed bytes, compressed size, unread bytes, error)."""
    decomp = zlib.decompressobj(wbits=31)
    out, consumed = [], 0
    data = pending or f.read(1 << 20)
    if not data:
        return None, 0, b"", None
    while True:
        try:
            out.append(decomp.decompress(data))
        except zlib.error as e:
            rest = f.read()  # a corrupt member: give up on the rest of this file
            return None, 0, b"", f"corrupt gzip member ({e}); {len(data) + len(rest)} bytes left unread"
        if decomp.eof:
            used = len(data) - len(decomp.unused_data)
            return b"".join(out), consumed + used, decomp.unused_data, None
        consumed += len(data)
        data = f.read(1 << 20)
        if not data:
            return None, 0, b"", "truncated gzip member at the end of the file"


def _is_html(content_type: str | None, body: bytes) -> bool:
    """The Content-Type says so, or, without one, the first kilobyte looks like HTML."""
    if content_type:
        return "html" in content_type.lower()
    return SNIFF_HTML.search(body[:1024]) is not None


def _key(path: str, pattern: str) -> str:
    return io.relative_to_root(path, pattern).removesuffix(".gz")  # x.warc.gz -> x.warc (x.arc stays apart)
