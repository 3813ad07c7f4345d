"""An isolated PDF extraction process, and the client that feeds it one PDF at a time.

The process and its time and memory limits are :mod:`dolma.runtime.isolated`'s: a PDF that hangs MuPDF,
exhausts the memory limit or kills the process is answered with a reason, the process is replaced, and the next
PDF goes on. Requests and answers are msgpack.
"""

from __future__ import annotations

import sys

import msgspec

from dolma.runtime.isolated import Failure, IsolatedWorker, serve
from pdf_extract.answer import OUT_OF_MEMORY, Extracted, Options


class Request(msgspec.Struct):
    url: str
    options: Options


class Answer(msgspec.Struct):
    sha1: str = ""
    size: int = 0
    result: Extracted = msgspec.field(default_factory=Extracted)


def _serve(memory_mb: int) -> None:
    import hashlib

    import pymupdf

    from pdf_extract.extract import extract

    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.mupdf_display_warnings(False)
    decoder, encoder = msgspec.msgpack.Decoder(Request), msgspec.msgpack.Encoder()

    def handle(frame: bytes) -> tuple[bytes, bool]:
        request = decoder.decode(frame)
        answer = Answer()
        try:
            if "://" in request.url:
                import smart_open  # only for remote URLs: importing it costs a fresh worker 0.4 s

                with smart_open.open(request.url, "rb", compression="disable") as f:
                    data = f.read()
            else:
                with open(request.url, "rb") as f:
                    data = f.read()
            answer.sha1, answer.size = hashlib.sha1(data).hexdigest(), len(data)
            answer.result = extract(data, request.options)
            del data
        except MemoryError:
            answer.result = Extracted(reason="memory_limit", error=f"over the worker's {memory_mb} MiB limit")
        except Exception as e:  # anything else a hostile file triggers: answer it, serve the next
            text = f"{type(e).__name__}: {e}"
            reason = "memory_limit" if OUT_OF_MEMORY.search(text) else "error"
            answer.result = Extracted(reason=reason, error=text)
        # after a memory error the heap may be left in a bad state: the process ends and a fresh one follows
        return encoder.encode(answer), answer.result.reason != "memory_limit"

    serve(handle, memory_mb)


class PdfWorker:
    """Client side: ``extract(url, options)`` always returns an answer, never raises for a bad PDF."""

    def __init__(self, timeout: float, memory_mb: int):
        self.memory_mb = memory_mb
        env = {"OMP_THREAD_LIMIT": "1"}  # one Tesseract thread per worker
        self._worker = IsolatedWorker("pdf_extract.worker", [str(memory_mb)], timeout, env)
        self._decoder = msgspec.msgpack.Decoder(Answer)
        self._encoder = msgspec.msgpack.Encoder()

    @property
    def timeout(self) -> float:
        return self._worker.timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        self._worker.timeout = seconds

    def extract(self, url: str, options: Options) -> Answer:
        reply = self._worker.call(self._encoder.encode(Request(url, options)))
        if isinstance(reply, Failure):
            return Answer(result=Extracted(reason=reply.reason, error=reply.error))
        answer = self._decoder.decode(reply)
        if answer.result.reason == "memory_limit":  # the worker exits after it: the next PDF gets a fresh one
            self._worker.restart()
        return answer

    def close(self) -> None:
        self._worker.close()

    def __enter__(self) -> PdfWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
