"""The ``carve`` stage: a domain subset for continued pretraining, from a classifier's attributes.

Documents whose probability for one of the chosen labels reaches the threshold are kept; the rest are dropped
with reason ``not_<labels>``. The ledger metrics report, for every label of the classifier, how many documents
and characters had it as their top label, so a user sees how much of each domain the pool holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dolma import io
from dolma.core.config import param
from dolma.core.errors import UserError
from dolma.runtime.ledger import ShardLedger
from dolma.runtime.shards import read_shard
from dolma.runtime.stage import Stage, Task, shard_tasks


@dataclass
class CarveStage(Stage):
    input: str = param(help="glob of document files under a 'documents/' folder")
    output: str = param(help="output folder for the subset")
    attributes: str = param(help="the attribute set holding the classifier's scores")
    labels: list[str] = param(help="labels to keep")
    threshold: float = param(0.5, "minimum probability of one of the labels", ge=0, le=1)
    tagger: str = param("fasttext_classifier_v1", "the tagger whose <label> keys hold the scores")
    name: str = param("carve", "the stage's name in the ledger (unique in a recipe)")

    def __post_init__(self) -> None:
        io.refuse_output_in_input(self.input, self.output, self.name)

    def tasks(self) -> list[Task]:
        tasks = shard_tasks(self.input)
        for task in tasks:
            io.require_attributes(task.payload.url, [self.attributes], self.name)
        return tasks

    def inputs(self, task: Task) -> list[str]:
        return [task.payload.url, io.attributes_url(task.payload.url, self.attributes)]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        src = task.payload.url
        prefix = f"{self.attributes}__{self.tagger}__"
        reason = "not_" + "_or_".join(self.labels)
        with io.DocumentWriter(io.join(self.output, task.key + ".jsonl.zst")) as out:
            for batch in read_shard(src, ledger, 4096, reader=self._read):
                scores = [
                    {
                        k.removeprefix(prefix): v[0][2]
                        for k, v in a[self.attributes].items()
                        if k.startswith(prefix) and v
                    }
                    for a in batch.attributes
                ]
                if scores and not any(label in scores[0] for label in self.labels):
                    raise UserError(
                        f"{src}: attribute set {self.attributes!r} has no {prefix}<label> keys for "
                        f"labels {self.labels}; found {sorted(scores[0])}"
                    )
                best = [max(s, key=s.get) if s else "" for s in scores]
                for label, doc in zip(best, batch.docs):
                    ledger.metrics[f"top_label_documents/{label}"] += 1
                    ledger.metrics[f"top_label_chars/{label}"] += len(doc.text)
                keep = np.array(
                    [max((s.get(label, 0.0) for label in self.labels), default=0.0) >= self.threshold for s in scores],
                    bool,
                )
                docs = [d for d, k in zip(batch.docs, keep) if k]
                out.write(docs)
                ledger.kept(src, [n for n, k in zip(batch.lines, keep) if k], [d.id for d in docs])
                dropped = [(n, d.id) for n, d, k in zip(batch.lines, batch.docs, keep) if not k]
                ledger.dropped(src, [n for n, _ in dropped], [i for _, i in dropped], reason)

    def _read(self, url: str, batch_size: int):
        return io.read_aligned(url, {self.attributes: io.attributes_url(url, self.attributes)}, batch_size)
