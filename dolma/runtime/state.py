"""What a finished task was computed from, so a rerun redoes what changed and nothing else.

Beside each completion marker, ``<ledger>/state/<key>.json`` records the task's fingerprint (a hash of the
format version, the stage's kind and every parameter, defaults included, the task's key and payload, and the
identity of every file it read: size and modification time, or ETag / generation on object storage) with
those inputs and the outputs it published. On a rerun a task whose fingerprint matches is skipped; one that
differs is redone after its old outputs are removed; a task that no longer exists but read files the stage
reads now (it was cut differently, e.g. fewer files per shard) has its outputs, ledger files and marker
removed, while the tasks of an earlier run on other inputs into the same folder are kept. A step downstream
of a redone one reads files with new identities, so it is redone too, and one downstream of a skipped one is
not.

The state files are the one part of an output tree that depends on the machine (modification times, the
paths of the inputs), so tree comparisons between runs leave ``state/`` folders out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import msgspec
import xxhash

from dolma import io
from dolma.runtime.stage import Stage, Task

FORMAT_VERSION = 1


class TaskState(msgspec.Struct):
    fingerprint: str
    inputs: list[list[str]]  # [url, identity]
    outputs: list[str] = []  # relative to the stage's output folder where inside it


def ledger_dir(stage: Stage) -> str:
    return io.join(stage.output, "_ledger", stage.name)


def marker_url(stage: Stage, key: str) -> str:
    return io.join(ledger_dir(stage), "done", key + ".json")


def state_url(stage: Stage, key: str) -> str:
    return io.join(ledger_dir(stage), "state", key + ".json")


def task_files(stage: Stage, key: str) -> list[str]:
    """The bookkeeping files of one task: marker, state, ledger and quarantine."""
    base = ledger_dir(stage)
    return [
        marker_url(stage, key),
        state_url(stage, key),
        io.join(base, "documents", key + ".parquet"),
        io.join(base, "quarantine", key + ".jsonl.gz"),
    ]


def _expand(pattern: str) -> list[str]:
    if any(c in pattern for c in "*?[") or (not io.is_remote(pattern) and os.path.isdir(pattern)):
        return io.list_files(pattern)
    return [pattern]


def current(stage: Stage, task: Task) -> TaskState:
    """The task's fingerprint as it would be computed now."""
    inputs = [[url, io.identity(url)] for pattern in stage.inputs(task) for url in _expand(pattern)]
    described = msgspec.json.encode(
        {
            "version": FORMAT_VERSION,
            "kind": f"{type(stage).__module__}.{type(stage).__qualname__}",
            "stage": stage,
            "key": task.key,
            "payload": task.payload,
            "inputs": inputs,
        },
        enc_hook=repr,
    )
    return TaskState(xxhash.xxh3_128_hexdigest(described), inputs)


def recorded(stage: Stage, key: str) -> TaskState | None:
    url = state_url(stage, key)
    if not io.exists(url):
        return None
    try:
        return msgspec.convert(io.read_json(url), TaskState)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def relative_outputs(stage: Stage, urls: list[str]) -> list[str]:
    root = stage.output.rstrip("/") + "/"
    return sorted(u[len(root) :] if u.startswith(root) else u for u in urls)


def absolute_output(stage: Stage, rel: str) -> str:
    return rel if rel.startswith("/") or "://" in rel else io.join(stage.output, rel)


@dataclass
class StagePlan:
    """What a run of a stage will do with each task: skip it, redo it (and why), run it new, or remove it."""

    skip: list[Task] = field(default_factory=list)
    redo: list[tuple[Task, str]] = field(default_factory=list)
    new: list[Task] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # keys with outputs of tasks that no longer exist
    states: dict[str, TaskState] = field(default_factory=dict)

    @property
    def pending(self) -> list[Task]:
        return [t for t, _ in self.redo] + self.new

    def describe(self, name: str) -> str:
        parts = []
        if self.skip:
            parts.append(f"{len(self.skip)} unchanged (skipped)")
        if self.redo:
            reasons = sorted({why for _, why in self.redo})
            parts.append(f"{len(self.redo)} redone ({'; '.join(reasons)})")
        if self.new:
            parts.append(f"{len(self.new)} new")
        if self.stale:
            parts.append(f"{len(self.stale)} no longer in the stage (outputs removed)")
        return f"{name}: " + (", ".join(parts) or "no tasks")


def _why(old: TaskState, new: TaskState) -> str:
    before, now = dict(map(tuple, old.inputs)), dict(map(tuple, new.inputs))
    if before == now:
        return "parameters changed"
    changed = sorted(u for u in set(before) | set(now) if before.get(u) != now.get(u))
    return f"inputs changed: {os.path.basename(changed[0])}" + (
        f" and {len(changed) - 1} more" if len(changed) > 1 else ""
    )


def plan(stage: Stage, tasks: list[Task], force: bool = False) -> StagePlan:
    """Compare every task's fingerprint with the one its last run recorded."""
    out = StagePlan()
    for task in tasks:
        state = current(stage, task)
        out.states[task.key] = state
        if not io.exists(marker_url(stage, task.key)):
            (out.redo.append((task, "unfinished")) if recorded(stage, task.key) else out.new.append(task))
            continue
        old = recorded(stage, task.key)
        if force:
            out.redo.append((task, "forced"))
        elif old is None:
            out.redo.append((task, "no fingerprint from an earlier version"))
        elif old.fingerprint != state.fingerprint:
            out.redo.append((task, _why(old, state)))
        else:
            out.skip.append(task)
    keys = {t.key for t in tasks}
    reading = {url for state in out.states.values() for url, _ in state.inputs}
    done = io.join(ledger_dir(stage), "done")
    for url in io.list_files(io.join(done, "**", "*.json")):
        key = url[len(done) :].strip("/").removesuffix(".json")
        old = None if key in keys else recorded(stage, key)
        # a task that is gone but read what the stage reads now was cut differently (e.g. fewer files per
        # shard): its outputs would duplicate the new tasks'. One that read other files (the same stage run
        # before on other input into the same folder) is left alone.
        if old is not None and any(u in reading for u, _ in old.inputs):
            out.stale.append(key)
    return out


def clear(stage: Stage, key: str, bookkeeping: bool) -> None:
    """Remove the outputs a task's last run published (and, with ``bookkeeping``, its ledger files)."""
    old = recorded(stage, key)
    for rel in old.outputs if old else []:
        io.remove(absolute_output(stage, rel))
    marker, state, ledger, quarantine = task_files(stage, key)
    for url in [marker, ledger, quarantine, state] if bookkeeping else [marker]:  # the state file goes last
        io.remove(url)
