"""Run in datatrove's own venv: per-rule keep/drop decisions of datatrove's Gopher, C4 and FineWeb filters.

Each rule is evaluated by a filter instance with only that rule enabled, so decisions can be compared rule by
rule. Usage: python datatrove_heuristics.py DOCS.jsonl[.gz] LIMIT OUT.json [--time]
With --time, runs the four default filters on every document and writes whether each passed all four.
"""

import functools
import gzip
import json
import sys

from datatrove.data import Document
from datatrove.pipeline.filters import (
    c4_filters,
    fineweb_quality_filter,
    gopher_quality_filter,
    gopher_repetition_filter,
)
from datatrove.pipeline.filters.c4_filters import C4QualityFilter
from datatrove.pipeline.filters.fineweb_quality_filter import FineWebQualityFilter
from datatrove.pipeline.filters.gopher_quality_filter import GopherQualityFilter
from datatrove.pipeline.filters.gopher_repetition_filter import GopherRepetitionFilter


def load(path, limit):
    opener = gzip.open if path.endswith(".gz") else open
    docs = []
    with opener(path, "rt") as f:
        for line in f:
            d = json.loads(line)
            docs.append(Document(text=d["text"], id=d["id"]))
            if len(docs) >= limit:
                break
    return docs


def keep(f, doc):
    r = f.filter(Document(text=doc.text, id=doc.id))
    return bool(r if isinstance(r, bool) else r[0])


GQ_OFF = dict(
    min_doc_words=None,
    max_doc_words=None,
    min_avg_word_length=None,
    max_avg_word_length=None,
    max_symbol_word_ratio=None,
    max_bullet_lines_ratio=None,
    max_ellipsis_lines_ratio=None,
    max_non_alpha_words_ratio=None,
    min_stop_words=None,
)
GQ_RULES = {
    "words": dict(min_doc_words=50, max_doc_words=100000),
    "mean_word_length": dict(min_avg_word_length=3, max_avg_word_length=10),
    "symbols": dict(max_symbol_word_ratio=0.1),
    "bullet_lines_ratio": dict(max_bullet_lines_ratio=0.9),
    "ellipsis_lines_ratio": dict(max_ellipsis_lines_ratio=0.3),
    "alpha_words_ratio": dict(max_non_alpha_words_ratio=0.8),
    "stop_words": dict(min_stop_words=2),
}
GR_OFF = dict(
    dup_line_frac=None,
    dup_para_frac=None,
    dup_line_char_frac=None,
    dup_para_char_frac=None,
    top_n_grams=(),
    dup_n_grams=(),
)
GR_RULES = {
    "dup_para_frac": dict(dup_para_frac=0.3),
    "dup_para_char_frac": dict(dup_para_char_frac=0.2),
    "dup_line_frac": dict(dup_line_frac=0.3),
    "dup_line_char_frac": dict(dup_line_char_frac=0.2),
    **{f"top_{n}_gram_char_frac": dict(top_n_grams=((n, t),)) for n, t in ((2, 0.2), (3, 0.18), (4, 0.16))},
    **{
        f"dup_{n}_gram_char_frac": dict(dup_n_grams=((n, t),))
        for n, t in ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))
    },
}
C4_RULES = {
    "lorem_ipsum": dict(filter_curly_bracket=False, min_num_sentences=-1),
    "curly_bracket": dict(filter_lorem_ipsum=False, min_num_sentences=-1),
    "sentences": dict(filter_lorem_ipsum=False, filter_curly_bracket=False),
}
FW_OFF = dict(line_punct_thr=-1, short_line_thr=2, char_duplicates_ratio=2, new_line_ratio=1e9)
FW_RULES = {
    "line_punct_ratio": dict(line_punct_thr=0.12),
    "short_line_ratio": dict(short_line_thr=0.67),
    "char_dup_ratio": dict(char_duplicates_ratio=0.01),
    "list_ratio": dict(new_line_ratio=0.3),
}


def main():
    path, limit, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    docs = load(path, limit)
    if "--time" in sys.argv:  # the benchmark times this whole process: every filter on every document
        filters = [GopherRepetitionFilter(), GopherQualityFilter(), C4QualityFilter(), FineWebQualityFilter()]
        passed = [all([keep(f, d) for f in filters]) for d in docs]
        json.dump({"ids": [d.id for d in docs], "pass": passed}, open(out, "w"))
        return
    # the same word split is reused by every single-rule filter: cache it (decisions are unchanged)
    from datatrove.utils import text as text_utils

    cached = functools.lru_cache(maxsize=None)(text_utils.split_into_words)
    for module in (gopher_quality_filter, gopher_repetition_filter, fineweb_quality_filter, c4_filters):
        if hasattr(module, "split_into_words"):
            module.split_into_words = cached
    result = {"ids": [d.id for d in docs]}
    for prefix, cls, off, rules in (
        ("gopher_quality_v1", GopherQualityFilter, GQ_OFF, GQ_RULES),
        ("gopher_repetition_v1", GopherRepetitionFilter, GR_OFF, GR_RULES),
        ("c4_v1", C4QualityFilter, {}, C4_RULES),
        ("fineweb_v1", FineWebQualityFilter, FW_OFF, FW_RULES),
    ):
        for rule, params in rules.items():
            f = cls(**{**off, **params})
            result[f"{prefix}/{rule}"] = [keep(f, d) for d in docs]
        result[f"{prefix}/pass"] = [keep(cls(), d) for d in docs]
    json.dump(result, open(out, "w"))


if __name__ == "__main__":
    main()
