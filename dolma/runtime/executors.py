"""Executors: map a picklable function over picklable tasks, on local processes or a Ray cluster.

An executor knows nothing of stages: :mod:`dolma.runtime.run` gives it ``run_task`` and the tasks that have no
completion marker yet, so any executor that can call a function on a task gets resume for free. Stages report
progress batch by batch through :func:`report_progress`; an executor whose workers cannot stream it says so
(``streams_progress``) and the runner counts each finished task instead.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


# ---------------------------------------------------------------------------------------------- progress
_progress_queue: mp.Queue | None = None


def report_progress(docs: int, nbytes: int) -> None:
    """Called by stages after each batch; a no-op unless an executor is listening."""
    if _progress_queue is not None:
        _progress_queue.put((docs, nbytes))


def _init_worker(q: mp.Queue | None, parent: int | None = None) -> None:
    global _progress_queue
    _progress_queue = q
    if parent is not None:
        _die_with(parent)


def _die_with(parent: int) -> None:
    """A worker is killed with its parent (Linux), so a killed run leaves no worker writing on behind it."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


@contextmanager
def _threads_per_worker(threads: int) -> Iterator[None]:
    """Spawned workers inherit the environment: cap the thread pools of the compiled libraries (tokenizers'
    and polars' Rayon pools, BLAS) so N workers do not each start one thread per core."""
    names = ("RAYON_NUM_THREADS", "POLARS_MAX_THREADS", "OMP_NUM_THREADS")
    saved = {n: os.environ.get(n) for n in names}
    for n in names:
        os.environ.setdefault(n, str(threads))
    try:
        yield
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)


class Executor(Protocol):
    workers: int
    streams_progress: bool  # whether report_progress calls in workers reach on_progress while tasks run

    def map(self, fn: Callable[[T], R], items: list[T], on_progress: Callable[[int, int], None]) -> Iterator[R]: ...


class LocalExecutor:
    """Runs tasks in ``workers`` spawned processes (default: all cores); with one worker, in this process."""

    streams_progress = True

    def __init__(self, workers: int | None = None):
        self.workers = max(1, workers or os.cpu_count() or 1)

    def map(self, fn: Callable[[T], R], items: list[T], on_progress: Callable[[int, int], None]) -> Iterator[R]:
        if not items:
            return
        ctx = mp.get_context("spawn")
        q = ctx.Queue() if self.workers > 1 else queue.Queue()
        stop = threading.Event()

        def drain() -> None:
            while not stop.is_set() or not q.empty():
                try:
                    on_progress(*q.get(timeout=0.1))
                except queue.Empty:
                    continue

        listener = threading.Thread(target=drain, daemon=True)
        listener.start()
        try:
            if self.workers == 1:
                _init_worker(q)
                try:
                    yield from map(fn, items)
                finally:
                    _init_worker(None)
            else:
                with _threads_per_worker(max(1, (os.cpu_count() or 1) // self.workers)):
                    pool = ctx.Pool(min(self.workers, len(items)), initializer=_init_worker, initargs=(q, os.getpid()))
                with pool:
                    yield from pool.imap_unordered(fn, items)
        finally:
            stop.set()
            listener.join()


def _run_on_ray(fn: Callable[[T], R], item: T) -> R:
    return fn(item)


class RayExecutor:
    """Runs each task as a Ray task (one CPU each) on a Ray cluster: ``address`` None starts a local one on this
    machine with ``workers`` CPUs; ``"auto"`` or ``"host:port"`` joins a running cluster (``ray start``).

    A task whose worker process or node dies is retried up to ``max_retries`` times; a task that raises is not
    (the error is in the data or the code, and a retry would fail the same way). Completion markers make a
    retried or rerun task idempotent exactly as with the local executor, so outputs are the same bytes.
    Every node needs this package installed and the data at the same URLs (object storage, or a shared file
    system for local paths)."""

    streams_progress = False  # Ray tasks report when they finish, not batch by batch

    def __init__(self, address: str | None = None, workers: int | None = None, max_retries: int = 3):
        self.address = address
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.max_retries = max_retries

    def _connect(self):
        import ray

        if not ray.is_initialized():
            threads = {n: "1" for n in ("RAYON_NUM_THREADS", "POLARS_MAX_THREADS", "OMP_NUM_THREADS")}
            ray.init(
                address=self.address,
                num_cpus=self.workers if self.address is None else None,
                include_dashboard=False,
                log_to_driver=True,
                runtime_env={"env_vars": threads},
            )
        return ray

    def map(self, fn: Callable[[T], R], items: list[T], on_progress: Callable[[int, int], None]) -> Iterator[R]:
        if not items:
            return
        ray = self._connect()
        remote = ray.remote(num_cpus=1, max_retries=self.max_retries, retry_exceptions=False)(_run_on_ray)
        pending = [remote.remote(fn, item) for item in items]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
