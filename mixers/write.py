"""The mix's last step: each shuffle partition's copies in their final order, written as the mix's shards.

See :mod:`mixers.mix` for the five steps together.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import msgspec
import numpy as np
import pyarrow as pa

from dolma import io
from dolma.runtime.ledger import ShardLedger
from dolma.runtime.stage import Step, Task
from mixers.config import MixParams
from mixers.plan import Plan

WRITE_DOCS = 4096  # documents copied into their final order at a time: the partition is held once, not twice


@dataclass
class MixWriteStage(Step):
    params: MixParams
    step = "write"

    @property
    def output(self) -> str:
        return self.params.output

    def tasks(self) -> list[Task]:
        plan = msgspec.convert(io.read_json(io.join(self.params.work, "plan.json")), Plan)
        return [Task(f"part-{k:05d}") for k in range(plan.partitions)]

    def task_basis(self, tasks: list[Task]) -> str:
        return f"one per shuffle partition of about {self.params.partition_tokens:,} tokens (partition_tokens)"

    def inputs(self, task: Task) -> list[str]:
        work, part = self.params.work, task.key.removeprefix("part-")
        return [io.join(work, "shuffle", f"part={part}", "**", "*.arrow"), io.join(work, "plan.json")]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        p = self.params
        part = task.key.removeprefix("part-")
        files = io.list_files(io.join(p.work, "shuffle", f"part={part}", "**", "*.arrow"))
        if not files:
            return
        table = pa.concat_tables([io.read_arrow(f) for f in files])  # the documents stay in their files' chunks
        order = np.argsort(table["key"].to_numpy(), kind="stable")
        order = order[spread(table["origin"].to_numpy()[order])]
        ledger.read += len(order)
        if not len(order):
            return
        ledger.kept(f"part={part}", np.arange(1, len(order) + 1), table["id"].take(order).to_pylist())
        bound = np.r_[0, np.cumsum(table["tokens"].to_numpy()[order])]
        docs = _Chunks(table["doc"])
        start, n_file = 0, 0
        while start < len(order):  # greedy: a file takes documents while it stays within max_tokens_per_file
            end = max(int(np.searchsorted(bound, bound[start] + p.max_tokens_per_file, side="right")) - 1, start + 1)
            with io.AtomicWriter(io.join(p.output, f"{task.key}-{n_file:04d}.jsonl.zst")) as w:
                for at in range(start, end, WRITE_DOCS):  # a slice of the documents copied at a time, in order
                    w.write(docs.take(order[at : min(at + WRITE_DOCS, end)]))
            start, n_file = end, n_file + 1


class _Chunks:
    """The partition's documents as its shuffle files' chunks, read by row: Arrow's ``take`` on a chunked array
    of binaries first concatenates every chunk (a copy of the partition per call), so each chunk is taken from
    alone and the pieces put back in order."""

    def __init__(self, column: pa.ChunkedArray):
        self.chunks = column.chunks
        self.starts = np.cumsum([0] + [len(c) for c in self.chunks])

    def take(self, rows: np.ndarray) -> memoryview:
        """The newline-ended lines of ``rows`` (indices into the whole column), in that order, as one buffer."""
        chunk = np.searchsorted(self.starts, rows, side="right") - 1
        by_chunk = np.argsort(chunk, kind="stable")
        firsts = np.flatnonzero(np.r_[True, chunk[by_chunk][1:] != chunk[by_chunk][:-1]])
        pieces = [
            self.chunks[chunk[by_chunk[a]]].take(rows[by_chunk[a:b]] - self.starts[chunk[by_chunk[a]]])
            for a, b in zip(firsts, np.r_[firsts[1:], len(rows)])
        ]
        place = np.empty(len(rows), np.int64)
        place[by_chunk] = np.arange(len(rows))  # where each row of the chunk-ordered pieces goes
        docs = pa.concat_arrays(pieces).take(place)
        ends = np.frombuffer(docs.buffers()[1], np.int64)[docs.offset : docs.offset + len(docs) + 1]
        return memoryview(docs.buffers()[2])[ends[0] : ends[-1]]


def spread(origin: np.ndarray) -> np.ndarray:
    """An order of the rows in which no two neighbours are copies of one document, wherever the rows allow it.

    Scanning left to right, a row that repeats its predecessor's origin swaps with the nearest later row that
    does not (at the end, where none is left, it moves back into a gap between two other documents); only the
    positions a move touched are looked at again, so the cost follows the collisions (rare after the random
    sort), not the rows."""
    order, o = np.arange(len(origin)), origin.copy()
    todo = (np.flatnonzero(o[1:] == o[:-1]) + 1).tolist()  # ascending: already a heap
    while todo:
        i = heapq.heappop(todo)
        if i >= len(o) or o[i] != o[i - 1]:
            continue
        j = _next_other(o, i + 1, o[i - 1])
        if j >= 0:
            o[[i, j]], order[[i, j]] = o[[j, i]], order[[j, i]]
            for k in (i + 1, j, j + 1):
                heapq.heappush(todo, k)
            continue
        # every later row is a copy of the same document: move this one back between two other documents
        gaps = np.flatnonzero((o[: i - 1] != o[i]) & (o[1:i] != o[i])) + 1
        if len(gaps):
            g = int(gaps[-1])
            o[g : i + 1], order[g : i + 1] = np.roll(o[g : i + 1], 1), np.roll(order[g : i + 1], 1)
            heapq.heappush(todo, i + 1)
    return order


def _next_other(o: np.ndarray, start: int, value) -> int:
    """The first index >= start whose value differs from ``value`` (-1 if none), in growing windows."""
    width = 64
    while start < len(o):
        hit = np.flatnonzero(o[start : start + width] != value)
        if len(hit):
            return start + int(hit[0])
        start, width = start + width, width * 2
    return -1
