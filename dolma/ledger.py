"""Per-document accounting: every document a stage reads leaves it kept, dropped (with a reason) or quarantined.

A shard's ledger is written as Parquet (one row per document: line, id, outcome, reason, detail) next to a
quarantine file holding the raw unusable lines, so any document's fate can be looked up after the run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import msgspec
import pyarrow as pa

from dolma.io import Rejected, write_lines, write_parquet

KEPT, DROPPED, QUARANTINED = "kept", "dropped", "quarantined"


class QuarantineRecord(msgspec.Struct):
    file: str
    line: int
    reason: str
    error: str
    id: str | None = None
    raw: str = ""


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


class ShardLedger:
    """Collects one shard's outcomes; ``read`` is counted by the reader, outcomes by the stage."""

    def __init__(self) -> None:
        self.read = 0
        self.metrics: Counter[str] = Counter()
        self._file: list[str] = []
        self._line: list[int] = []
        self._id: list[str | None] = []
        self._outcome: list[str] = []
        self._reason: list[str] = []
        self._detail: list[str] = []
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
        n = len(lines)
        self._file += [file] * n
        self._line += lines
        self._id += ids
        self._outcome += [outcome] * n
        self._reason += [reasons] * n if isinstance(reasons, str) else reasons
        self._detail += [details] * n if isinstance(details, str) else details

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
                QuarantineRecord(file, r.line, r.reason, r.error, r.id, r.raw.decode("utf-8", "replace"))
            )

    def summary(self) -> ShardSummary:
        counts: Counter[tuple[str, str]] = Counter(zip(self._outcome, self._reason))
        return ShardSummary(
            read=self.read,
            kept=counts[(KEPT, "")],
            dropped={r: n for (o, r), n in sorted(counts.items()) if o == DROPPED},
            quarantined={r: n for (o, r), n in sorted(counts.items()) if o == QUARANTINED},
            metrics=dict(sorted(self.metrics.items())),
        )

    def write(self, ledger_url: str, quarantine_url: str) -> None:
        table = pa.table(
            {
                "file": pa.array(self._file, pa.string()).dictionary_encode(),
                "line": pa.array(self._line, pa.int64()),
                "id": pa.array(self._id, pa.string()),
                "outcome": pa.array(self._outcome, pa.string()).dictionary_encode(),
                "reason": pa.array(self._reason, pa.string()).dictionary_encode(),
                "detail": pa.array(self._detail, pa.string()),
            }
        )
        write_parquet(ledger_url, table)
        if self.quarantine:
            write_lines(quarantine_url, self.quarantine)
