"""The tag stage's part of the HTML report: language and quality-score distributions of its attributes.

It reads a bounded sample of the stage's attribute files (``SAMPLE_LINES``) and keeps, per line, only the few
numbers it draws, so the report costs the same on any corpus size (keeping every line's scores whole grew the
driver's memory with the corpus: 717 MB at 107k documents).
"""

from __future__ import annotations

from array import array
from collections import Counter

import numpy as np

from dolma import io
from dolma.runtime.report import COLORS, Section, figure, png

SAMPLE_LINES = 200_000  # attribute lines read per tag stage for the score distributions
# the scores whose distributions say most about a pool, when the tag stage produced them
SCORE_KEYS = [
    "fineweb_v1__line_punct_ratio",
    "fineweb_v1__short_line_ratio",
    "gopher_quality_v1__mean_word_length",
    "gopher_quality_v1__alpha_words_ratio",
    "gopher_repetition_v1__dup_line_frac",
    "stats_v1__tokens",
]


class _Scores:
    """What the report draws, gathered a line at a time (a line's scores are dropped once counted, so memory is
    a few numbers per line read, not a dict of every key of every line)."""

    def __init__(self) -> None:
        self.lines = 0
        self.languages: Counter[str] = Counter()
        self.top = array("d")  # each document's top-language probability
        self.passes: dict[str, array] = {}  # rule set -> its pass scores
        self.values: dict[str, array] = {}  # the keys histograms may show -> their scores
        self._into: dict[str, array | None] = {}

    def add(self, scores: dict[str, float]) -> None:
        self.lines += 1
        lang = {k.rsplit("__", 1)[1]: v for k, v in scores.items() if "__ft_lang_id_v1__" in k}
        if lang:
            best = max(lang, key=lang.get)
            self.languages[best] += 1
            self.top.append(lang[best])
        for k, v in scores.items():
            if (into := self._into.get(k, False)) is False:
                into = self._into[k] = self._where(k)
            if into is not None:
                into.append(v)

    def _where(self, key: str) -> array | None:
        """Where a key's scores go (decided once per key): a rule set's passes, a histogram's values, nowhere."""
        if key.endswith("__pass"):
            return self.passes.setdefault(key.split("__")[1], array("d"))
        name = key.split("__", 1)[-1]
        if name in SCORE_KEYS or name.startswith("fasttext_classifier_v1__"):
            return self.values.setdefault(key, array("d"))
        return None

    def quality_keys(self) -> list[str]:
        """The score keys to draw: the chosen ones present, then up to three quality classifier labels."""
        present = {k.split("__", 1)[1]: k for k in self.values}
        keys = [present[k] for k in SCORE_KEYS if k in present]
        return keys + sorted(v for k, v in present.items() if k.startswith("fasttext_classifier_v1__"))[:3]


def _attribute_scores(stage) -> _Scores:
    """Document-level scores (the first span's score) of a tag stage's attribute files, up to SAMPLE_LINES."""
    scores = _Scores()
    for url in io.list_files(io.join(stage.output, "**", "*")):
        for _, line in io.read_attributes(url):
            if isinstance(line, io.Rejected):
                continue
            scores.add({k: v[0][2] for k, v in line.attributes.items() if v and len(v) == 1})
            if scores.lines >= SAMPLE_LINES:
                return scores
    return scores


def score_sections(stage) -> list[Section]:
    """Language and score distributions of one tag stage (``stage``: a TagStage)."""
    scores = _attribute_scores(stage)
    if not scores.lines:
        return []
    images = []
    languages, passes = scores.languages, scores.passes
    if languages:
        fig, axes = figure(9, 3.4, 1, 2)
        ax1, ax2 = axes[0]
        common = languages.most_common(12)
        ax1.bar([k for k, _ in common], [v for _, v in common], color="#1565c0")
        ax1.set_title("top language per document")
        ax2.hist(np.frombuffer(scores.top), bins=20, range=(0, 1), color="#1565c0")
        ax2.set_title("top-language probability")
        images.append(png(fig))
    if passes:
        fig, ax = figure()
        names = sorted(passes)
        ax.bar(names, [float(np.mean(np.frombuffer(passes[n]))) for n in names], color=COLORS["kept"])
        ax.set_ylim(0, 1)
        ax.set_ylabel("share of documents passing")
        ax.set_title("Heuristic rule sets at their published thresholds")
        images.append(png(fig))
    quality_keys = scores.quality_keys()
    if quality_keys:
        n_rows = (len(quality_keys) + 2) // 3
        fig, axes = figure(9, 2.6 * n_rows, n_rows, 3)
        for ax in axes.flat[len(quality_keys) :]:
            ax.axis("off")
        for ax, key in zip(axes.flat, quality_keys):
            ax.hist(np.frombuffer(scores.values[key]), bins=30, color="#6a1b9a")
            ax.set_title(key.split("__", 1)[1], fontsize=8)
        images.append(png(fig))
    note = f"Scores of {scores.lines:,} documents" + (" (a sample)" if scores.lines >= SAMPLE_LINES else "") + "."
    return [Section(f"Quality and language ({stage.output})", note, images)]
