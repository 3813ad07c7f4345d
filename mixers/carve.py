"""The ``carve`` stage: a domain subset for continued pretraining, from a classifier's attributes.

Documents whose probability for one of the chosen labels reaches the threshold are kept; the rest are dropped
with reason ``not_<labels>``. The ledger metrics report, for every label of the classifier, how many documents
and characters had it as their top label, so a user sees how much of each domain the pool holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dolma import io
from dolma.executor import Task, report_progress
from dolma.ledger import ShardLedger


@dataclass
class CarveStage:
    input: str
    output: str
    attributes: str  # the attribute set holding the classifier's output
    labels: list[str]
    threshold: float = 0.5
    tagger: str = "fasttext_classifier_v1"
    name: str = "carve"

    def tasks(self) -> list[Task]:
        return [Task(io.strip_suffix(io.relative_to_root(f, self.input)), (f,)) for f in io.document_files(self.input)]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        src = task.inputs[0]
        prefix = f"{self.attributes}__{self.tagger}__"
        reason = "not_" + "_or_".join(self.labels)
        with io.DocumentWriter(io.join(self.output, task.key + ".jsonl.zst")) as out:
            for batch in io.read_aligned(src, {self.attributes: io.attributes_url(src, self.attributes)}):
                ledger.read += len(batch.docs) + len(batch.rejected)
                ledger.quarantined(src, batch.rejected)
                scores = [
                    {
                        k.removeprefix(prefix): v[0][2]
                        for k, v in a[self.attributes].items()
                        if k.startswith(prefix) and v
                    }
                    for a in batch.attributes
                ]
                if scores and not any(label in scores[0] for label in self.labels):
                    raise io.UserError(
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
                report_progress(len(batch.docs) + len(batch.rejected), batch.nbytes)
