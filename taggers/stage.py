"""The ``tag`` stage: run many taggers over each document shard, reading and decompressing it once.

Output is allenai dolma's attribute layout: documents at ``X/documents/<rel>`` get
``X/attributes/<experiment>/<rel>``, one line per document line, keys ``<experiment>__<tagger>__<key>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from dolma import io
from dolma.document import ENCODER, AttributeLine
from dolma.executor import Task, report_progress
from dolma.ledger import ShardLedger
from taggers.registry import Tagger, TextBatch, build_tagger, load_builtin, load_modules


@dataclass
class TagStage:
    input: str
    taggers: list[str | dict[str, Any]]
    experiment: str = "tags"
    tagger_modules: list[str] = field(default_factory=list)
    batch_size: int = 1024
    name: str = "tag"
    output: str = ""

    def __post_init__(self) -> None:
        if "/documents/" not in self.input and not self.input.startswith("documents/"):
            raise io.UserError(f"tag input {self.input!r} must lie under a 'documents/' folder (Dolma layout)")
        if not self.output:
            head = self.input.rpartition("/documents/")[0]
            self.output = io.join(head, "attributes", self.experiment)
        self.build()  # fail before any work if a tagger or parameter is unknown

    def build(self) -> list[Tagger]:
        load_builtin()
        load_modules(self.tagger_modules)
        if not self.taggers:
            raise io.UserError("tag: give at least one tagger (see `dolma list`)")
        return [build_tagger(spec) for spec in self.taggers]

    def tasks(self) -> list[Task]:
        return [Task(io.strip_suffix(io.relative_to_root(f, self.input)), (f,)) for f in io.document_files(self.input)]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        taggers = self.build()
        src = task.inputs[0]
        with io.AtomicWriter(io.attributes_url(src, self.experiment)) as out:
            for batch in io.read_documents(src, self.batch_size):
                ledger.read += len(batch.docs) + len(batch.rejected)
                ledger.quarantined(src, batch.rejected)
                ledger.kept(src, batch.lines, [d.id for d in batch.docs])
                lines = tag_batch(taggers, self.experiment, batch)
                out.write(ENCODER.encode_lines(lines))
                report_progress(len(batch.docs) + len(batch.rejected), batch.nbytes)


def tag_batch(taggers: list[Tagger], experiment: str, batch: io.DocBatch) -> list[AttributeLine]:
    """Attribute lines for every line of the batch, in file order; rejected lines get an empty line so the
    attribute file stays aligned with the document file."""
    texts = TextBatch(
        pl.Series("text", [d.text for d in batch.docs], dtype=pl.String), [bytes(d.metadata) for d in batch.docs]
    )
    lengths = texts.lengths
    per_doc: list[dict[str, list]] = [{} for _ in batch.docs]
    for t in taggers:
        for key, values in t.tag(texts).items():
            full = f"{experiment}__{t.name}__{key}"
            if isinstance(values, (np.ndarray, pl.Series)):
                scores = values.to_numpy() if isinstance(values, pl.Series) else values
                for attrs, n, score in zip(per_doc, lengths.tolist(), np.round(scores.astype(float), 6).tolist()):
                    attrs[full] = [[0, n, score]]
            else:  # spans: a document without any has no key (the mixer treats absent as "no spans")
                for attrs, spans in zip(per_doc, values):
                    if spans:
                        attrs[full] = spans
    lines = [(line, AttributeLine(d.id, a)) for line, d, a in zip(batch.lines, batch.docs, per_doc)]
    lines += [(r.line, AttributeLine(r.id or "", {})) for r in batch.rejected if r.reason != "corrupt_stream"]
    return [a for _, a in sorted(lines, key=lambda x: x[0])]
