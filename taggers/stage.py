"""The ``tag`` stage: run many taggers over each document shard, reading and decompressing it once.

Output is allenai dolma's attribute layout: documents at ``X/documents/<rel>`` get
``X/attributes/<experiment>/<rel>`` (or ``<output>/<rel>`` when ``output`` is given), one line per document
line, keys ``<experiment>__<tagger>__<key>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from dolma import io
from dolma.core.config import param
from dolma.core.document import AttributeLine
from dolma.core.errors import UserError
from dolma.runtime.ledger import ShardLedger
from dolma.runtime.report import Section
from dolma.runtime.shards import AlignedAttributes, read_shard
from dolma.runtime.stage import Stage, Task, shard_tasks
from taggers.registry import Tagger, TextBatch, build_tagger, load_builtin, load_modules


@dataclass
class TagStage(Stage):
    input: str = param(help="glob of document files under a 'documents/' folder")
    taggers: list[str | dict[str, Any]] = param(
        help="tagger names, or YAML mappings with parameters: '{name: decontam_v1, eval_files: [x]}'"
    )
    experiment: str = param("tags", "attribute set name")
    tagger_modules: list[str] = param(help="modules or .py files that register more taggers", factory=list)
    batch_size: int = param(1024, "documents per batch", ge=1)
    name: str = param("tag", "the stage's name in the ledger (unique in a recipe)")
    output: str = param("", "the attribute folder (default: attributes/<experiment> beside documents/)")

    def __post_init__(self) -> None:
        if "/documents/" not in self.input and not self.input.startswith("documents/"):
            raise UserError(f"tag input {self.input!r} must lie under a 'documents/' folder (Dolma layout)")
        self.output = self.output or self.default_output()
        self.build()  # fail before any work if a tagger or parameter is unknown

    def build(self) -> list[Tagger]:
        load_builtin()
        load_modules(self.tagger_modules)
        if not self.taggers:
            raise UserError("tag: give at least one tagger (see `dolma list`)")
        return [build_tagger(spec) for spec in self.taggers]

    def tasks(self) -> list[Task]:
        return shard_tasks(self.input)

    def run(self, task: Task, ledger: ShardLedger) -> None:
        taggers = self.build()
        src = task.payload.url
        with AlignedAttributes(self.attributes_of(src)) as out:
            for batch in read_shard(src, ledger, self.batch_size, keep_all=True):
                out.write(batch, tag_batch(taggers, self.experiment, batch))

    def default_output(self) -> str:
        return io.join(self.input.rpartition("/documents/")[0], "attributes", self.experiment)

    def attributes_of(self, src: str) -> str:
        """Where a document file's attributes go: beside its ``documents/`` folder (which a glob such as
        ``pool/*/documents/*`` makes one per source), or its path under ``documents/`` under ``output``."""
        if self.output == self.default_output():
            return io.attributes_url(src, self.experiment)
        rel = src[len("documents/") :] if src.startswith("documents/") else src.rpartition("/documents/")[2]
        return io.join(self.output, rel)

    def report(self) -> list[Section]:
        from taggers.report import score_sections

        return score_sections(self)


def tag_batch(taggers: list[Tagger], experiment: str, batch: io.DocBatch) -> list[AttributeLine]:
    """An attribute line for every document of the batch, keys ``<experiment>__<tagger>__<key>``."""
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
    return [AttributeLine(d.id, a) for d, a in zip(batch.docs, per_doc)]
