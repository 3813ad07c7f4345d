"""Executors: map a picklable function over picklable tasks, on local processes (here) or a Ray cluster
(:mod:`dolma.runtime.cluster`).

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
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Protocol, TypeVar

from dolma.core.errors import DataError

T = TypeVar("T")
R = TypeVar("R")


# ---------------------------------------------------------------------------------------------- progress
_progress_queue: mp.Queue | None = None
_PROGRESS, _STARTED = 0, 1  # the kinds of message a worker sends


def report_progress(docs: int, nbytes: int) -> None:
    """Called by stages after each batch; a no-op unless an executor is listening."""
    if _progress_queue is not None:
        _progress_queue.put((_PROGRESS, docs, nbytes))


def _init_worker(q: mp.Queue | None, parent: int | None = None) -> None:
    global _progress_queue
    _progress_queue = q
    if parent is not None:
        _die_with(parent)


def _call(fn: Callable[[T], R], index: int, item: T) -> R:
    """Run one task in a worker, first saying which task this worker process now runs."""
    if _progress_queue is not None:
        _progress_queue.put((_STARTED, index, os.getpid()))
    return fn(item)


def _die_with(parent: int) -> None:
    """A worker is killed with its parent (Linux), so a killed run leaves no worker writing on behind it."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


THREAD_VARIABLES = ("RAYON_NUM_THREADS", "POLARS_MAX_THREADS", "OMP_NUM_THREADS")  # compiled libraries' pools


@contextmanager
def _threads_per_worker(threads: int) -> Iterator[None]:
    """Spawned workers inherit the environment: cap the thread pools of the compiled libraries (tokenizers'
    and polars' Rayon pools, BLAS) so N workers do not each start one thread per core."""
    saved = {n: os.environ.get(n) for n in THREAD_VARIABLES}
    for n in THREAD_VARIABLES:
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

    def check_reachable(self, folder: str) -> None:
        """Raise a UserError if some worker could not read and write ``folder`` as the caller does."""

    def close(self) -> None:
        """Release what the executor kept between stages (a warm pool of workers); it may be used again."""


class WorkerDied(DataError):
    """A task whose worker process was killed (by a signal, or exited) every time it was tried."""


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = (
            " (the kernel's out-of-memory killer sends it: lower batch_size or --workers)" if name == "SIGKILL" else ""
        )
        return f"killed by {name}{hint}"
    return f"exited with code {exitcode}"


class _Warm:
    """A pool of spawned workers, kept between the stages of a run, and its :class:`_Round` (progress queue)."""

    def __init__(self, ctx, workers: int):
        self.state = _Round(ctx.Queue(), lambda d, b: None)
        self.before = set(mp.active_children())
        self.pool = ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_init_worker, initargs=(self.state.queue, os.getpid())
        )

    def close(self, stop: bool = False) -> None:
        """Shut the pool down: after its tasks finish, or (``stop``) at once, terminating its workers."""
        self.pool.shutdown(wait=not stop, cancel_futures=True)
        if stop:
            for proc in set(mp.active_children()) - self.before:
                proc.terminate()
        self.state.close()


class _Round:
    """One pool of spawned workers with its own progress queue (a worker killed while writing to a queue can
    leave its lock held, so a queue is never reused after a death) and a thread that drains it."""

    def __init__(self, q: mp.Queue | queue.Queue, on_progress: Callable[[int, int], None]):
        self.queue = q
        self.started: dict[int, int] = {}  # task index -> pid of the worker that took it
        self._stop = threading.Event()
        self.on_progress = on_progress
        self._listener = threading.Thread(target=self._drain, daemon=True)
        self._listener.start()

    def _drain(self) -> None:
        """Handle messages until told to stop, then those still queued (none is lost to the stop)."""
        while True:
            stopping = self._stop.is_set()
            try:
                kind, a, b = self.queue.get(timeout=0.05)
            except (queue.Empty, EOFError, OSError, ValueError):
                if stopping:
                    return
                continue
            if kind == _STARTED:
                self.started[a] = b
            else:
                self.on_progress(a, b)

    def close(self) -> None:
        if self._stop.is_set():
            return
        if not isinstance(self.queue, queue.Queue):
            time.sleep(0.1)  # messages still in the pipe of a worker that just finished
        self._stop.set()
        self._listener.join()
        if not isinstance(self.queue, queue.Queue):
            self.queue.close()


