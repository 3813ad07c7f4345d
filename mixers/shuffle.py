"""The mix's fourth step: copies of every planned document into shuffle partitions (the fifth, writing the mix's
shards from them, is :mod:`mixers.write`).

See :mod:`mixers.mix` for the five steps together.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import numpy as np
import polars as pl
import pyarrow as pa

from dolma import io
from dolma.core.arrow import array
from dolma.core.document import ENCODER, LazyDocument
from dolma.core.errors import DataError
from dolma.io import Rejected
from dolma.runtime.ledger import ShardLedger
from dolma.runtime.run import task_summaries
from dolma.runtime.shards import read_shard
from dolma.runtime.stage import Step, Task
from mixers.config import MixParams, Stream
from mixers.plan import (
    Plan,
    planned_copies,
    share_misses,
    shuffle_keys,
)
from mixers.planning import REPEATED_ID, partition_files
from mixers.stats import QUARANTINED_BY_STATS, StreamFile, edited_text


# ----------------------------------------------------------------------------------------------- step 3
@dataclass
class MixShuffleStage(Step):
    params: MixParams
    intermediate = True
    step, folder = "shuffle", "shuffle"

    def tasks(self) -> list[Task]:
        return [Task(key, StreamFile(stream, url)) for stream, key, url in self.params.files()]

    def sample_groups(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for stream, key, _ in self.params.files():
            groups.setdefault(stream, []).append(key)
        return groups

    def finish(self, tasks: list[Task]) -> None:
        """With ``strict_shares``, a stream more than half a point from its share fails the mix."""
        if not self.params.strict_shares:
            return
        realised: dict[str, float] = {}
        for _, summary in task_summaries(self):
            for stream, tokens in realised_tokens(summary.metrics).items():
                realised[stream] = realised.get(stream, 0.0) + tokens
        plan = msgspec.convert(io.read_json(io.join(self.params.work, "plan.json")), Plan)
        misses = share_misses(plan, realised)
        if misses:
            raise DataError(
                f"{self.params.name}: strict_shares: "
                + "; ".join(f"{s} realised {g:.2%} against a share of {t:.2%}" for s, t, g in misses)
            )

    def inputs(self, task: Task) -> list[str]:
        work = self.params.work
        stats = io.join(work, "stats", task.key + ".parquet")
        return [task.payload.url, stats, io.join(work, "plan.json"), *partition_files(self.params, "repeated")]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        """Each document line is matched with its stats row by line number; only the lines the plan copies are
        parsed (their id checked against the row's) and re-encoded, their text left raw JSON unless a span edit
        applies. A line the plan drops is accounted for with the stats step's reason, unparsed. The stats rows
        are read a batch's lines at a time (by row group), so the task holds a batch's rows and the copies."""
        p = self.params
        plan = msgspec.convert(io.read_json(io.join(p.work, "plan.json")), Plan)
        stream = p.stream(task.payload.stream)
        repeated = _repeated(p, stream.name)
        stats = io.FrameRanges(io.join(p.work, "stats", task.key + ".parquet"), "line")

        def rows(first: int, last: int) -> tuple[pl.DataFrame, np.ndarray]:
            frame = _mark_repeated(stats.between(first, last), repeated)
            return frame, planned_copies(frame, plan, stream.name)

        shard = _ShardCopies(task.payload.url, stream, ledger)
        try:
            with io.gc_paused():  # a batch's parsed documents are acyclic, freed by reference counting
                for batch in read_shard(shard.url, ledger, p.batch_size, reader=io.read_lines):
                    last = max(batch.numbers[-1:] + [r.line for r in batch.rejected], default=shard.next_line - 1)
                    shard.add(batch, *rows(shard.next_line, last))
                    shard.next_line = max(shard.next_line, last + 1)
            shard.account_missing(*rows(shard.next_line, 2**62))
        finally:
            stats.close()
        table, part = shard.table(plan.partitions)
        bounds = np.searchsorted(part, np.arange(plan.partitions + 1, dtype=np.uint64))
        for k in range(plan.partitions):
            io.write_arrow(
                io.join(p.work, "shuffle", f"part={k:05d}", task.key + ".arrow"),
                table.slice(bounds[k], bounds[k + 1] - bounds[k]),
            )


def _repeated(p: MixParams, stream: str) -> dict[int, str]:
    """Hash → the earlier stream (in recipe order) that holds the id, for the ids of ``stream`` repeated there."""
    parts = [
        io.read_frame(url).filter(pl.col("source") == stream).select("hash", "winner")
        for url in partition_files(p, "repeated")
    ]  # the ids step's partitions: few rows, the ids an earlier stream holds
    repeated = pl.concat(parts).unique("hash") if parts else pl.DataFrame()
    return dict(zip(repeated["hash"].to_list(), repeated["winner"].to_list())) if len(repeated) else {}


def _mark_repeated(stats: pl.DataFrame, lookup: dict[int, str]) -> pl.DataFrame:
    """The stats rows of documents whose id an earlier stream (in recipe order) already holds get the drop
    reason ``duplicate_id_across_streams``, naming that stream: a mix writes every id once."""
    if not lookup or not len(stats):
        return stats
    winner = stats["hash"].replace_strict(lookup, default=None, return_dtype=pl.String)
    reason = pl.lit(REPEATED_ID + ": kept in stream ") + winner
    return stats.with_columns(
        drop_reason=pl.when(pl.col("drop_reason").is_null() & winner.is_not_null())
        .then(reason)
        .otherwise(pl.col("drop_reason"))
    )


def realised_tokens(summary_metrics: dict[str, float]) -> dict[str, float]:
    """Tokens written per stream, from the shuffle step's metrics."""
    return {k.removeprefix("tokens:"): v for k, v in summary_metrics.items() if k.startswith("tokens:")}


class _ShardCopies:
    """One shuffle task's state: the current batch's stats rows and which of them were seen in the document
    file, the rows no line matched so far, and the encoded copies of the documents the plan copies (with their
    hash, tokens, id and copy count)."""

    def __init__(self, url: str, stream: Stream, ledger: ShardLedger):
        self.url, self.stream, self.ledger = url, stream, ledger
        self.lead = io.attributes_url(url, stream.attributes[0]) if stream.attributes else url
        self.next_line = 0  # the stats rows before this line were matched with a batch
        self.missing: list[tuple[int, str]] = []  # (line, id) of stats rows whose line the file lacks
        self.copied: tuple[list[int], list[int], list[str], list[int]] = ([], [], [], [])  # hash, tokens, id, n
        self.payload: list[bytes] = []

    def _rows(self, stats: pl.DataFrame, n: np.ndarray) -> None:
        """Take a range of lines' stats rows (and their planned copies) as the rows lines are matched with."""
        self.n = n
        self.lines, self.ids, self.h, self.tokens = (stats[c].to_numpy() for c in ("line", "id", "hash", "tokens"))
        self.reasons = stats["drop_reason"]
        self.has_reason = self.reasons.is_not_null().to_numpy()
        self.cuts = stats["cuts"] if self.stream.spans else None  # a column: the rows copied are few
        self.by_stats = self.reasons.str.starts_with(QUARANTINED_BY_STATS).fill_null(False).to_numpy()
        self.seen = np.zeros(len(stats), bool)

    def _note_missing(self) -> None:
        unseen = np.flatnonzero(~self.seen & ~self.by_stats)
        self.missing += zip(self.lines[unseen].tolist(), self.ids[unseen].tolist())

    def _off_step(self, number: int, found: str | None, expected: str) -> Rejected:
        problem = io.out_of_step(self.lead, number, expected, found)
        self.stream.out_of_step(problem)
        return Rejected(number, "attributes_out_of_step", problem, id=found)

    def add(self, batch: io.LineBatch, stats: pl.DataFrame, n: np.ndarray) -> None:
        """Account for every line of the batch (read and rejected lines are counted by the reader) and encode
        the copies of the lines the plan copies; ``stats`` holds the rows of its range of lines."""
        self._rows(stats, n)
        url, ledger = self.url, self.ledger
        found, rows = _rows_of(self.lines, [r.line for r in batch.rejected])
        self.seen[rows[found]] = True
        numbers = np.asarray(batch.numbers, np.int64)
        found, rows = _rows_of(self.lines, batch.numbers)
        if not found.all():
            problem = f"{self.lead} ends before line {numbers[~found][0]}"
            self.stream.out_of_step(problem)
            ledger.quarantined(url, [Rejected(int(k), "attributes_out_of_step", problem) for k in numbers[~found]])
        at = np.setdiff1d(np.flatnonzero(found), self._check_unparsed(batch, np.flatnonzero(found), rows))
        r = rows[at]
        self.seen[r] = True
        dropped = self.has_reason[r]
        zero = ~dropped & (self.n[r] == 0)
        why = self.reasons.gather(r[dropped]).to_list()
        ledger.dropped(url, numbers[at[dropped]].tolist(), self.ids[r[dropped]].tolist(), why)
        ledger.dropped(url, numbers[at[zero]].tolist(), self.ids[r[zero]].tolist(), ZERO_COPIES)
        self._copy(batch, at[self.n[r] > 0], rows)
        self._note_missing()

    def _check_unparsed(self, batch: io.LineBatch, at: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The lines not copied are only checked to carry their row's id (bytes first, a parse where that
        fails); returns the ones quarantined."""
        ids = self.ids
        checked = at[(self.n[rows[at]] == 0) & ~self.by_stats[rows[at]]]
        checked = checked[~io.starts_with_id([batch.lines[i] for i in checked], ids[rows[checked]])]
        line_ids = np.array([io.line_id(batch.lines[i]) for i in checked], object)  # failed the byte check
        off = line_ids != ids[rows[checked]]
        for i, line_id in zip(checked[off], line_ids[off]):
            number = batch.numbers[i]
            if line_id is None:
                bad = io.rejected_line(number, "invalid_json", "no JSON object with a string id", batch.lines[i])
            else:
                bad = self._off_step(number, line_id, ids[rows[i]])
            self.ledger.quarantined(self.url, [bad])
        self.seen[rows[checked[off]]] = True
        return checked[off]

    def _copy(self, batch: io.LineBatch, copied: np.ndarray, rows: np.ndarray) -> None:
        """Parse the lines the plan copies, check their ids, and encode their copies."""
        kept_numbers, kept_ids = [], []
        for i in copied:
            row, number = int(rows[i]), batch.numbers[i]
            try:
                doc = io.parse_line(number, batch.lines[i], lazy=True)
            except io.RejectedLine as e:
                self.ledger.quarantined(self.url, [e.rejected])
                continue
            if doc.id != self.ids[row]:
                self.ledger.quarantined(self.url, [self._off_step(number, doc.id, self.ids[row])])
                continue
            kept_numbers.append(number)
            kept_ids.append(doc.id)
            cuts = self.cuts[row] if self.cuts is not None else None
            cuts = cuts.to_list() if cuts is not None else None
            self.payload += _encoded_copies(doc, int(self.n[row]), self.stream, cuts)
            hashes, tokens, ids, n = self.copied
            hashes.append(int(self.h[row]))
            tokens.append(int(self.tokens[row]))
            ids.append(doc.id)
            n.append(int(self.n[row]))
        self.ledger.kept(self.url, kept_numbers, kept_ids)

    def account_missing(self, stats: pl.DataFrame, n: np.ndarray) -> None:
        """Stats rows whose lines the document file lacks (it ended early; ``stats`` holds the rows past its
        last line) are quarantined."""
        self._rows(stats, n)
        self._note_missing()
        if self.missing:
            problem = f"{self.url} ends before line {self.missing[0][0]}, which {self.lead} describes"
            self.stream.out_of_step(problem)
            self.ledger.read += len(self.missing)  # the stats step's rows stand in for the lines the file lacks
            self.ledger.quarantined(
                self.url, [Rejected(line, "documents_missing", problem, id=id) for line, id in self.missing]
            )

    def table(self, partitions: int) -> tuple[pa.Table, np.ndarray]:
        """Every copy with its shuffle key, ordered by partition, and the partition of each row."""
        hashes, tokens, ids, n = self.copied
        n = np.array(n, np.int64)
        row = np.repeat(np.arange(len(n)), n)
        copy = np.arange(len(row)) - np.repeat(np.cumsum(n) - n, n)
        h, tokens = np.array(hashes, np.uint64)[row], np.array(tokens, np.int64)[row]
        self.ledger.metrics["copies"] += len(row)
        self.ledger.metrics[f"tokens:{self.stream.name}"] += int(tokens.sum())
        key = shuffle_keys(h, copy)
        part = key % np.uint64(partitions)
        order = np.argsort(part, kind="stable")  # the columns are built in this order: no copy to reorder them
        row, copy, key = row[order], copy[order], key[order]
        table = pa.table(
            {
                "key": array(key, pa.uint64()),
                "origin": array(h[order], pa.uint64()),  # the same for every copy of a document
                "tokens": array(tokens[order], pa.int64()),
                "id": array(_copy_ids(np.asarray(ids, object)[row], copy), pa.string()),
                "doc": array([self.payload[i] for i in order.tolist()], pa.large_binary()),  # newline-ended
            }
        )
        return table, part[order]


ZERO_COPIES = "repetition factor 0 (below the throwaway quantile or a rounded-down fraction)"
ID_HEAD = b'{"id":'  # how every encoded document line starts (the id is the first field)


def _rows_of(lines: np.ndarray, wanted: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(found, row) of each wanted line number in the sorted ``lines``."""
    rows = np.minimum(np.searchsorted(lines, np.asarray(wanted, np.int64)), max(len(lines) - 1, 0))
    if not len(lines):
        return np.zeros(len(wanted), bool), rows
    return lines[rows] == np.asarray(wanted, np.int64), rows


def _encoded_copies(doc: LazyDocument, n: int, stream: Stream, cuts: list[list[int]] | None) -> list[bytes]:
    """``n`` JSON lines, each with its newline: the document (span edits applied, the stream's name as a missing
    source), then copies whose id gets ``#k``; the rest of the line is shared bytes, encoded once."""
    if not doc.source:
        doc = msgspec.structs.replace(doc, source=stream.name)
    if cuts:
        text = edited_text(msgspec.json.decode(doc.text, type=str), cuts, stream.spans)
        doc = msgspec.structs.replace(doc, text=msgspec.Raw(ENCODER.encode(text)))
    line = ENCODER.encode(doc) + b"\n"
    rest = line[len(ID_HEAD) + len(ENCODER.encode(doc.id)) :]
    return [line] + [ID_HEAD + ENCODER.encode(f"{doc.id}#{k}") + rest for k in range(1, n)]


def _copy_ids(ids: np.ndarray, copy: np.ndarray) -> list[str]:
    return [i if k == 0 else f"{i}#{k}" for i, k in zip(ids.tolist(), copy.tolist())]
