"""Paragraph-level dedup, following allenai dolma's ``dedupe`` paragraph semantics, by either of two methods.

A paragraph (see :mod:`dolma.dedup.paragraph_ngrams`) is a duplicate when at least ``overlap_threshold`` of its
n-grams occur in an earlier paragraph, in the corpus order (file, line, paragraph), or in a saved filter. Spans
of duplicate paragraphs become ``<name>__paragraph_bloom__duplicate_paragraph`` attributes (the mixer removes
them) and ``…__duplicate_fraction`` says how much of the document they cover; both methods write these names.

- ``exact`` (the default): three steps of many tasks, so no task needs the whole corpus and the result is the
  same for any number of workers. ``ngrams``, one task per file: the 64-bit key of every n-gram of every
  paragraph; an n-gram met again in the same file is seen there, and the file's first use of each key goes to
  the key's partition (``key mod partitions``). ``first``, one task per key partition: for each key, the
  corpus's first paragraph using it; every later file's first use of it is seen. ``attributes``, one task per
  file: each paragraph's seen n-grams, local and from every partition, decide it. Memory per task: one file's
  n-grams, or one partition of the distinct n-grams per file; scratch under ``<attributes>/_work``. A 64-bit
  key is shared by two n-grams with chance 2^-64, far below a Bloom filter's false-positive rate.
- ``bloom``: one task reads every file in order through a Bloom filter (:mod:`dolma.dedup.bloom`). On one
  machine it writes no scratch and is faster when the filter fits in memory; it is the method that starts from
  a saved filter (``bloom_in``), saves one (``bloom_out``) or checks read-only against a reference set.
  ``auto`` picks it when one of those is set. Its results equal the exact method's but for the filter's false
  positives (``false_positive_rate`` per n-gram at ``expected_ngrams``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from dolma import io
from dolma.core.errors import UserError
from dolma.dedup.bloom import BloomParagraphStep
from dolma.dedup.paragraph_ngrams import MAX_PARTITIONS, ParagraphParams, ParagraphProductStep, paragraph_ngrams
from dolma.runtime.ledger import ShardLedger
from dolma.runtime.shards import AlignedAttributes, read_shard
from dolma.runtime.stage import OneFile, Stage, StageGroup, Step, Task, shard_tasks

FIRSTS = {"key": pl.UInt64, "gpos": pl.UInt64, "n": pl.UInt32}  # a file's first use of a key, and how often


@dataclass(frozen=True)
class KeyedShard(OneFile):
    """An ``ngrams`` task: one document file, its number, and the number of key partitions it writes."""

    url: str
    number: int
    partitions: int


def _partitions(p: ParagraphParams) -> int:
    return p.partitions or min(max(len(io.document_files(p.input)), 1), MAX_PARTITIONS)


@dataclass
class NgramStep(Step):
    params: ParagraphParams
    intermediate = True
    step, folder = "ngrams", "paragraphs"

    def tasks(self) -> list[Task]:
        parts = _partitions(self.params)
        return [Task(t.key, KeyedShard(t.payload.url, t.payload.number, parts)) for t in shard_tasks(self.params.input)]

    def inputs(self, task: Task) -> list[str]:
        return [task.payload.url]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        """The file's eligible paragraphs (line, span, n-grams, those seen earlier in the file), and its first use
        of each key, split by key partition. A paragraph is numbered by its rank in the file (``pid``), so
        ``number << 32 | pid`` orders paragraphs as the corpus does."""
        p, shard = self.params, task.payload
        rows, keys, pids, done = [], [], [], 0
        for batch in read_shard(shard.url, ledger, p.batch_size, keep_all=True):
            ng = paragraph_ngrams([d.text for d in batch.docs], p.ngram, p.min_words)
            ledger.metrics["paragraphs"] += len(ng.owner)
            eligible = np.flatnonzero(ng.eligible)
            rank = np.zeros(len(ng.owner), np.int64)
            rank[eligible] = done + np.arange(len(eligible))
            lines = np.asarray(batch.lines, np.int64)[ng.owner[eligible]] if len(eligible) else np.empty(0, np.int64)
            rows.append(pl.DataFrame({"line": lines, "start": ng.starts[eligible], "end": ng.ends[eligible]}))
            keys.append(ng.key)
            pids.append(rank[ng.par])
            done += len(eligible)
        if done >= 2**32:
            raise UserError(f"{shard.url}: more than 2^32 paragraphs in one file; split it")
        key = np.concatenate(keys) if keys else np.empty(0, np.uint64)
        pid = np.concatenate(pids) if pids else np.empty(0, np.int64)
        order = np.argsort(key, kind="stable")  # by key, then by paragraph
        k, q = key[order], pid[order]
        first_of_key = np.r_[True, k[1:] != k[:-1]] if len(k) else np.empty(0, bool)
        run = np.cumsum(first_of_key) - 1
        first = q[first_of_key][run]
        seen = q > first  # the key was in an earlier paragraph of this file
        table = pl.concat(rows) if rows else pl.DataFrame(schema={"line": pl.Int64, "start": pl.Int64, "end": pl.Int64})
        table = table.with_columns(
            pid=pl.int_range(pl.len(), dtype=pl.UInt32),
            total=pl.Series(np.bincount(pid, minlength=done), dtype=pl.UInt32),
            seen=pl.Series(np.bincount(q[seen], minlength=done), dtype=pl.UInt32),
        )
        io.write_frame(io.join(self.output, task.key + ".parquet"), table)
        firsts = pl.DataFrame(
            {
                "key": k[first_of_key],
                "gpos": (np.uint64(shard.number) << np.uint64(32)) | q[first_of_key].astype(np.uint64),
                "n": np.bincount(run[~seen], minlength=int(first_of_key.sum())),
            },
            schema=FIRSTS,
        ).with_columns(part=(pl.col("key") % shard.partitions).cast(pl.Int64))
        parts = {part[0]: frame for part, frame in firsts.partition_by("part", as_dict=True).items()}
        for part in range(shard.partitions):
            frame = parts.get(part, firsts.clear()).drop("part")
            io.write_frame(io.join(p.work, "firsts", f"part={part:05d}", task.key + ".parquet"), frame)


@dataclass
class FirstSeenStep(Step):
    params: ParagraphParams
    intermediate = True
    step, folder = "first", "first"

    def tasks(self) -> list[Task]:
        return [Task(f"part={k:05d}", k) for k in range(_partitions(self.params))]

    def task_basis(self, tasks: list[Task]) -> str:
        return "one per n-gram key partition (partitions)"

    def inputs(self, task: Task) -> list[str]:
        return [io.join(self.params.work, "firsts", task.key, "**", "*.parquet")]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        """Per paragraph, how many of its n-grams a file before its own used first (their key's first use in
        the corpus is elsewhere), sorted by ``gpos`` so a file's task reads only its own range."""
        files = io.list_files(io.join(self.params.work, "firsts", task.key, "**", "*.parquet"))
        firsts = pl.concat([io.read_frame(f) for f in files]) if files else pl.DataFrame(schema=FIRSTS)
        later = firsts.filter(pl.col("gpos") > pl.col("gpos").min().over("key"))
        ledger.metrics["distinct_ngrams"] += len(firsts) - len(later)
        seen = later.group_by("gpos").agg(seen=pl.col("n").sum()).sort("gpos")
        io.write_frame(io.join(self.output, task.key + ".parquet"), seen)


