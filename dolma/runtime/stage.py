"""The stage contract: what every stage declares, so executors, the CLI and the report ask instead of guess.

A stage is a picklable dataclass holding its parameters. It lists its tasks (usually one per input shard,
each with a typed payload) and runs one task at a time into a :class:`~dolma.runtime.ledger.ShardLedger`; the
runtime does everything that makes a rerun idempotent. Optional hooks have defaults here, so a stage overrides
only what it has: ``inputs`` (the files a task reads, for its fingerprint), ``finish`` (cheap and idempotent,
after every task is done), ``follow_up`` (a stage to run next, from this one's result: the next round of an
iterative step), ``report`` (sections of the HTML report), ``result_tables`` (tables printed after
a run) and ``intermediate`` (its output is scratch, not a product). A :class:`StageGroup` is one recipe
entry that runs as several steps (dedup, mix); every runner accepts stages and groups alike (:func:`expand`).
"""

from __future__ import annotations

import abc
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from dolma import io

if TYPE_CHECKING:
    from dolma.runtime.ledger import ShardLedger, ShardSummary
    from dolma.runtime.report import ResultTable, Section


@dataclass(frozen=True)
class Task:
    """One unit of work. ``key`` names it inside its stage (its marker, ledger and quarantine files);
    ``payload`` is the stage's own typed description of the work (e.g. a :class:`Shard`)."""

    key: str
    payload: Any = None


class OneFile:
    """A payload that names exactly one input file (``url``): if its task fails for a reason no line accounts
    for, the runtime quarantines that file as one ``unreadable_file`` record and the stage goes on."""

    url: str


@dataclass(frozen=True)
class Shard(OneFile):
    """One input document file and its number in the stage's sorted list of input files."""

    url: str
    number: int = 0


@dataclass(frozen=True)
class Files:
    """Several input files handled by one task, in order (e.g. PDFs, loose HTML pages)."""

    urls: tuple[str, ...]


def pack_by_size(files: list[str], target_bytes: float, max_files: int) -> list[list[str]]:
    """Consecutive groups of ``files`` (in their order) of about ``target_bytes`` each and at most ``max_files``:
    tasks sized by the work in them, so workers stay busy where a few files are much larger than the rest
    (a file of ``target_bytes`` or more is a group alone). Object-store files count as one byte each (their
    sizes would cost a request each), so they are grouped by count."""
    groups: list[list[str]] = []
    size = 0.0
    for url in files:
        n = 1 if io.is_remote(url) else os.path.getsize(url)
        if not groups or size + n > target_bytes or len(groups[-1]) >= max_files:
            groups.append([])
            size = 0.0
        groups[-1].append(url)
        size += n
    return groups


def shard_tasks(pattern: str) -> list[Task]:
    """One task per document file matching ``pattern``, keyed by its path below the pattern's root."""
    return [
        Task(io.strip_suffix(io.relative_to_root(url, pattern)), Shard(url, number))
        for number, url in enumerate(io.document_files(pattern))
    ]


class Stage(abc.ABC):
    """What the runtime needs from a stage: ``name`` (unique in a run), ``output`` (its ledger lives at
    ``<output>/_ledger/<name>``), ``tasks()`` and ``run(task, ledger)``; the hooks are optional."""

    name: str
    output: str
    intermediate: ClassVar[bool] = False  # the output is a step's scratch, not something a user reads

    @abc.abstractmethod
    def tasks(self) -> list[Task]:
        """The stage's tasks; their keys must be unique."""

    @abc.abstractmethod
    def run(self, task: Task, ledger: ShardLedger) -> None:
        """Run one task: write its outputs atomically and account for every document it read in ``ledger``."""

    def inputs(self, task: Task) -> list[str]:
        """The files (or globs) the task reads, whose identities its fingerprint records: by default the
        payload's files. A step that reads an earlier step's output says so here."""
        if isinstance(task.payload, Shard):
            return [task.payload.url]
        if isinstance(task.payload, Files):
            return list(task.payload.urls)
        return []

    def task_basis(self, tasks: list[Task]) -> str:
        """Why the stage has the tasks it has, in a few words, printed when it starts (with their number): by
        default read from the payloads; a stage whose tasks come from elsewhere says so."""
        if tasks and all(isinstance(t.payload, OneFile) for t in tasks):
            return "one per input file"
        if tasks and all(isinstance(t.payload, Files) for t in tasks):
            sizes = [len(t.payload.urls) for t in tasks]
            return f"{sum(sizes):,} files in groups of {min(sizes)}-{max(sizes)}"
        return ""

    def finish(self, tasks: list[Task]) -> None:  # noqa: B027  (an optional hook: most stages have nothing to do)
        """Runs once after every task is done (e.g. to merge a manifest): cheap and idempotent."""

    def follow_up(self, summary: ShardSummary) -> Stage | None:
        """The stage to run right after this one, decided by this one's merged result (an iterative step's next
        round, under the same locked work folder), or None (the default: the run goes on with its list)."""
        return None

    def report(self) -> list[Section]:
        """Sections this stage adds to the HTML report, from what its run left behind."""
        return []

    def result_tables(self) -> list[ResultTable]:
        """Tables printed after a run that included this stage (e.g. a mix plan)."""
        return []

    def sample_groups(self) -> dict[str, list[str]]:
        """Task keys by group (a mix: by stream) whose kept documents the report samples, so a reviewer reads
        what each group put in the output; none by default (the report samples every stage's removals)."""
        return {}


class Step(Stage):
    """One step of a :class:`StageGroup` that shares the group's parameters (``params``, with ``name`` and
    ``work``): it is named ``<group name>-<step>`` and writes under ``<work>/<folder>``."""

    params: Any
    step: ClassVar[str]
    folder: ClassVar[str] = ""

    @property
    def name(self) -> str:
        return f"{self.params.name}-{self.step}"

    @property
    def output(self) -> str:
        return io.join(self.params.work, self.folder)


class StageGroup(abc.ABC):
    """One recipe entry that runs as several stages, in order (each sees all of the previous one's output)."""

    name: str

    @abc.abstractmethod
    def stages(self) -> list[Stage]:
        """The steps, in the order they run."""


def expand(items: list[Stage | StageGroup]) -> list[Stage]:
    """Stages and groups as the flat list of stages that run."""
    out: list[Stage] = []
    for item in items:
        if isinstance(item, StageGroup):
            out += item.stages()
        elif isinstance(item, Stage):
            out.append(item)
        else:
            raise TypeError(f"{item!r} is neither a Stage nor a StageGroup")
    return out
