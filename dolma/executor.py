"""Stages, shard tasks and executors.

A stage lists its tasks (usually one per input shard) and runs one task at a time; the executor only maps
``run_task`` over the tasks that have no completion marker yet. Everything that makes a rerun idempotent
(atomic outputs, the marker written last, the ledger) lives in ``run_task``, so any executor that can call a
picklable function on a picklable task (a local process pool, a Ray cluster) gets resume for free. A global
step (dedup clustering, mix planning) is just a stage whose tasks are partitions or a single task; stages run
one after another, so a later stage sees all of an earlier stage's outputs.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Protocol, TypeVar

import msgspec

from dolma import io
from dolma.ledger import ShardLedger, ShardSummary

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Task:
    """One unit of work. ``key`` names it inside its stage (and its marker, ledger and quarantine files)."""

    key: str
    inputs: tuple[str, ...] = ()


class Stage(Protocol):
    """What an executor needs from a stage. Stages are plain picklable objects holding their parameters."""

    name: str
    output: str

    def tasks(self) -> list[Task]: ...

    def run(self, task: Task, ledger: ShardLedger) -> None: ...

    # optional: ``finish(tasks)`` runs once after every task is done (e.g. to merge a manifest); it must be
    # cheap and idempotent, since it runs again on every rerun


def ledger_dir(stage: Stage) -> str:
    return io.join(stage.output, "_ledger", stage.name)


def marker_url(stage: Stage, task: Task) -> str:
    return io.join(ledger_dir(stage), "done", task.key + ".json")


def run_task(stage: Stage, task: Task) -> tuple[str, ShardSummary]:
    """Run one task, then write its ledger, quarantine and (last) its completion marker."""
    ledger = ShardLedger()
    stage.run(task, ledger)
    summary = ledger.summary()
    if not summary.balanced():
        raise RuntimeError(f"stage {stage.name} lost documents in {task.key}: {summary}")
    base = ledger_dir(stage)
    ledger.write(io.join(base, "documents", task.key + ".parquet"), io.join(base, "quarantine", task.key + ".jsonl.gz"))
    io.write_json(marker_url(stage, task), summary)
    return task.key, summary


# ---------------------------------------------------------------------------------------------- progress
_progress_queue: mp.Queue | None = None


def report_progress(docs: int, nbytes: int) -> None:
    """Called by stages after each batch; a no-op unless an executor is listening."""
    if _progress_queue is not None:
        _progress_queue.put((docs, nbytes))


def _init_worker(q: mp.Queue | None) -> None:
    global _progress_queue
    _progress_queue = q


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

    def map(self, fn: Callable[[T], R], items: list[T], on_progress: Callable[[int, int], None]) -> Iterator[R]: ...


class LocalExecutor:
    """Runs tasks in ``workers`` spawned processes (default: all cores); with one worker, in this process."""

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
                    pool = ctx.Pool(min(self.workers, len(items)), initializer=_init_worker, initargs=(q,))
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
            result = ray.get(done[0])
            if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], ShardSummary):
                on_progress(result[1].read, 0)  # Ray tasks report when they finish, not batch by batch
            yield result


def run_stage(
    stage: Stage,
    executor: Executor,
    on_progress: Callable[[int, int], None] = lambda d, b: None,
    on_task: Callable[[str, ShardSummary], None] = lambda k, s: None,
) -> ShardSummary:
    """Run every task of ``stage`` that is not done yet; return the stage's merged summary over all tasks."""
    tasks = stage.tasks()
    keys = [t.key for t in tasks]
    if len(set(keys)) != len(keys):
        raise io.UserError(f"stage {stage.name}: two inputs map to the same output name; rename one")
    pending = [t for t in tasks if not io.exists(marker_url(stage, t))]
    for key, summary in executor.map(partial(run_task, stage), pending, on_progress):
        on_task(key, summary)
    total = ShardSummary()
    for task in tasks:
        total.merge(msgspec.convert(io.read_json(marker_url(stage, task)), ShardSummary))
    if hasattr(stage, "finish"):
        stage.finish(tasks)
    io.write_json(io.join(ledger_dir(stage), "summary.json"), total)
    return total
