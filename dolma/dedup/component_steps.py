"""The connected-components steps of MinHash dedup, between ``verify`` and ``clusters``: no task holds more
than one partition of the edges or one shard's documents.

- ``graph``, one task per input file: its verified edges, both directions, split by the partition of their
  first node (``cluster_partitions`` of them, a fixed hash of the document number).
- ``components-NNN``, one task per partition each, alternating large-star (odd NNN) and small-star (even) as
  :mod:`dolma.dedup.components` describes, until a large-star and the small-star after it change nothing. Each
  round's merged ``changed`` count decides, in the main process, whether another runs (``follow_up``); the
  rounds of a rerun are the same stages with the same fingerprints, so unchanged ones are skipped.
- ``labels``, one task per partition: each node's component (the smallest document number in it), sorted by
  document so a file's task reads only its own range.
- ``route``, one task per input file: its documents in some cluster (with the columns the keeper rules read)
  and its verified edges, sent to the partition of their component, where ``clusters`` finds whole components.

Every partition count and hash is fixed by the recipe, so 1, 2 or N workers write the same files; the labels
equal :func:`dolma.dedup.components.connected_components` over all edges at once (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from dolma import io
from dolma.core.errors import UserError
from dolma.dedup.components import EDGE, both_ways, labels, large_star, small_star, split
from dolma.dedup.params import DedupParams
from dolma.runtime.ledger import ShardLedger, ShardSummary
from dolma.runtime.run import read_summary
from dolma.runtime.stage import Step, Task, shard_tasks

MAX_PARTITIONS = 512  # the default partition count: one per input file, at most this many
MAX_OPS = 400  # large-star/small-star needs O(log^2 n) rounds in theory and a handful in practice
LABELS = {"doc": pl.UInt64, "component": pl.UInt64}


@dataclass(frozen=True)
class Part:
    """One edge partition of ``partitions``."""

    index: int
    partitions: int


@dataclass(frozen=True)
class NumberedShard:
    """One input file's number (how its documents and verified edges are named) and the partition count."""

    number: int
    partitions: int


def cluster_partitions(p: DedupParams) -> int:
    """The edge and component partitions: the recipe's, else one per input file (at most MAX_PARTITIONS)."""
    return p.cluster_partitions or min(max(len(p.shards()), 1), MAX_PARTITIONS)


def partition_tasks(p: DedupParams) -> list[Task]:
    """One task per edge (or component) partition, keyed ``part=NNNNN``."""
    parts = cluster_partitions(p)
    return [Task(f"part={k:05d}", Part(k, parts)) for k in range(parts)]


def _read(files: list[str], schema: dict) -> pl.DataFrame:
    frames = [io.read_frame(f) for f in files]
    return pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame(schema=schema)


def _shards(p: DedupParams) -> list[Task]:
    parts = cluster_partitions(p)
    return [Task(t.key, NumberedShard(t.payload.number, parts)) for t in shard_tasks(p.input)]


def _verified(p: DedupParams, number: int) -> str:
    return io.join(p.work, "verified", f"{number:05d}.parquet")  # the verify step's file of this shard's edges


@dataclass
class GraphStep(Step):
    params: DedupParams
    intermediate = True
    step, folder = "graph", "components"

    def tasks(self) -> list[Task]:
        return _shards(self.params)

    def task_basis(self, tasks: list[Task]) -> str:
        return "one per input file (its verified edges)"

    def inputs(self, task: Task) -> list[str]:
        return [_verified(self.params, task.payload.number)]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        url = _verified(self.params, task.payload.number)
        edges = io.read_frame(url).select("a", "b") if io.exists(url) else pl.DataFrame(schema={"a": pl.UInt64})
        edges = both_ways(edges.select(u="a", v="b").cast(pl.UInt64)) if len(edges) else pl.DataFrame(schema=EDGE)
        ledger.metrics["graph_edges"] += len(edges) // 2
        for part, frame in split(edges, task.payload.partitions).items():
            io.write_frame(io.join(self.output, "op=000", f"part={part:05d}", task.key + ".parquet"), frame)


