"""Paragraph-level dedup, following allenai dolma's ``dedupe`` paragraph semantics, by either of two methods.

A paragraph (see :mod:`dolma.dedup.paragraph_ngrams`) is a duplicate when at least ``overlap_threshold`` of its
n-grams occur in an earlier paragraph, in the corpus order (file, line, paragraph), or in a saved filter. Spans
of duplicate paragraphs become ``<name>__paragraph_bloom__duplicate_paragraph`` attributes (the mixer removes
them) and ``…__duplicate_fraction`` says how much of the document they cover; both methods write these names.

- ``exact`` (the default): three steps of many tasks, so no task needs the whole corpus or a whole file, and
  the result is the same for any number of workers, partitions or batch size. ``ngrams``, one task per file, a
  batch at a time: the 64-bit key of every n-gram of every paragraph; an n-gram met again in the same batch is
  seen there, and the batch's first use of each key goes to the key's partition (``key mod partitions``).
  ``first``, one task per key partition: for each key, the corpus's first paragraph using it; every later
  batch's first use of it (in that file or a later one) is seen. ``attributes``, one task per file, a batch at a
  time: each paragraph's seen n-grams, local and from every partition, decide it. Memory per task: one batch's
  n-grams, or one partition of the distinct n-grams per batch; scratch under ``<attributes>/_work``. A 64-bit
  key is shared by two n-grams with chance 2^-64, far below a Bloom filter's false-positive rate.
- ``bloom``: one task reads every file in order through a Bloom filter (:mod:`dolma.dedup.bloom`). On one
  machine it writes no scratch and is faster when the filter fits in memory; it is the method that starts from
  a saved filter (``bloom_in``), saves one (``bloom_out``) or checks read-only against a reference set.
  ``auto`` picks it when one of those is set. Its results equal the exact method's but for the filter's false
  positives (``false_positive_rate`` per n-gram at ``expected_ngrams``).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import numpy as np
import polars as pl

from dolma import io
from dolma.core.errors import UserError
from dolma.dedup.bloom import BloomParagraphStep
from dolma.dedup.paragraph_ngrams import (
    MAX_PARTITIONS,
    PARTITION_BYTES,
    ParagraphParams,
    ParagraphProductStep,
    paragraph_ngrams,
)
from dolma.runtime.ledger import ShardLedger
from dolma.runtime.shards import AlignedAttributes, read_shard
from dolma.runtime.stage import OneFile, Stage, StageGroup, Step, Task, shard_tasks

FIRSTS = {"key": pl.UInt64, "gpos": pl.UInt64, "n": pl.UInt32}  # a batch's first use of a key, and how often
PARAGRAPHS = {  # a file's eligible paragraphs: where, their rank, their n-grams and those seen in their batch
    **{"line": pl.Int64, "start": pl.Int64, "end": pl.Int64},
    **{"pid": pl.UInt32, "total": pl.UInt32, "seen": pl.UInt32},
}


@dataclass(frozen=True)
class KeyedShard(OneFile):
    """An ``ngrams`` task: one document file, its number, and the number of key partitions it writes."""

    url: str
    number: int
    partitions: int


def _partitions(p: ParagraphParams) -> int:
    """The key partitions: as set, else one per file or per ``PARTITION_BYTES`` of local input, whichever is
    more (a partition task holds its share of every batch's first uses of keys; object-store files count by
    number, as their sizes would cost a request each)."""
    if p.partitions:
        return p.partitions
    files = io.document_files(p.input)
    local = sum(_size(f) for f in files if not io.is_remote(f))
    return min(max(len(files), -(-local // PARTITION_BYTES), 1), MAX_PARTITIONS)


def _size(path: str) -> int:
    """A local file's size; 0 for one that cannot be read (its task records it as unreadable)."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


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
        """The file's eligible paragraphs (line, span, n-grams, those seen earlier in their batch) and each
        batch's first use of each key, split by key partition, written a batch at a time: the task holds one
        batch. A paragraph is numbered by its rank in the file (``pid``), so ``number << 32 | pid`` orders
        paragraphs as the corpus does, and a key a batch shares with an earlier batch of the same file is seen
        by the ``first`` step exactly as one shared with an earlier file."""
        p, shard, n = self.params, task.payload, task.payload.partitions
        done = 0
        with contextlib.ExitStack() as streams:
            paragraphs = streams.enter_context(io.FrameStream(io.join(self.output, f"{task.key}.parquet"), PARAGRAPHS))
            part_urls = [io.join(p.work, "firsts", f"part={k:05d}", f"{task.key}.parquet") for k in range(n)]
            parts = [streams.enter_context(io.FrameStream(url, FIRSTS)) for url in part_urls]
            for batch in read_shard(shard.url, ledger, p.batch_size, keep_all=True):
                ng = paragraph_ngrams([d.text for d in batch.docs], p.ngram, p.min_words)
                ledger.metrics["paragraphs"] += len(ng.owner)
                eligible = np.flatnonzero(ng.eligible)
                if done + len(eligible) >= 2**32:
                    raise UserError(f"{shard.url}: more than 2^32 paragraphs in one file; split it")
                rank = np.zeros(len(ng.owner), np.int64)
                rank[eligible] = np.arange(len(eligible))
                lines = np.asarray(batch.lines, np.int64)[ng.owner[eligible]]
                rows = pl.DataFrame({"line": lines, "start": ng.starts[eligible], "end": ng.ends[eligible]})
                table, firsts = _batch_products(rows, ng.key, rank[ng.par], done, shard.number)
                paragraphs.write(table)
                split = firsts.with_columns(part=(pl.col("key") % shard.partitions).cast(pl.Int64))
                for (part,), frame in split.partition_by("part", as_dict=True).items():
                    parts[part].write(frame.drop("part"))
                done += len(eligible)


