"""Per-document accounting: every document a stage reads leaves it kept, dropped (with a reason) or quarantined.

A shard's ledger is written as Parquet (one row per document: line, id, outcome, reason, detail) next to a
quarantine file holding the raw unusable lines, so any document's fate can be looked up after the run.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import IO

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dolma.core.arrow import array, dictionary
from dolma.core.document import ENCODER
from dolma.io import AtomicWriter, Rejected, write_lines, write_parquet

KEPT, DROPPED, QUARANTINED = "kept", "dropped", "quarantined"


class QuarantineRecord(msgspec.Struct):
    file: str
    line: int
    reason: str
    error: str
    id: str | None = None
    raw: str = ""  # the line as read, cut at 64 KiB
    size: int = 0  # the line's full length in bytes


class ShardSummary(msgspec.Struct):
    """What one shard (or, merged, one stage) did: the marker written when a shard is complete."""

    read: int = 0
    kept: int = 0
    dropped: dict[str, int] = {}
    quarantined: dict[str, int] = {}
    metrics: dict[str, float] = {}

    def balanced(self) -> bool:
        return self.read == self.kept + sum(self.dropped.values()) + sum(self.quarantined.values())

    def merge(self, other: ShardSummary) -> None:
        self.read += other.read
        self.kept += other.kept
        for mine, theirs in ((self.dropped, other.dropped), (self.quarantined, other.quarantined)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
        for k, v in other.metrics.items():
            self.metrics[k] = self.metrics.get(k, 0) + v


# file, outcome, then per document: lines, ids, reasons, details (a single string stands for every document)
_Chunk = tuple[str, str, Sequence[int], Sequence[str | None], str | Sequence[str], str | Sequence[str]]

SPILL_ROWS = 1 << 16  # outcome rows held before they go to the task's spill file, a row group at a time
SPILL_QUARANTINE_BYTES = 16 << 20  # raw bytes of quarantined lines held before they are spilled
LEDGER_SCHEMA = pa.schema(
    [
        ("file", pa.dictionary(pa.int32(), pa.string())),
        ("line", pa.int64()),
        ("id", pa.string()),
        ("outcome", pa.dictionary(pa.int32(), pa.string())),
        ("reason", pa.dictionary(pa.int32(), pa.string())),
        ("detail", pa.string()),
    ]
)
_DICTIONARY = ["file", "outcome", "reason"]


class ShardLedger:
    """Collects one shard's outcomes; ``read`` is counted by the reader, outcomes by the stage. Outcomes are kept
    as the chunks the stage reported them in (one file, one outcome each; the sequences are kept, not copied, so
    pass ones that do not change afterwards), so a batch costs one call, not one per document. Past
    ``SPILL_ROWS`` rows they go to an unnamed local temporary file as a Parquet row group, and past
    ``SPILL_QUARANTINE_BYTES`` the quarantined lines go to another as JSON lines; :meth:`write` copies them into
    the task's files. Memory is a spill's worth of rows, not a row per document of the shard, and a killed
    worker leaves no spill behind."""

    def __init__(self) -> None:
        self.read = 0
        self.metrics: Counter[str] = Counter()
        self._chunks: list[_Chunk] = []
        self._held = 0  # rows in _chunks
        self._counts: dict[str, Counter[tuple[str, str]]] = {}  # per file: (outcome, reason) → documents
        self._quarantine: list[QuarantineRecord] = []
        self._quarantine_bytes = 0
        # file → (row groups, quarantine bytes) spilled when it was forgotten: those of its rows are left out
        self._forgotten: dict[str, tuple[int, int]] = {}
        self._rows: _RowSpill | None = None
        self._lines: IO[bytes] | None = None  # spilled quarantine records, JSON lines

    def _add(
        self,
        file: str,
        lines: Sequence[int],
        ids: Sequence[str | None],
        outcome: str,
        reasons: str | Sequence[str],
        details: str | Sequence[str],
    ) -> None:
        if not len(lines):
            return
        self._chunks.append((file, outcome, lines, ids, reasons, details))
        counts = self._counts.setdefault(file, Counter())
        if isinstance(reasons, str):
            counts[(outcome, reasons)] += len(lines)
        else:
            for reason, n in Counter(reasons).items():
                counts[(outcome, reason)] += n
        self._held += len(lines)
        if self._held >= SPILL_ROWS:
            if self._rows is None:
                self._rows = _RowSpill()
            self._rows.write(_table(self._chunks))
            self._chunks, self._held = [], 0

    def kept(self, file: str, lines: Sequence[int], ids: Sequence[str]) -> None:
        self._add(file, lines, ids, KEPT, "", "")

    def dropped(
        self,
        file: str,
        lines: Sequence[int],
        ids: Sequence[str],
        reasons: str | Sequence[str],
        details: str | Sequence[str] = "",
    ) -> None:
        self._add(file, lines, ids, DROPPED, reasons, details)

    def quarantined(self, file: str, rejected: Iterable[Rejected]) -> None:
        for r in rejected:
            self._add(file, [r.line], [r.id], QUARANTINED, r.reason, r.error)
            raw = r.raw.decode("utf-8", "replace")
            self._quarantine.append(QuarantineRecord(file, r.line, r.reason, r.error, r.id, raw, r.size))
            self._quarantine_bytes += len(r.raw) + 200
        if self._quarantine_bytes >= SPILL_QUARANTINE_BYTES:
            if self._lines is None:
                self._lines = tempfile.TemporaryFile(prefix="dolma-quarantine-")
            self._lines.write(ENCODER.encode_lines(self._quarantine))
            self._quarantine, self._quarantine_bytes = [], 0

    def forget(self, file: str) -> None:
        """Drop every outcome recorded for ``file`` (its task is about to count it as one unreadable record)."""
        self._counts.pop(file, None)
        self._chunks = [c for c in self._chunks if c[0] != file]
        self._held = sum(len(c[2]) for c in self._chunks)
        self._quarantine = [q for q in self._quarantine if q.file != file]
        self._forgotten[file] = (self._rows.groups if self._rows else 0, self._lines.tell() if self._lines else 0)

    def summary(self) -> ShardSummary:
        counts: Counter[tuple[str, str]] = sum(self._counts.values(), Counter())
        return ShardSummary(
            read=self.read,
            kept=counts[(KEPT, "")],
            dropped={r: n for (o, r), n in sorted(counts.items()) if o == DROPPED},
            quarantined={r: n for (o, r), n in sorted(counts.items()) if o == QUARANTINED},
            metrics=dict(sorted(self.metrics.items())),
        )

    def write(self, ledger_url: str, quarantine_url: str) -> None:
        table = _table(self._chunks)
        if self._rows is None:
            write_parquet(ledger_url, table)
        else:
            self._rows.write(table)
            self._rows.copy_to(ledger_url, self._forgotten)
        if self._lines is not None:
            self._copy_quarantine(quarantine_url)
        elif self._quarantine:
            write_lines(quarantine_url, self._quarantine)

    def _copy_quarantine(self, url: str) -> None:
        """The spilled quarantine records, then the held ones, less those of forgotten files."""
        assert self._lines is not None
        self._lines.write(ENCODER.encode_lines(self._quarantine))
        self._lines.seek(0)
        at = 0
        with AtomicWriter(url) as out:
            for line in self._lines:
                start, at = at, at + len(line)
                if self._forgotten:
                    forgotten = self._forgotten.get(msgspec.json.decode(line, type=QuarantineRecord).file)
                    if forgotten and start < forgotten[1]:
                        continue  # spilled before its file was forgotten
                out.write(line)
        self._lines.close()


def _table(chunks: list[_Chunk]) -> pa.Table:
    """The chunks' rows as one table: ``file`` and ``outcome`` hold sorted dictionaries, ``reason`` one in order of
    first appearance."""
    sizes = np.array([len(c[2]) for c in chunks], np.int64)

    def runs(values: list[str]) -> pa.DictionaryArray:  # one value per chunk, repeated over its rows
        names = sorted(set(values))
        index = np.repeat(np.array([names.index(v) for v in values], np.int32), sizes)
        return pa.DictionaryArray.from_arrays(array(index, pa.int32()), array(names, pa.string()))

    def rows(k: int) -> list:
        return list(chain.from_iterable([c[k]] * len(c[2]) if isinstance(c[k], str) else c[k] for c in chunks))

    lines = [np.asarray(c[2], np.int64) for c in chunks]
    return pa.table(
        {
            "file": runs([c[0] for c in chunks]),
            "line": array(np.concatenate(lines) if lines else np.zeros(0, np.int64), pa.int64()),
            "id": array(rows(3), pa.string()),
            "outcome": runs([c[1] for c in chunks]),
            "reason": dictionary(rows(4)),
            "detail": array(rows(5), pa.string()),
        },
        schema=LEDGER_SCHEMA,
    )


class _RowSpill:
    """Ledger rows in an unnamed local temporary Parquet file (uncompressed: it is read once, soon), a row group
    per spill; copied into the ledger's file when the task ends."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="dolma-ledger-")
        self._writer = pq.ParquetWriter(self._file, LEDGER_SCHEMA, compression="none", use_dictionary=_DICTIONARY)
        self.groups = 0

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table)
        self.groups += 1

    def copy_to(self, url: str, forgotten: dict[str, tuple[int, int]]) -> None:
        """Every spilled row group into ``url`` (zstd, like every ledger), without the rows of a forgotten file
        spilled before it was forgotten."""
        self._writer.close()
        self._file.seek(0)
        spilled = pq.ParquetFile(self._file)
        with AtomicWriter(url) as w:
            with pq.ParquetWriter(w._file, LEDGER_SCHEMA, compression="zstd", use_dictionary=_DICTIONARY) as out:
                for k in range(spilled.num_row_groups):
                    group = spilled.read_row_group(k)
                    gone = sorted(f for f, (groups, _) in forgotten.items() if k < groups)
                    if gone:
                        import pyarrow.compute as pc  # only here: its import is a fixed cost of every stage

                        group = group.filter(pc.invert(pc.is_in(group["file"].cast(pa.string()), pa.array(gone))))
                    out.write_table(group)
        self._file.close()