@dataclass
class ParagraphAttributeStep(ParagraphProductStep):
    step = "attributes"

    def tasks(self) -> list[Task]:
        return shard_tasks(self.params.input)

    def inputs(self, task: Task) -> list[str]:
        work = self.params.work
        paragraphs = io.join(work, "paragraphs", task.key + ".parquet")
        return [task.payload.url, paragraphs, io.join(work, "first", "*.parquet")]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        p, url, number = self.params, task.payload.url, task.payload.number
        lo, hi = number << 32, (number + 1) << 32
        between = [("gpos", ">=", lo), ("gpos", "<", hi)]
        files = io.list_files(io.join(p.work, "first", "*.parquet"))
        earlier = (
            pl.concat(
                [io.read_frame(f, between) for f in files]
                + [pl.DataFrame(schema={"gpos": pl.UInt64, "seen": pl.UInt32})],
                how="vertical_relaxed",
            )
            .group_by("gpos")
            .agg(pl.col("seen").cast(pl.Int64).sum())
        )  # a paragraph's n-grams span partitions
        table = io.read_frame(io.join(p.work, "paragraphs", task.key + ".parquet"))
        table = (
            table.with_columns(gpos=pl.col("pid").cast(pl.UInt64) | lo)
            .join(earlier.rename({"seen": "earlier"}), on="gpos", how="left")
            .with_columns(seen=pl.col("seen").cast(pl.Int64) + pl.col("earlier").fill_null(0).cast(pl.Int64))
        )
        duplicates = table.filter(pl.col("seen") >= p.overlap_threshold * pl.col("total").cast(pl.Float64))
        ledger.metrics["duplicate_paragraphs"] += len(duplicates)
        spans: dict[int, list[list]] = {}
        for line, start, end in duplicates.sort("line", "start").select("line", "start", "end").iter_rows():
            spans.setdefault(line, []).append([start, end, 1.0])
        with AlignedAttributes(io.attributes_url(url, p.name)) as out:
            for batch in read_shard(url, ledger, p.batch_size, keep_all=True):
                out.write(batch, [p.attribute_line(d, spans.get(n, [])) for d, n in zip(batch.docs, batch.lines)])


@dataclass
class ParagraphDedupStage(ParagraphParams, StageGroup):
    """The recipe entry ``stage: paragraph_dedup``: the exact method's three steps, or the Bloom filter's one."""

    def stages(self) -> list[Stage]:
        if self.chosen == "bloom":
            return [BloomParagraphStep(self)]
        return [NgramStep(self), FirstSeenStep(self), ParagraphAttributeStep(self)]
