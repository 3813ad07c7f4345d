"""An isolated PDF extraction process, and the client that feeds it one PDF at a time.

The worker is a separate Python process (started with ``subprocess``, so it works under any executor, daemonic
pool workers and Ray actors included) with an address-space limit. The client waits for each answer at most
``timeout`` seconds; a PDF that hangs MuPDF, exhausts the memory limit or kills the process is answered with a
reason, the process is replaced, and the next PDF goes on.

Messages are length-prefixed msgpack frames on a private pipe; the worker's own stdout is pointed at stderr so
nothing MuPDF prints can corrupt them.
"""

from __future__ import annotations

import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time

import msgspec

from pdf_extract.extract import OUT_OF_MEMORY, Extracted, Options

HEADER = struct.Struct("<I")


class Request(msgspec.Struct):
    url: str
    options: Options


class Answer(msgspec.Struct):
    sha1: str = ""
    size: int = 0
    result: Extracted = msgspec.field(default_factory=Extracted)


def _read_exactly(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _serve(memory_mb: int) -> None:
    import hashlib
    import resource

    import pymupdf

    from pdf_extract.extract import extract

    if memory_mb > 0:
        limit = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.mupdf_display_warnings(False)
    requests, answers = sys.stdin.buffer.fileno(), os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    decoder, encoder = msgspec.msgpack.Decoder(Request), msgspec.msgpack.Encoder()
    while True:
        try:
            (n,) = HEADER.unpack(_read_exactly(requests, HEADER.size))
        except EOFError:
            return
        request = decoder.decode(_read_exactly(requests, n))
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
        frame = encoder.encode(answer)
        os.write(answers, HEADER.pack(len(frame)) + frame)
        if answer.result.reason == "memory_limit":
            return  # the heap may be left in a bad state: let the client start a fresh process


class PdfWorker:
    """Client side: ``extract(url, options)`` always returns an answer, never raises for a bad PDF."""

    def __init__(self, timeout: float, memory_mb: int):
        self.timeout = timeout
        self.memory_mb = memory_mb
        self._proc: subprocess.Popen | None = None
        self._stderr = None
        self._decoder = msgspec.msgpack.Decoder(Answer)
        self._encoder = msgspec.msgpack.Encoder()

    def _start(self) -> subprocess.Popen:
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "pdf_extract.worker", str(self.memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env={**os.environ, "OMP_THREAD_LIMIT": "1"},  # one Tesseract thread per worker
        )
        return self._proc

    def extract(self, url: str, options: Options) -> Answer:
        proc = self._proc if self._proc and self._proc.poll() is None else self._start()
        frame = self._encoder.encode(Request(url, options))
        try:
            proc.stdin.write(HEADER.pack(len(frame)) + frame)
            proc.stdin.flush()
            deadline = time.monotonic() + self.timeout
            fd = proc.stdout.fileno()
            if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                self._kill()
                return Answer(result=Extracted(reason="timeout", error=f"no answer within {self.timeout:g} s"))
            (n,) = HEADER.unpack(_read_exactly(fd, HEADER.size))
            answer = self._decoder.decode(_read_exactly(fd, n))
            if answer.result.reason == "memory_limit":  # the worker exits after it: wait, so the next PDF
                proc.wait()  # starts a fresh one instead of writing to a dying process
                self._proc = None
            return answer
        except (EOFError, BrokenPipeError):
            code = proc.wait()
            why = f"killed by signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            self._stderr.seek(0)
            tail = self._stderr.read()[-300:].decode("utf-8", "replace").strip()
            self._proc = None
            return Answer(result=Extracted(reason="worker_crashed", error=f"worker {why}; {tail}".strip("; ")))

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._kill()
        self._proc = None

    def __enter__(self) -> PdfWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
