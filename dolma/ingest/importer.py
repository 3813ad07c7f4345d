"""The ``import`` stage: bring Dolma-format documents (from any tool) into a clean, validated tree.

Every line is checked (JSON, UTF-8, schema, unique id within the shard, readable compression, attribute
alignment). Usable documents are written unchanged, in order, to ``<output>/<shard>`` (and the named attribute
sets, realigned, to the sibling ``attributes/`` tree); everything else is quarantined with its file, line and
reason. Later stages can then rely on every line being a valid document.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import Literal

from dolma import io
from dolma.core.config import param
from dolma.core.document import ENCODER, AttributeLine
from dolma.core.errors import UserError
from dolma.runtime.ledger import ShardLedger
from dolma.runtime.shards import AlignedAttributes, read_shard
from dolma.runtime.stage import Stage, Task, shard_tasks

SUFFIXES = {"jsonl": ".jsonl", "gz": ".jsonl.gz", "zst": ".jsonl.zst", "parquet": ".parquet"}


@dataclass
class ImportStage(Stage):
    input: str = param(help="glob or folder of document files, e.g. 'data/documents/*.jsonl.gz'")
    output: str = param(help="output folder (a 'documents/' folder when attributes are carried along)")
    compression: Literal["zst", "gz", "jsonl", "parquet"] = param("zst", "output format")
    attributes: list[str] = param(help="attribute sets to carry along, realigned with the kept documents", factory=list)
    batch_size: int = param(4096, "documents per batch (bounds memory)", ge=1)
    name: str = param("import", "the stage's name in the ledger (unique in a recipe)")

    def __post_init__(self) -> None:
        io.refuse_output_in_input(self.input, self.output, self.name)
        if self.compression not in SUFFIXES:
            raise UserError(f"compression must be one of {sorted(SUFFIXES)}, not {self.compression!r}")
        if self.attributes and self.compression == "parquet":
            raise UserError("attribute trees are JSONL; use compression zst, gz or jsonl with attributes")

    def tasks(self) -> list[Task]:
        tasks = shard_tasks(self.input)
        for task in tasks:
            io.require_attributes(task.payload.url, self.attributes, self.name)
        return tasks

    def inputs(self, task: Task) -> list[str]:
        return [task.payload.url] + [io.attributes_url(task.payload.url, n) for n in self.attributes]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        src = task.payload.url
        out = io.join(self.output, task.key + SUFFIXES[self.compression])
        sources = {name: io.attributes_url(src, name) for name in self.attributes}
        seen: dict[str, int] = {}

        def aligned(url: str, batch_size: int):
            return io.read_aligned(url, sources, batch_size)

        with ExitStack() as stack:
            docs_out = stack.enter_context(io.DocumentWriter(out))
            attrs_out = {n: stack.enter_context(AlignedAttributes(io.attributes_url(out, n))) for n in sources}
            for batch in read_shard(src, ledger, self.batch_size, reader=aligned):
                keep, duplicates = [], []
                for i, (doc, number) in enumerate(zip(batch.docs, batch.lines)):
                    first = seen.setdefault(doc.id, number)
                    if first == number:
                        keep.append(i)
                    else:
                        reason = f"id {doc.id!r} already at line {first}"
                        duplicates.append(io.rejected_line(number, "duplicate_id", reason, ENCODER.encode(doc), doc.id))
                docs = [batch.docs[i] for i in keep]
                ledger.quarantined(src, duplicates)
                ledger.kept(src, [batch.lines[i] for i in keep], [d.id for d in docs])
                docs_out.write(docs)
                for name, writer in attrs_out.items():
                    writer.write_lines([AttributeLine(batch.docs[i].id, batch.attributes[i][name]) for i in keep])
                ledger.metrics["bytes"] += batch.nbytes
