"""The mix's plan as many tasks: each id's first occurrence per hash partition, then the plan from what they left.

Step 2, ``ids``: a task per hash partition of the documents (``plan_partitions``; by default one per input file,
at most ``MAX_PARTITIONS``). The stats step wrote each file's kept rows into the partition of their hash
(``<work>/plan_rows/part=K/<file>.parquet``), so a task reads only its own rows, a 1/K share of the pool. It keeps
each id's first occurrence (in recipe order of the streams, then file order, then line: the order one pass over
every stats file sees them in) and writes: the other rows (``repeated/``: the shuffle drops them as
``duplicate_id_across_streams``), the first rows (``firsts/``) and, per source and topic, a histogram of their
quality scores with the tokens in each bin (``histograms/``).

Step 3, ``plan``: one task over what the ids step wrote. With at most ``plan_exact_rows`` documents in all it reads the
first rows and plans exactly (:mod:`mixers.mix`: quantiles of the scores themselves, every document's realised
copies). Above that it reads only the histograms, whose size is bins per group, never documents: each quantile
edge is the upper bound of the bin holding its rank, so every bin lies in one bucket and the buckets' tokens are
exact; the edges are within one bin of the exact quantiles (a bin spans 2^-12 of a score's magnitude); and the
solve uses the expected copies, since calibration needs every document's draw. The realised total then differs
from the plan by the rounding noise alone, about half the root of the sum of squared document lengths: under
1e-4 of the tokens for 50M documents of similar length.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import numpy as np
import polars as pl

from dolma import io
from dolma.core.errors import UserError
from dolma.runtime.ledger import ShardLedger
from dolma.runtime.report import ResultTable, Section
from dolma.runtime.run import read_summary, task_summaries
from dolma.runtime.stage import Step, Task
from mixers.config import MixParams, Stream
from mixers.plan import (
    Plan,
    bucket_of,
    draws,
    misses_table,
    plan_from_histograms,
    plan_result,
    realiser,
    share_misses,
    write_plan_plot,
)

MAX_PARTITIONS = 512
BIN_SHIFT = np.uint64(40)  # a bin is the top 24 bits of a score's order-preserving 64-bit key
PLAN_ROWS = {"source": pl.String, "topic": pl.String, "quality": pl.Float64, "tokens": pl.Int64,
             "hash": pl.UInt64, "file": pl.Int64, "line": pl.Int64}  # fmt: skip
REPEATED_ID = "duplicate_id_across_streams"
KEY_LINES = "lines_with:"  # stats metric: lines that have an attribute key (a topic prefix ends with *)


def plan_partitions(p: MixParams) -> int:
    return p.plan_partitions or min(max(len(p.files()), 1), MAX_PARTITIONS)


def partition_files(p: MixParams, folder: str) -> list[str]:
    """The ids step's files in ``folder``, one per partition of this run, by name: a file an earlier run with
    more partitions left there is never read."""
    return [io.join(p.work, folder, f"part={k:05d}.parquet") for k in range(plan_partitions(p))]


def plan_rows(p: MixParams, part: str) -> list[str]:
    """The stats step's rows of partition ``part``, one file per input file of this run, by name."""
    urls = [io.join(p.work, "plan_rows", part, key + ".parquet") for _, key, _ in p.files()]
    return [url for url in urls if io.exists(url)]  # a file whose stats task failed is quarantined, not planned


def partition_of(hashes: pl.Expr, partitions: int) -> pl.Expr:
    """The ids step partition of a row, from its id's hash: every row of one id meets in one partition."""
    return (hashes % partitions).cast(pl.Int64)


def _key(quality: np.ndarray) -> np.ndarray:
    """Float scores as unsigned keys in the same order (negative numbers inverted, positive ones offset)."""
    bits = np.ascontiguousarray(quality, np.float64).view(np.uint64)
    return np.where(bits >> np.uint64(63) == 1, ~bits, bits | np.uint64(1 << 63))


def _score(key: np.ndarray) -> np.ndarray:
    bits = np.where(key >> np.uint64(63) == 1, key & ~np.uint64(1 << 63), ~key)
    return bits.view(np.float64)


