"""Work that C code may hang or crash, done in a separate process that can be killed.

A signal-based time limit cannot interrupt a C library (lxml parsing a 50 MB page, MuPDF on a hostile PDF): the
handler runs only when control returns to Python. So such work goes to a child Python process (started with
``subprocess``, so it works under any executor: pool workers, Ray actors) under an address-space limit, and the
parent waits for each answer at most ``timeout`` seconds. A request that runs past it, exhausts the memory
limit or kills the process is answered with a :class:`Failure`; the process is replaced and the next request
goes on.

Messages are length-prefixed frames on the child's stdin and stdout; the child's own stdout is pointed at
stderr so nothing a library prints can corrupt them. :func:`serve` is the child's loop around a handler,
:class:`IsolatedWorker` the parent's side.
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
from collections.abc import Callable
from dataclasses import dataclass

HEADER = struct.Struct("<I")


@dataclass(frozen=True)
class Failure:
    """Why a request got no answer: ``timeout`` or ``worker_crashed`` (with the signal or exit code)."""

    reason: str
    error: str


def _read_exactly(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def serve(handle: Callable[[bytes], tuple[bytes, bool]], memory_mb: int) -> None:
    """The child's loop: read a request, answer ``handle(request)``'s bytes; its flag False ends the process
    after that answer (a heap left in a bad state by a memory error), so the parent starts a fresh one."""
    if memory_mb > 0:
        import resource

        limit = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    requests, answers = sys.stdin.buffer.fileno(), os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    while True:
        try:
            (n,) = HEADER.unpack(_read_exactly(requests, HEADER.size))
        except EOFError:
            return
        answer, go_on = handle(_read_exactly(requests, n))
        os.write(answers, HEADER.pack(len(answer)) + answer)
        if not go_on:
            return


class IsolatedWorker:
    """The parent's side: ``call(request)`` returns the child's answer bytes or a Failure, never raises for
    what the request does to the child. The child is ``python -m <module> <args>`` and is started on first
    use and after every failure."""

    def __init__(self, module: str, args: list[str], timeout: float, env: dict[str, str] | None = None):
        self.command = [sys.executable, "-m", module, *args]
        self.timeout = timeout
        self.env = {**os.environ, **(env or {})}
        self._proc: subprocess.Popen | None = None
        self._stderr = None

    def _start(self) -> subprocess.Popen:
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=self.env
        )
        return self._proc

    def call(self, request: bytes) -> bytes | Failure:
        proc = self._proc if self._proc and self._proc.poll() is None else self._start()
        try:
            proc.stdin.write(HEADER.pack(len(request)) + request)
            proc.stdin.flush()
            deadline = time.monotonic() + self.timeout
            fd = proc.stdout.fileno()
            if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                self._kill()
                return Failure("timeout", f"no answer within {self.timeout:g} s")
            (n,) = HEADER.unpack(_read_exactly(fd, HEADER.size))
            return _read_exactly(fd, n)
        except (EOFError, BrokenPipeError):
            code = proc.wait()
            why = f"killed by signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            self._stderr.seek(0)
            tail = self._stderr.read()[-300:].decode("utf-8", "replace").strip()
            self._proc = None
            return Failure("worker_crashed", f"worker {why}; {tail}".strip("; "))

    def restart(self) -> None:
        """Wait for a child that said it ends after its answer, so the next call starts a fresh one."""
        if self._proc is not None:
            self._proc.wait()
            self._proc = None

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

    def __enter__(self) -> IsolatedWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
