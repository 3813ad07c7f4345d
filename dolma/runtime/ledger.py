"""Per-document accounting: every document a stage reads leaves it kept, dropped (with a reason) or quarantined.

A shard's ledger is written as Parquet (one row per document: line, id, outcome, reason, detail) next to a
quarantine file holding the raw unusable lines, so any document's fate can be looked up after the run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import chain

import msgspec
import numpy as np
import pyarrow as pa

from dolma.core.arrow import array, dictionary
from dolma.io import Rejected, write_lines, write_parquet

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


class ShardLedger:
    """Collects one shard's outcomes; ``read`` is counted by the reader, outcomes by the stage. Outcomes are kept
    as the chunks the stage reported them in (one file, one outcome each; the sequences are kept, not copied, so
    pass ones that do not change afterwards), so a batch costs one call, not one per document, and the table is
    built once, at the end."""

    def __init__(self) -> None:
        self.read = 0
        self.metrics: Counter[str] = Counter()
        self._chunks: list[_Chunk] = []
        self._counts: Counter[tuple[str, str]] = Counter()
        self.quarantine: list[QuarantineRecord] = []

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
        if isinstance(reasons, str):
            self._counts[(outcome, reasons)] += len(lines)
        else:
            for reason, n in Counter(reasons).items():
                self._counts[(outcome, reason)] += n

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
            self.quarantine.append(
                QuarantineRecord(file, r.line, r.reason, r.error, r.id, r.raw.decode("utf-8", "replace"), r.size)
            )

    def forget(self, file: str) -> None:
        """Drop every outcome recorded for ``file`` (its task is about to count it as one unreadable record)."""
        for chunk in (c for c in self._chunks if c[0] == file):
            _, outcome, lines, _, reasons, _ = chunk
            for reason, n in (Counter({reasons: len(lines)}) if isinstance(reasons, str) else Counter(reasons)).items():
                self._counts[(outcome, reason)] -= n
        self._counts = +self._counts
        self._chunks = [c for c in self._chunks if c[0] != file]
        self.quarantine = [q for q in self.quarantine if q.file != file]

    def summary(self) -> ShardSummary:
        return ShardSummary(
            read=self.read,
            kept=self._counts[(KEPT, "")],
            dropped={r: n for (o, r), n in sorted(self._counts.items()) if o == DROPPED},
            quarantined={r: n for (o, r), n in sorted(self._counts.items()) if o == QUARANTINED},
            metrics=dict(sorted(self.metrics.items())),
        )

    def write(self, ledger_url: str, quarantine_url: str) -> None:
        sizes = np.array([len(c[2]) for c in self._chunks], np.int64)

        def runs(values: list[str]) -> pa.DictionaryArray:  # one value per chunk, repeated over its rows
            names = sorted(set(values))
            index = np.repeat(np.array([names.index(v) for v in values], np.int32), sizes)
            return pa.DictionaryArray.from_arrays(array(index, pa.int32()), array(names, pa.string()))

        def rows(k: int) -> list:
            return list(
                chain.from_iterable([c[k]] * len(c[2]) if isinstance(c[k], str) else c[k] for c in self._chunks)
            )

        table = pa.table(
            {
                "file": runs([c[0] for c in self._chunks]),
                "line": array(
                    np.concatenate([np.asarray(c[2], np.int64) for c in self._chunks] or [np.zeros(0, np.int64)]),
                    pa.int64(),
                ),
                "id": array(rows(3), pa.string()),
                "outcome": runs([c[1] for c in self._chunks]),
                "reason": dictionary(rows(4)),
                "detail": array(rows(5), pa.string()),
            }
        )
        write_parquet(ledger_url, table)
        if self.quarantine:
            write_lines(quarantine_url, self.quarantine)