class LocalExecutor:
    """Runs tasks in ``workers`` spawned processes (default: all cores); with one worker, in this process.

    The pool is started by the first stage that has tasks and kept for the next ones, until :meth:`close` (the
    runner calls it when a run ends): starting spawned workers costs about a second, paid once per run, not once
    per stage or round. A worker that dies (killed by the out-of-memory killer, a segfault in a C library) does
    not hang the run: the pool notices (``BrokenProcessPool``), the tasks that had not started go to a fresh
    pool, and each task that was running when it broke is retried alone in its own process, up to ``retries``
    more times, so the task that kills its worker is told apart from its neighbours. A task that still dies
    fails with :class:`WorkerDied` naming the signal, after every other task has finished (their markers are
    written, so a rerun redoes only it). A task that raises fails the stage at once, as it would in one
    process."""

    streams_progress = True

    def __init__(self, workers: int | None = None, retries: int = 2):
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.retries = retries
        self._warm: _Warm | None = None

    def check_reachable(self, folder: str) -> None:
        """Workers run on this machine, in this working directory: they see every folder the caller does."""

    def map(self, fn: Callable[[T], R], items: list[T], on_progress: Callable[[int, int], None]) -> Iterator[R]:
        if not items:
            return
        if self.workers == 1:
            yield from self._in_process(fn, items, on_progress)
            return
        ctx = mp.get_context("spawn")
        died: list[str] = []
        todo = list(range(len(items)))
        with _threads_per_worker(max(1, (os.cpu_count() or 1) // self.workers)):
            while todo:
                suspects: list[int] = []
                rest: list[int] = []
                yield from self._pool_round(ctx, fn, items, todo, on_progress, suspects, rest)
                for i in suspects:
                    result = self._alone(ctx, fn, items[i], i, on_progress, died)
                    if result is not None:
                        yield result[0]
                if rest == todo:  # the pool broke before any worker took a task: retrying cannot help
                    raise WorkerDied("the worker processes die before taking a task (see the messages above)")
                todo = rest
        if died:
            raise WorkerDied(f"{len(died)} task(s) killed their worker every time they ran: " + "; ".join(died))

    def _in_process(self, fn, items, on_progress) -> Iterator:
        state = _Round(queue.Queue(), on_progress)
        _init_worker(state.queue)
        try:
            yield from map(fn, items)
        finally:
            _init_worker(None)
            state.close()

    def _pool_round(self, ctx, fn, items, todo, on_progress, suspects: list[int], rest: list[int]) -> Iterator:
        """Run ``todo`` on the warm pool (or a new one); where the pool breaks, fill ``suspects`` (running then)
        and ``rest``. A pool that ran every task stays warm for the next stage; one that broke, or whose task
        raised or whose caller stopped reading, is shut down and its workers stopped now."""
        warm, self._warm = self._warm or self._start(ctx), None  # this round owns it until it ends cleanly
        warm.state.started.clear()
        warm.state.on_progress = on_progress
        clean = False
        try:
            futures = {warm.pool.submit(_call, fn, i, items[i]): i for i in todo}
            broken = []
            for future in as_completed(futures):
                try:
                    result = future.result()
                except BrokenProcessPool:
                    broken.append(futures[future])
                    continue
                yield result
            if not broken:
                time.sleep(0.05)  # progress still in the pipe of a worker that just finished belongs to this stage
                clean, self._warm = True, warm
                return
            warm.pool.shutdown(wait=True)
            warm.state.close()
            for i in sorted(broken):
                (suspects if i in warm.state.started else rest).append(i)
        finally:
            if not clean:
                warm.close(stop=True)

    def _start(self, ctx) -> _Warm:
        warm = _Warm(ctx, self.workers)
        weakref.finalize(self, warm.close)  # an executor dropped without close() still stops its workers
        return warm

    def close(self) -> None:
        """Stop the warm pool's workers (a later ``map`` starts a new pool)."""
        if self._warm is not None:
            self._warm.close()
            self._warm = None

    def _alone(self, ctx, fn, item, index: int, on_progress, died: list[str]) -> tuple | None:
        """Run one task in a process of its own, up to 1 + ``retries`` times; (result,) or None if it died."""
        reason = ""
        for _ in range(1 + self.retries):
            state = _Round(ctx.Queue(), on_progress)
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_alone_worker, args=(fn, index, item, state.queue, os.getpid(), child))
            proc.start()
            child.close()
            try:
                outcome = parent.recv()
            except EOFError:  # the process died before sending anything back
                outcome = None
            proc.join()
            state.close()
            parent.close()
            if outcome is not None:
                ok, value = outcome
                if not ok:
                    raise value
                return (value,)
            reason = _death(proc.exitcode)
        died.append(f"task {_label(item, index)}: worker {reason} ({1 + self.retries} tries)")
        return None


def _label(item, index: int) -> str:
    """A task's key where the item carries one (the runner passes (Task, state) pairs), else its number."""
    head = item[0] if isinstance(item, tuple) and item else item
    return str(getattr(head, "key", None) or f"#{index + 1}")


def _alone_worker(fn, index, item, q, parent, conn) -> None:
    _init_worker(q, parent)
    try:
        outcome = (True, _call(fn, index, item))
    except BaseException as e:  # sent back and raised in the parent, as a pool would
        outcome = (False, e)
    conn.send(outcome)
    conn.close()