def _batch_products(rows: pl.DataFrame, key: np.ndarray, pid: np.ndarray, done: int, number: int):
    """One batch's paragraph rows (numbered from ``done``, with their n-gram count and those seen earlier in
    the batch) and its first use of each key (``gpos``, and how many of that paragraph's n-grams it is)."""
    order = np.argsort(key, kind="stable")  # by key, then by paragraph
    k, q = key[order], pid[order]
    first_of_key = np.r_[True, k[1:] != k[:-1]] if len(k) else np.empty(0, bool)
    run = np.cumsum(first_of_key) - 1
    first = q[first_of_key][run]
    seen = q > first  # the key was in an earlier paragraph of this batch
    table = rows.with_columns(
        pid=pl.int_range(done, done + len(rows), dtype=pl.UInt32),
        total=pl.Series(np.bincount(pid, minlength=len(rows)), dtype=pl.UInt32),
        seen=pl.Series(np.bincount(q[seen], minlength=len(rows)), dtype=pl.UInt32),
    )
    gpos = (np.uint64(number) << np.uint64(32)) | (q[first_of_key] + done).astype(np.uint64)
    n = np.bincount(run[~seen], minlength=int(first_of_key.sum()))
    return table, pl.DataFrame({"key": k[first_of_key], "gpos": gpos, "n": n}, schema=FIRSTS)


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
        """Per batch of the file's documents, its paragraphs' rows (read by line range, as the ``ngrams`` step
        wrote them a batch at a time) joined with the n-grams earlier files or batches used first; a paragraph
        is a duplicate when enough of its n-grams were seen. The task holds a batch and the file's ``earlier``
        counts (4 bytes a paragraph)."""
        p, url, number = self.params, task.payload.url, task.payload.number
        rows = io.FrameRanges(io.join(p.work, "paragraphs", task.key + ".parquet"), "line")
        earlier = _earlier(p, number, rows.rows)
        try:
            with AlignedAttributes(io.attributes_url(url, p.name)) as out:
                for batch in read_shard(url, ledger, p.batch_size, keep_all=True):
                    table = rows.between(batch.lines[0], batch.lines[-1]) if batch.lines else rows.between(1, 0)
                    seen = table["seen"].to_numpy().astype(np.int64) + earlier[table["pid"].to_numpy()]
                    duplicate = seen >= p.overlap_threshold * table["total"].to_numpy().astype(np.float64)
                    ledger.metrics["duplicate_paragraphs"] += int(duplicate.sum())
                    spans: dict[int, list[list]] = {}
                    chosen = table.filter(pl.Series(duplicate, dtype=pl.Boolean)).sort("line", "start")
                    for line, start, end in chosen.select("line", "start", "end").iter_rows():
                        spans.setdefault(line, []).append([start, end, 1.0])
                    out.write(batch, [p.attribute_line(d, spans.get(n, [])) for d, n in zip(batch.docs, batch.lines)])
        finally:
            rows.close()


def _earlier(p: ParagraphParams, number: int, paragraphs: int) -> np.ndarray:
    """For the file ``number``: per paragraph (by ``pid``), how many of its n-grams another file or an earlier
    batch used first, summed over the key partitions (a paragraph's n-grams span them), read one partition's
    file at a time into one array (4 bytes a paragraph)."""
    lo, hi = number << 32, (number + 1) << 32
    earlier = np.zeros(paragraphs, np.uint32)
    for f in io.list_files(io.join(p.work, "first", "*.parquet")):
        part = io.read_frame(f, [("gpos", ">=", lo), ("gpos", "<", hi)])
        pid = part["gpos"].to_numpy().astype(np.int64) - lo  # distinct within a partition: grouped by gpos
        earlier[pid] += part["seen"].to_numpy().astype(np.uint32)
    return earlier


@dataclass
class ParagraphDedupStage(ParagraphParams, StageGroup):
    """The recipe entry ``stage: paragraph_dedup``: the exact method's three steps, or the Bloom filter's one."""

    def stages(self) -> list[Stage]:
        if self.chosen == "bloom":
            return [BloomParagraphStep(self)]
        return [NgramStep(self), FirstSeenStep(self), ParagraphAttributeStep(self)]
