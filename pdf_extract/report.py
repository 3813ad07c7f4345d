"""The pdf stage's part of the HTML report: token lengths of the long-context (PDF) pool."""

from __future__ import annotations

import msgspec
import numpy as np

from dolma import io
from dolma.runtime.report import Section, figure, png
from pdf_extract.stage import BUCKETS, PdfStage


def long_context_section(stage: PdfStage) -> list[Section]:
    """The token lengths of the stage's documents against the length-bucket edges."""
    tokens = []
    for url in io.list_files(io.join(stage.output, "*.jsonl.zst")):
        for batch in io.read_documents(url):
            tokens += [msgspec.json.decode(d.metadata).get("tokens", 0) for d in batch.docs]
    if not tokens:
        return []
    fig, ax = figure()
    edges = np.geomspace(max(1, min(tokens)), max(tokens) * 1.01 + 1, 30)
    ax.hist(tokens, bins=edges, color="#00838f")
    ax.set_xscale("log")
    for limit, _ in BUCKETS:
        ax.axvline(limit, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("tokens per PDF document (dotted: length-bucket edges 8k…128k)")
    ax.set_ylabel("documents")
    ax.set_title("Token lengths of the long-context (PDF) pool")
    long = sum(t > 8192 for t in tokens)
    note = f"{len(tokens):,} PDF documents, {long:,} of them over 8k tokens."
    return [Section("Long-context pool", note, [png(fig)])]