def bin_of(quality: np.ndarray) -> np.ndarray:
    return (_key(quality) >> BIN_SHIFT).astype(np.int64)


def bin_bounds(bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the lowest, the highest score) each bin can hold."""
    low = bins.astype(np.uint64) << BIN_SHIFT
    return _score(low), _score(low | ((np.uint64(1) << BIN_SHIFT) - np.uint64(1)))


@dataclass
class MixIdsStage(Step):
    params: MixParams
    intermediate = True
    step, folder = "ids", "ids"

    def tasks(self) -> list[Task]:
        return [Task(f"part={k:05d}", k) for k in range(plan_partitions(self.params))]

    def task_basis(self, tasks: list[Task]) -> str:
        return "one per hash partition of the documents' ids (plan_partitions)"

    def inputs(self, task: Task) -> list[str]:
        return plan_rows(self.params, task.key)

    def run(self, task: Task, ledger: ShardLedger) -> None:
        p = self.params
        files = plan_rows(p, task.key)
        rows = pl.concat([io.read_frame(f) for f in files]) if files else pl.DataFrame(schema=PLAN_ROWS)
        ranked = rows.with_columns(
            rank=pl.col("source").replace_strict({s.name: i for i, s in enumerate(p.streams)}, return_dtype=pl.Int64)
        ).sort("rank", "file", "line")
        first = ranked.unique("hash", keep="first", maintain_order=True)
        repeated = (
            ranked.join(first.select("hash", winner="source", first_file="file", first_line="line"), on="hash")
            .filter((pl.col("file") != pl.col("first_file")) | (pl.col("line") != pl.col("first_line")))
            .select("source", "hash", "winner")
            .sort("source", "hash")  # every file the same bytes on a rerun
        )
        first = first.select("source", "topic", "quality", "tokens", "hash")
        io.write_frame(io.join(p.work, "repeated", task.key + ".parquet"), repeated)
        io.write_frame(io.join(p.work, "firsts", task.key + ".parquet"), first)
        histogram = (
            first.with_columns(bin=pl.Series(bin_of(first["quality"].to_numpy()), dtype=pl.Int64))
            .group_by("source", "topic", "bin")
            .agg(count=pl.len().cast(pl.Int64), tokens=pl.col("tokens").sum())
            .sort("source", "topic", "bin")
        )
        io.write_frame(io.join(p.work, "histograms", task.key + ".parquet"), histogram)
        ledger.metrics["ids_in_several_streams"] += len(repeated)
        ledger.metrics["documents"] += len(first)


@dataclass
class MixPlanStage(Step):
    params: MixParams
    intermediate = True
    step, folder = "plan", "plan"

    def tasks(self) -> list[Task]:
        return [Task("plan")]

    def task_basis(self, tasks: list[Task]) -> str:
        return f"one: the plan, from the ids step's histograms (or its rows, up to {self.params.plan_exact_rows:,})"

    def inputs(self, task: Task) -> list[str]:
        return partition_files(self.params, "histograms") + partition_files(self.params, "firsts")

    def run(self, task: Task, ledger: ShardLedger) -> None:
        p = self.params
        _check_keys(p)
        documents = sum(s.metrics.get("documents", 0) for _, s in task_summaries(MixIdsStage(p)))
        groups: dict[tuple[str, str], tuple[list[float], np.ndarray]] = {}
        realisers = {}
        if documents <= p.plan_exact_rows:
            firsts = [io.read_frame(f) for f in partition_files(p, "firsts")]
            for (source, topic), g in pl.concat(firsts).group_by("source", "topic"):
                quality, tokens = g["quality"].to_numpy(), g["tokens"].to_numpy()
                edges = [float(v) for v in np.quantile(quality, np.linspace(0, 1, p.quantiles + 1))]
                bucket = bucket_of(quality, edges)
                groups[(source, topic)] = (edges, np.bincount(bucket, weights=tokens, minlength=p.quantiles))
                if p.calibrate:
                    realisers[(source, topic)] = realiser(bucket, tokens, draws(g["hash"].to_numpy()))
        else:
            groups = histogram_groups(p, partition_files(p, "histograms"))
        plan = plan_from_histograms(p, groups, realisers)
        plan.method = "exact" if documents <= p.plan_exact_rows else "histograms"
        ledger.metrics["planned_tokens"] += plan.planned_tokens
        io.write_json(io.join(p.work, "plan.json"), plan)
        write_plan_plot(plan, io.join(p.work, "plan.png"))

    def report(self) -> list[Section]:
        from mixers.report import mix_sections

        return mix_sections(self.params)

    def result_tables(self) -> list[ResultTable]:
        from mixers.shuffle import MixShuffleStage, realised_tokens

        url = io.join(self.params.work, "plan.json")
        if not io.exists(url):
            return []
        plan = msgspec.convert(io.read_json(url), Plan)
        shuffled = read_summary(MixShuffleStage(self.params))
        misses = share_misses(plan, realised_tokens(shuffled.metrics)) if shuffled else []
        return [plan_result(plan)] + ([misses_table(misses)] if misses else [])


def histogram_groups(p: MixParams, files: list[str]) -> dict[tuple[str, str], tuple[list[float], np.ndarray]]:
    """Per source and topic: quantile edges at bin bounds and the tokens of each bucket, from the merged
    histograms of every partition (their size: bins per group, never documents)."""
    merged = (
        pl.concat([io.read_frame(f) for f in files])
        .group_by("source", "topic", "bin")
        .agg(pl.col("count").sum(), pl.col("tokens").sum())
    )
    groups = {}
    for (source, topic), g in merged.sort("bin").group_by("source", "topic", maintain_order=True):
        bins, counts = g["bin"].to_numpy(), g["count"].to_numpy()
        low, high = bin_bounds(bins)
        cumulative = np.cumsum(counts)
        ranks = np.floor((cumulative[-1] - 1) * np.linspace(0, 1, p.quantiles + 1)).astype(np.int64)
        at = np.searchsorted(cumulative, ranks, side="right")  # the bin holding each quantile's rank
        edges = [float(low[0]), *(float(high[i]) for i in at[1:])]
        bucket = bucket_of(high, edges)  # every score of a bin lies in the bucket of its bin's upper bound
        groups[(source, topic)] = (edges, np.bincount(bucket, weights=g["tokens"].to_numpy(), minlength=p.quantiles))
    return groups


def _check_keys(p: MixParams) -> None:
    """Every key a stream names must occur in some line of its attribute files, unless it allows absent keys:
    a misspelled rule, span edit, quality or topic key would otherwise filter or mask nothing, silently."""
    from mixers.stats import MixStatsStage

    seen: dict[str, dict[str, float]] = {s.name: {} for s in p.streams}
    for task, summary in task_summaries(MixStatsStage(p)):
        counts = seen[task.payload.stream]
        for k, v in summary.metrics.items():
            if k.startswith(KEY_LINES):
                counts[k[len(KEY_LINES) :]] = counts.get(k[len(KEY_LINES) :], 0.0) + v
    for stream in p.streams:
        if stream.absent_keys == "allow" or not stream.attributes:
            continue
        wanted = sorted(stream.keys()) + ([stream.topic + "*"] if stream.topic else [])
        absent = [k for k in wanted if not seen[stream.name].get(k)]
        if absent:
            raise UserError(
                f"{p.name} stream {stream.name!r}: attribute key {absent[0]!r} is in no line of its attribute sets "
                f"({', '.join(stream.attributes)}); keys there: {', '.join(_keys_there(stream)) or 'none'} "
                "(set absent_keys: allow if it may be absent everywhere)"
            )


def _keys_there(stream: Stream) -> list[str]:
    """The keys of the first line of each attribute set of the stream's first document file."""
    files = [url for pattern in stream.documents for url in io.document_files(pattern)][:1]
    keys: set[str] = set()
    for url in files:
        for name in stream.attributes:
            first = next(iter(io.read_attributes(io.attributes_url(url, name))), None)
            if first is not None and not isinstance(first[1], io.Rejected):
                keys |= set(first[1].attributes)
    return sorted(keys)
