"""Running stages so that a rerun redoes exactly what changed: outputs are atomic, the marker comes last.

``run_task`` runs one task, checks that every document read was accounted for, writes the task's ledger,
quarantine and state (its fingerprint and the outputs it published, :mod:`dolma.runtime.state`) and then its
completion marker. ``run_stage`` compares every task's fingerprint with its last run's, removes the outputs
of tasks that changed or no longer exist, gives an executor the rest and merges every task's summary into the
stage's ``summary.json``. ``run_stages`` locks the output folders and runs stages and groups in order,
telling a :class:`Progress` listener what happens (the command line draws bars with it; the default is
quiet). Output never depends on the number of workers, and a run killed at any moment and rerun gives the
same bytes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from typing import Protocol

import msgspec

from dolma import io
from dolma.core.errors import UserError
from dolma.runtime.executors import Executor, LocalExecutor
from dolma.runtime.ledger import ShardLedger, ShardSummary
from dolma.runtime.lock import locked
from dolma.runtime.shards import unreadable
from dolma.runtime.stage import OneFile, Stage, StageGroup, Step, Task, expand
from dolma.runtime.state import (
    StagePlan,
    TaskState,
    clear,
    ledger_dir,
    marker_url,
    plan,
    relative_outputs,
    task_files,
)

__all__ = ["ledger_dir", "marker_url", "run_stage", "run_stages", "dry_run", "read_summary", "task_summaries"]


class TaskResult(msgspec.Struct):
    key: str
    summary: ShardSummary
    folders: list[str] = []  # the local folders the task published files in (swept of dead attempts' files)


class StageResult(msgspec.Struct):
    """What one stage did: its merged summary and how long the run of it took (wall-clock seconds)."""

    name: str
    summary: ShardSummary
    seconds: float


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
        url = marker_url(stage, task.key)
        if io.exists(url):
            out.append((task, msgspec.convert(io.read_json(url), ShardSummary)))
    return out


def run_task(stage: Stage, item: tuple[Task, TaskState]) -> TaskResult:
    """Run one task, then write its ledger, quarantine, state (what it was computed from and what it wrote)
    and, last, its completion marker."""
    task, state = item
    io.configure()
    ledger = ShardLedger()
    with io.recording() as written:
        try:
            stage.run(task, ledger)
        except UserError:
            raise  # a problem with the recipe or a rule: the user must fix it, not skip the file
        except Exception as e:
            if not isinstance(task.payload, OneFile):
                raise  # a task over many files or the whole stage: its failure is the stage's
            ledger = _file_failed(task.payload.url, e, written)
    summary = ledger.summary()
    if not summary.balanced():
        raise RuntimeError(f"stage {stage.name} lost documents in {task.key}: {summary}")
    _, state_file, ledger_file, quarantine_file = task_files(stage, task.key)
    ledger.write(ledger_file, quarantine_file)
    io.write_json(state_file, TaskState(state.fingerprint, state.inputs, relative_outputs(stage, written)))
    io.write_json(marker_url(stage, task.key), summary)
    files = [*written, state_file, ledger_file, quarantine_file, marker_url(stage, task.key)]
    return TaskResult(task.key, summary, sorted({os.path.dirname(f) for f in files if not io.is_remote(f)}))


def _file_failed(url: str, error: Exception, written: list[str]) -> ShardLedger:
    """One file's task failed for a reason no line accounts for (unreadable, a library error on its data):
    what it published is removed, and the file is one quarantined record, so one file never fails a stage."""
    for out in written:
        io.remove(out)
    written.clear()
    ledger = ShardLedger()
    ledger.read = 1
    ledger.quarantined(url, [unreadable(error)])
    return ledger


def run_stage(
    stage: Stage,
    executor: Executor,
    on_progress: Callable[[int, int], None] = lambda d, b: None,
    on_task: Callable[[str, ShardSummary], None] = lambda k, s: None,
    force: bool = False,
    on_plan: Callable[[StagePlan], None] = lambda p: None,
) -> ShardSummary:
    """Run every task of ``stage`` whose fingerprint differs from its last run's (``force``: every task);
    return the stage's merged summary over all tasks."""
    tasks = stage.tasks()
    keys = [t.key for t in tasks]
    if len(set(keys)) != len(keys):
        raise UserError(f"stage {stage.name}: two inputs map to the same output name; rename one")
    todo = plan(stage, tasks, force)
    on_plan(todo)
    for key in todo.stale:
        clear(stage, key, bookkeeping=True)
    for task, _ in todo.redo:
        clear(stage, task.key, bookkeeping=False)
    pending = [(t, todo.states[t.key]) for t in todo.pending]
    if pending:
        executor.check_reachable(stage.output)
    folders: set[str] = set()
    for result in executor.map(partial(run_task, stage), pending, on_progress):
        if not executor.streams_progress:
            on_progress(result.summary.read, 0)
        on_task(result.key, result.summary)
        folders.update(result.folders)
    for folder in sorted(folders):  # every task is done: a temporary file left here is a killed attempt's
        io.remove_dead_temporaries(folder, every_host=True, recursive=False)
    total = ShardSummary()
    for task in tasks:
        total.merge(msgspec.convert(io.read_json(marker_url(stage, task.key)), ShardSummary))
    stage.finish(tasks)
    io.write_json(summary_url(stage), total)
    return total


