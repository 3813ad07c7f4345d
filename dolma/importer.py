"""The ``import`` stage: bring Dolma-format documents (from any tool) into a clean, validated tree.

Every line is checked (JSON, UTF-8, schema, unique id within the shard, readable compression, attribute
alignment). Usable documents are written unchanged, in order, to ``<output>/<shard>`` (and the named attribute
sets, realigned, to the sibling ``attributes/`` tree); everything else is quarantined with its file, line and
reason. Later stages can then rely on every line being a valid document.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field

from dolma import io
from dolma.document import ENCODER, AttributeLine
from dolma.executor import Task, report_progress
from dolma.io import Rejected
from dolma.ledger import ShardLedger

SUFFIXES = {"jsonl": ".jsonl", "gz": ".jsonl.gz", "zst": ".jsonl.zst", "parquet": ".parquet"}


@dataclass
class ImportStage:
    input: str
    output: str
    compression: str = "zst"
    attributes: list[str] = field(default_factory=list)
    batch_size: int = 4096
    name: str = "import"

    def __post_init__(self) -> None:
        if self.compression not in SUFFIXES:
            raise io.UserError(f"compression must be one of {sorted(SUFFIXES)}, not {self.compression!r}")
        if self.attributes and self.compression == "parquet":
            raise io.UserError("attribute trees are JSONL; use compression zst, gz or jsonl with attributes")

    def tasks(self) -> list[Task]:
        return [Task(io.strip_suffix(io.relative_to_root(f, self.input)), (f,)) for f in io.document_files(self.input)]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        src = task.inputs[0]
        out = io.join(self.output, task.key + SUFFIXES[self.compression])
        sources = {name: io.attributes_url(src, name) for name in self.attributes}
        seen: dict[str, int] = {}
        with ExitStack() as stack:
            docs_out = stack.enter_context(io.DocumentWriter(out))
            attrs_out = {n: stack.enter_context(io.AtomicWriter(io.attributes_url(out, n))) for n in sources}
            for batch in io.read_aligned(src, sources, self.batch_size):
                ledger.read += len(batch.docs) + len(batch.rejected)
                keep = []
                for i, (doc, number) in enumerate(zip(batch.docs, batch.lines)):
                    first = seen.setdefault(doc.id, number)
                    if first == number:
                        keep.append(i)
                    else:
                        reason = f"id {doc.id!r} already at line {first}"
                        batch.rejected.append(Rejected(number, "duplicate_id", reason, id=doc.id))
                docs = [batch.docs[i] for i in keep]
                ledger.quarantined(src, batch.rejected)
                ledger.kept(src, [batch.lines[i] for i in keep], [d.id for d in docs])
                docs_out.write(docs)
                for name, writer in attrs_out.items():
                    lines = [AttributeLine(batch.docs[i].id, batch.attributes[i][name]) for i in keep]
                    writer.write(ENCODER.encode_lines(lines))
                ledger.metrics["bytes"] += batch.nbytes
                report_progress(len(batch.docs) + len(batch.rejected), batch.nbytes)