@dataclass
class StarRound(Step):
    """Round ``op`` of the components: large-star when odd, small-star when even (see the module docstring)."""

    params: DedupParams
    op: int = 1
    intermediate = True
    step, folder = "components", "components"

    @property
    def name(self) -> str:
        return f"{self.params.name}-components-{self.op:03d}"

    def tasks(self) -> list[Task]:
        return partition_tasks(self.params)

    def task_basis(self, tasks: list[Task]) -> str:
        kind = "large-star" if self.op % 2 else "small-star"
        return f"one per edge partition (cluster_partitions), {kind} round {self.op}"

    def inputs(self, task: Task) -> list[str]:
        return [io.join(self.output, f"op={self.op - 1:03d}", task.key, "**", "*.parquet")]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        edges = _read(io.list_files(self.inputs(task)[0]), EDGE)
        out, changed = (large_star if self.op % 2 else small_star)(edges)
        ledger.metrics["changed"] += changed
        for part, frame in split(out, task.payload.partitions).items():
            name = f"part={task.payload.index:05d}.parquet"
            io.write_frame(io.join(self.output, f"op={self.op:03d}", f"part={part:05d}", name), frame)

    def follow_up(self, summary: ShardSummary) -> StarRound | None:
        if self.op % 2 == 0 and not summary.metrics.get("changed") and not _changed(self.params, self.op - 1):
            return None
        if self.op >= MAX_OPS:
            raise UserError(f"dedup: connected components did not converge in {MAX_OPS} rounds")
        return StarRound(self.params, self.op + 1)


def _changed(p: DedupParams, op: int) -> float | None:
    summary = read_summary(StarRound(p, op))
    return None if summary is None else summary.metrics.get("changed", 0)


def converged_op(p: DedupParams) -> int | None:
    """The small-star round after which the components were stars (read from the rounds' ledgers), or None
    if the rounds have not run to the end."""
    for op in range(2, MAX_OPS + 1, 2):
        before, after = _changed(p, op - 1), _changed(p, op)
        if before is None or after is None:
            return None
        if before == 0 and after == 0:
            return op
    return None


@dataclass
class LabelStep(Step):
    params: DedupParams
    intermediate = True
    step, folder = "labels", "labels"

    def tasks(self) -> list[Task]:
        return partition_tasks(self.params)

    def task_basis(self, tasks: list[Task]) -> str:
        return "one per edge partition (cluster_partitions)"

    def inputs(self, task: Task) -> list[str]:
        op = converged_op(self.params)
        if op is None:  # the rounds have not finished: run() says so
            return []
        return [io.join(self.params.work, "components", f"op={op:03d}", task.key, "**", "*.parquet")]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        if converged_op(self.params) is None:
            raise UserError("dedup: the connected-components rounds have not finished; rerun dedup")
        edges = _read(io.list_files(self.inputs(task)[0]), EDGE)
        io.write_frame(io.join(self.output, task.key + ".parquet"), labels(edges))


@dataclass
class RouteStep(Step):
    params: DedupParams
    intermediate = True
    step, folder = "route", "route"

    def tasks(self) -> list[Task]:
        return _shards(self.params)

    def task_basis(self, tasks: list[Task]) -> str:
        return "one per input file (its clustered documents and edges, to their component's partition)"

    def inputs(self, task: Task) -> list[str]:
        work = self.params.work
        docs = io.join(work, "docs", task.key + ".parquet")
        return [io.join(work, "labels", "*.parquet"), docs, _verified(self.params, task.payload.number)]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        p, shard = self.params, task.payload
        lo, hi = shard.number << 32, (shard.number + 1) << 32
        between = [("doc", ">=", lo), ("doc", "<", hi)]
        found = [io.read_frame(f, between) for f in io.list_files(io.join(p.work, "labels", "*.parquet"))]
        label = pl.concat(found, how="vertical_relaxed") if found else pl.DataFrame(schema=LABELS)
        members = io.read_frame(io.join(p.work, "docs", task.key + ".parquet")).join(label, on="doc").sort("doc")
        url = _verified(p, shard.number)
        edges = io.read_frame(url) if io.exists(url) else pl.DataFrame(schema={"a": pl.UInt64, "b": pl.UInt64})
        edges = edges.join(label.rename({"doc": "a"}), on="a").sort("a", "b")  # its first end is in this shard
        ledger.metrics["clustered_documents"] += len(members)
        for kind, frame in (("members", members), ("edges", edges)):
            for part, rows in split(frame, shard.partitions, by="component").items():
                io.write_frame(io.join(self.output, kind, f"part={part:05d}", task.key + ".parquet"), rows)
