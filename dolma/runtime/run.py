"""Running stages so that a rerun is idempotent: a task's outputs are atomic and its marker is written last.

``run_task`` runs one task, checks that every document read was accounted for, writes the task's ledger and
quarantine files and then its completion marker; ``run_stage`` gives an executor the tasks without a marker and
merges every task's summary into the stage's ``summary.json``; ``run_stages`` runs stages and groups in order,
telling a :class:`Progress` listener what happens (the command line draws bars with it; the default is quiet).
Output never depends on the number of workers, and a run killed at any moment and rerun gives the same bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Protocol

import msgspec

from dolma import io
from dolma.core.errors import UserError
from dolma.runtime.executors import Executor, LocalExecutor
from dolma.runtime.ledger import ShardLedger, ShardSummary
from dolma.runtime.stage import Stage, StageGroup, Task, expand


class TaskResult(msgspec.Struct):
    key: str
    summary: ShardSummary


class StageResult(msgspec.Struct):
    """What one stage did: its merged summary and how long the run of it took (wall-clock seconds)."""

    name: str
    summary: ShardSummary
    seconds: float


def ledger_dir(stage: Stage) -> str:
    return io.join(stage.output, "_ledger", stage.name)


def marker_url(stage: Stage, task: Task) -> str:
    return io.join(ledger_dir(stage), "done", task.key + ".json")


def summary_url(stage: Stage) -> str:
    return io.join(ledger_dir(stage), "summary.json")


def read_summary(stage: Stage) -> ShardSummary | None:
    """The stage's merged summary from its last run, or None if it has not finished one."""
    url = summary_url(stage)
    return msgspec.convert(io.read_json(url), ShardSummary) if io.exists(url) else None


def task_summaries(stage: Stage) -> list[tuple[Task, ShardSummary]]:
    """Each finished task of the stage with its summary, read from its completion marker."""
    out = []
    for task in stage.tasks():
        url = marker_url(stage, task)
        if io.exists(url):
            out.append((task, msgspec.convert(io.read_json(url), ShardSummary)))
    return out


def run_task(stage: Stage, task: Task) -> TaskResult:
    """Run one task, then write its ledger, quarantine and (last) its completion marker."""
    io.configure()
    ledger = ShardLedger()
    stage.run(task, ledger)
    summary = ledger.summary()
    if not summary.balanced():
        raise RuntimeError(f"stage {stage.name} lost documents in {task.key}: {summary}")
    base = ledger_dir(stage)
    ledger.write(io.join(base, "documents", task.key + ".parquet"), io.join(base, "quarantine", task.key + ".jsonl.gz"))
    io.write_json(marker_url(stage, task), summary)
    return TaskResult(task.key, summary)


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
        raise UserError(f"stage {stage.name}: two inputs map to the same output name; rename one")
    pending = [t for t in tasks if not io.exists(marker_url(stage, t))]
    for result in executor.map(partial(run_task, stage), pending, on_progress):
        if not executor.streams_progress:
            on_progress(result.summary.read, 0)
        on_task(result.key, result.summary)
    total = ShardSummary()
    for task in tasks:
        total.merge(msgspec.convert(io.read_json(marker_url(stage, task)), ShardSummary))
    stage.finish(tasks)
    io.write_json(summary_url(stage), total)
    return total


class Progress(Protocol):
    """Told what a run does: a stage starts with its task count, documents and bytes go by, tasks finish."""

    def start(self, stage: Stage, tasks: int) -> None: ...

    def documents(self, docs: int, nbytes: int) -> None: ...

    def task_done(self, key: str, summary: ShardSummary) -> None: ...

    def end(self, stage: Stage, summary: ShardSummary) -> None: ...


class Quiet:
    """A :class:`Progress` that says nothing (the library default)."""

    def start(self, stage: Stage, tasks: int) -> None:
        pass

    def documents(self, docs: int, nbytes: int) -> None:
        pass

    def task_done(self, key: str, summary: ShardSummary) -> None:
        pass

    def end(self, stage: Stage, summary: ShardSummary) -> None:
        pass


def run_stages(
    stages: list[Stage | StageGroup],
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> list[StageResult]:
    """Run stages (and groups of steps) in order; each stage sees every output of the ones before it."""
    executor = executor or LocalExecutor()
    progress = progress or Quiet()
    results = []
    for stage in expand(stages):
        started = time.perf_counter()
        progress.start(stage, len(stage.tasks()))
        summary = run_stage(stage, executor, progress.documents, progress.task_done)
        progress.end(stage, summary)
        results.append(StageResult(stage.name, summary, time.perf_counter() - started))
    return results
