"""The loops every per-shard stage shares, written once.

:func:`read_shard` reads a shard in batches and does the bookkeeping around each one: it counts what was
read, quarantines the unusable lines, records the documents as kept when the stage keeps all of them, and
reports progress after the stage has handled the batch. :class:`AlignedAttributes` writes an attribute file
that stays aligned line by line with its document file: a line the reader rejected gets an empty attribute
line in its place (the unreadable tail of a corrupt stream has no lines, so it gets none).
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Callable, Iterator
from typing import TypeVar

from dolma import io
from dolma.core.document import ENCODER, AttributeLine
from dolma.core.errors import UserError
from dolma.runtime.executors import report_progress
from dolma.runtime.ledger import ShardLedger

Batch = TypeVar("Batch", io.DocBatch, io.LineBatch, io.AttributeColumns)


def read_shard(
    url: str,
    ledger: ShardLedger,
    batch_size: int,
    *,
    keep_all: bool = False,
    reader: Callable[[str, int], Iterator[Batch]] = io.read_documents,
) -> Iterator[Batch]:
    """The batches of one shard (documents by default; raw lines or attribute columns with another
    ``reader``), counted and their rejected lines quarantined; ``keep_all`` records every document as kept
    (stages that drop nothing). Progress is reported once the caller has handled a batch."""
    for batch in reader(url, batch_size):
        n = batch.records
        ledger.read += n
        ledger.quarantined(url, batch.rejected)
        if keep_all:
            ledger.kept(url, batch.lines, [d.id for d in batch.docs])
        yield batch
        report_progress(n, batch.nbytes)


def unreadable(error: Exception) -> io.Rejected:
    """The record of a file that failed for a reason no line accounts for, naming the error and where."""
    frame = traceback.extract_tb(error.__traceback__)[-1]
    where = f" (at {os.path.basename(frame.filename)}:{frame.lineno})"
    return io.Rejected(0, "unreadable_file", io.error_text(error) + where)


@contextlib.contextmanager
def file_boundary(ledger: ShardLedger, url: str) -> Iterator[None]:
    """One file of a task over many: if reading it fails for a reason no line accounts for, what the ledger
    holds for it is replaced by one ``unreadable_file`` record and the task goes on with the next file (what
    the file's writer had not published is discarded by the writer itself)."""
    read_before = ledger.read
    try:
        yield
    except UserError:
        raise
    except Exception as e:
        ledger.forget(url)
        ledger.read = read_before + 1
        ledger.quarantined(url, [unreadable(e)])


def placeholder(rejected: io.Rejected) -> AttributeLine:
    """The attribute line that stands in for a rejected document line."""
    return AttributeLine(rejected.id or "", {})


class AlignedAttributes:
    """An attribute file written batch by batch, aligned with its document file, atomically."""

    def __init__(self, url: str):
        self._writer = io.AtomicWriter(url)

    def write(self, batch: io.DocBatch, lines: list[AttributeLine]) -> None:
        """``lines``: one per document of ``batch``; rejected lines get placeholders, all in file order."""
        numbered = list(zip(batch.lines, lines))
        numbered += [(r.line, placeholder(r)) for r in batch.rejected if r.reason != "corrupt_stream"]
        self._writer.write(ENCODER.encode_lines([a for _, a in sorted(numbered, key=lambda x: x[0])]))

    def write_lines(self, lines: list[AttributeLine]) -> None:
        """Lines already in file order."""
        self._writer.write(ENCODER.encode_lines(lines))

    def __enter__(self) -> AlignedAttributes:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._writer.__exit__(exc_type, exc, tb)
