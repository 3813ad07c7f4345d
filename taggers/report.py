"""The tag stage's part of the HTML report: language and quality-score distributions of its attributes.

It reads a bounded sample of the stage's attribute files (``SAMPLE_LINES``), so the report costs the same on
any corpus size.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

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


def _attribute_scores(stage) -> Iterator[dict[str, float]]:
    """Document-level scores (the first span's score) of a tag stage's attribute files, up to SAMPLE_LINES."""
    seen = 0
    for url in io.list_files(io.join(stage.output, "**", "*")):
        for _, line in io.read_attributes(url):
            if isinstance(line, io.Rejected):
                continue
            yield {k: v[0][2] for k, v in line.attributes.items() if v and len(v) == 1}
            seen += 1
            if seen >= SAMPLE_LINES:
                return


def score_sections(stage) -> list[Section]:
    """Language and score distributions of one tag stage (``stage``: a TagStage)."""
    rows = list(_attribute_scores(stage))
    if not rows:
        return []
    images = []
    languages = Counter()
    top_scores = []
    passes: dict[str, list[float]] = {}
    for r in rows:
        lang = {k.rsplit("__", 1)[1]: v for k, v in r.items() if "__ft_lang_id_v1__" in k}
        if lang:
            best = max(lang, key=lang.get)
            languages[best] += 1
            top_scores.append(lang[best])
        for k, v in r.items():
            if k.endswith("__pass"):
                passes.setdefault(k.split("__")[1], []).append(v)
    if languages:
        fig, axes = figure(9, 3.4, 1, 2)
        ax1, ax2 = axes[0]
        common = languages.most_common(12)
        ax1.bar([k for k, _ in common], [v for _, v in common], color="#1565c0")
        ax1.set_title("top language per document")
        ax2.hist(top_scores, bins=20, range=(0, 1), color="#1565c0")
        ax2.set_title("top-language probability")
        images.append(png(fig))
    if passes:
        fig, ax = figure()
        names = sorted(passes)
        ax.bar(names, [float(np.mean(passes[n])) for n in names], color=COLORS["kept"])
        ax.set_ylim(0, 1)
        ax.set_ylabel("share of documents passing")
        ax.set_title("Heuristic rule sets at their published thresholds")
        images.append(png(fig))
    present = {k.split("__", 1)[1]: k for r in rows[:1000] for k in r}
    quality_keys = [present[k] for k in SCORE_KEYS if k in present]
    quality_keys += sorted(v for k, v in present.items() if k.startswith("fasttext_classifier_v1__"))[:3]
    if quality_keys:
        n_rows = (len(quality_keys) + 2) // 3
        fig, axes = figure(9, 2.6 * n_rows, n_rows, 3)
        for ax in axes.flat[len(quality_keys) :]:
            ax.axis("off")
        for ax, key in zip(axes.flat, quality_keys):
            values = np.array([r[key] for r in rows if key in r], dtype=float)
            ax.hist(values, bins=30, color="#6a1b9a")
            ax.set_title(key.split("__", 1)[1], fontsize=8)
        images.append(png(fig))
    note = f"Scores of {len(rows):,} documents" + (" (a sample)" if len(rows) >= SAMPLE_LINES else "") + "."
    return [Section(f"Quality and language ({stage.output})", note, images)]