class Progress(Protocol):
    """Told what a run does: a stage starts with its task count and its plan (what is skipped, redone and
    why), documents and bytes go by, tasks finish."""

    def start(self, stage: Stage, tasks: int) -> None: ...

    def planned(self, stage: Stage, plan: StagePlan) -> None: ...

    def documents(self, docs: int, nbytes: int) -> None: ...

    def task_done(self, key: str, summary: ShardSummary) -> None: ...

    def end(self, stage: Stage, summary: ShardSummary) -> None: ...


class Quiet:
    """A :class:`Progress` that says nothing (the library default)."""

    def start(self, stage: Stage, tasks: int) -> None:
        pass

    def planned(self, stage: Stage, plan: StagePlan) -> None:
        pass

    def documents(self, docs: int, nbytes: int) -> None:
        pass

    def task_done(self, key: str, summary: ShardSummary) -> None:
        pass

    def end(self, stage: Stage, summary: ShardSummary) -> None:
        pass


def _forced(stage: Stage, force: bool | list[str]) -> bool:
    return force is True or (isinstance(force, list) and stage.name in force)


def run_stages(
    stages: list[Stage | StageGroup],
    executor: Executor | None = None,
    progress: Progress | None = None,
    force: bool | list[str] = False,
) -> list[StageResult]:
    """Run stages (and groups of steps) in order; each stage sees every output of the ones before it.

    Every local output folder is locked for the run (a second run on one of them refuses at once). A task is
    skipped when nothing it depends on changed; ``force`` redoes every task (``True``) or those of the
    named stages."""
    executor = executor or LocalExecutor()
    progress = progress or Quiet()
    flat = expand(stages)
    results = []
    # a step may write beside its own folder in its group's work folder (dedup's edges and bands): lock that
    # too, so a killed run's temporary files there are swept as well
    with locked(sorted({s.output for s in flat} | {s.params.work for s in flat if isinstance(s, Step)})):
        try:
            queue = list(flat)
            while queue:
                stage = queue.pop(0)
                started = time.perf_counter()
                progress.start(stage, len(stage.tasks()))
                on_plan = partial(progress.planned, stage)
                forced = _forced(stage, force)
                summary = run_stage(stage, executor, progress.documents, progress.task_done, forced, on_plan)
                progress.end(stage, summary)
                results.append(StageResult(stage.name, summary, time.perf_counter() - started))
                after = stage.follow_up(summary)  # an iterative step's next round runs before the stages after it
                if after is not None:
                    queue.insert(0, after)
        finally:
            executor.close()  # the workers kept warm between the stages
    return results


def dry_run(stages: list[Stage | StageGroup], force: bool | list[str] = False) -> list[str]:
    """What a run would do, stage by stage, without running anything. Once a stage has work to do, the
    stages after it read outputs that will change: they are reported as such, not guessed. An iterative
    step whose round would be skipped is followed by the rounds its last run went on to."""
    lines = []
    changing = ""
    queue = expand(stages)
    while queue:
        stage = queue.pop(0)
        if changing:
            lines.append(f"{stage.name}: redone where its inputs change once {changing} has run")
            continue
        try:
            todo = plan(stage, stage.tasks(), _forced(stage, force))
        except UserError as e:  # its inputs do not exist yet
            lines.append(f"{stage.name}: cannot plan yet ({e})")
            changing = stage.name
            continue
        lines.append(todo.describe(stage.name))
        if todo.pending or todo.stale:
            changing = stage.name
            continue
        summary = read_summary(stage)
        after = stage.follow_up(summary) if summary is not None else None
        if after is not None:
            queue.insert(0, after)
    return lines
