"""A web page's bytes to main text: charset decoding and trafilatura, in a process that can be killed.

lxml parses in C, where no signal-based time limit reaches it: a 50 MB page or a pathological one would hold a
worker for ever. So pages go to an :class:`dolma.runtime.isolated.IsolatedWorker` child that decodes and
extracts them; a page that runs past the time limit or kills the child is answered with a reason and the next
page goes to a fresh child.

Decoding: a declared charset (the HTTP ``Content-Type``, then the HTML ``<meta>``) wins when it decodes the
page with at most a few errors (one stray byte must not turn a UTF-8 page into mojibake by handing it to a
guesser): the bytes it cannot decode are replaced and counted. Detection (charset-normalizer) is only for
pages with no declaration, an unknown one, or one that fails on many bytes.

Extraction (:func:`main_text`): trafilatura's balanced setting, comments excluded, tables kept. Measured on
trafilatura's 482 evaluation pages and the 92 pages of the article-extraction benchmark (``bench/web.py``), its
precision setting lost 2.7% of the must-contain snippets (short lead paragraphs, list items and headings at
the edges of the article) for 2.2% more boilerplate avoided; the balanced setting without comments finds more
main text than trafilatura's defaults and lets in less boilerplate, so it is the default and precision is an
option.
"""

from __future__ import annotations

import codecs
import re
import sys

import msgspec

from dolma.runtime.isolated import Failure, IsolatedWorker, serve

META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_\-:.]+)""", re.I)
FEW_ERRORS = 0.01  # a declared charset wins with up to this share of undecodable bytes (and at least 8)


class Options(msgspec.Struct, frozen=True):
    favor_precision: bool = False
    include_tables: bool = True
    include_comments: bool = False


class Page(msgspec.Struct):
    body: bytes
    url: str
    http_charset: str | None
    options: Options


class Extraction(msgspec.Struct):
    text: str | None = None
    charset: str = ""
    decode_errors: int = 0
    reason: str = ""  # set when extraction failed: extraction_error (and, from the parent, timeout, ...)
    error: str = ""


def decode(body: bytes, http_charset: str | None) -> tuple[str, str, int]:
    """(text, charset used, bytes replaced): a declared charset that decodes with few errors, else detection."""
    for charset in (http_charset, _meta_charset(body)):
        if not charset:
            continue
        try:
            return body.decode(charset), charset.lower(), 0
        except LookupError:
            continue
        except UnicodeDecodeError:
            text = body.decode(charset, errors="replace")
            utf8 = codecs.lookup(charset).name == "utf-8"
            errors = text.count("\ufffd") - (body.count("\ufffd".encode()) if utf8 else 0)
            if errors <= max(8, FEW_ERRORS * len(body)):
                return text, charset.lower(), max(errors, 1)
    from charset_normalizer import from_bytes

    best = from_bytes(body[:200_000]).best()
    charset = best.encoding if best else "utf-8"
    text = body.decode(charset, errors="replace")
    return text, charset, text.count("\ufffd")


def main_text(html: str, url: str | None, options: Options) -> str | None:
    """The page's main text as the ``web`` stage writes it (None: trafilatura found none)."""
    import trafilatura

    return trafilatura.extract(
        html,
        url=url,
        favor_precision=options.favor_precision,
        include_comments=options.include_comments,
        include_tables=options.include_tables,
        deduplicate=False,
        with_metadata=False,
    )


def _meta_charset(body: bytes) -> str | None:
    m = META_CHARSET.search(body[:4096])
    return m.group(1).decode("ascii", "replace") if m else None


def _serve() -> None:
    decoder, encoder = msgspec.msgpack.Decoder(Page), msgspec.msgpack.Encoder()

    def handle(frame: bytes) -> tuple[bytes, bool]:
        page = decoder.decode(frame)
        out = Extraction()
        try:
            html, out.charset, out.decode_errors = decode(page.body, page.http_charset)
            out.text = main_text(html, page.url, page.options)
        except MemoryError:
            out.reason, out.error = "memory_limit", "the page exhausted the extraction process's memory"
            return encoder.encode(out), False
        except Exception as e:  # trafilatura and lxml raise many kinds on hostile pages: answer, serve the next
            out.reason, out.error = "extraction_error", f"{type(e).__name__}: {e}"
        return encoder.encode(out), True

    serve(handle, int(sys.argv[1]) if len(sys.argv) > 1 else 0)


class Extractor:
    """Parent side: ``extract(page)`` always returns an :class:`Extraction`, never raises for a bad page."""

    def __init__(self, timeout: float, memory_mb: int):
        self._worker = IsolatedWorker("dolma.ingest.html", [str(memory_mb)], timeout)
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(Extraction)

    def extract(self, page: Page) -> Extraction:
        reply = self._worker.call(self._encoder.encode(page))
        if isinstance(reply, Failure):
            return Extraction(reason=reply.reason, error=reply.error)
        out = self._decoder.decode(reply)
        if out.reason == "memory_limit":
            self._worker.restart()
        return out

    def __enter__(self) -> Extractor:
        return self

    def __exit__(self, *exc) -> None:
        self._worker.close()


if __name__ == "__main__":
    _serve()
