"""Heuristic rules against datatrove: rule-by-rule agreement, and documents per second, on the same documents."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from bench.peers import ensure_peer
from dolma import io
from taggers.registry import TextBatch, build_tagger, load_builtin

PEER_SCRIPT = Path(__file__).parent / "peer_scripts" / "datatrove_heuristics.py"
RULE_SETS = ("gopher_quality_v1", "gopher_repetition_v1", "c4_v1", "fineweb_v1")
DUP_NGRAMS = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))


def our_values(texts: list[str]) -> dict[str, dict[str, np.ndarray]]:
    load_builtin()
    batch = TextBatch(pl.Series(texts, dtype=pl.String))
    return {name: build_tagger(name).tag(batch) for name in RULE_SETS}


def rule_decisions(v: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Keep (True) / drop per rule at the published defaults, named as the peer script names them."""
    gq, gr, c4, fw = (v[n] for n in RULE_SETS)
    out = {
        "gopher_quality_v1/words": (gq["words"] >= 50) & (gq["words"] <= 100_000),
        "gopher_quality_v1/mean_word_length": (gq["mean_word_length"] >= 3) & (gq["mean_word_length"] <= 10),
        "gopher_quality_v1/symbols": (gq["hash_ratio"] <= 0.1) & (gq["ellipsis_ratio"] <= 0.1),
        "gopher_quality_v1/bullet_lines_ratio": gq["bullet_lines_ratio"] <= 0.9,
        "gopher_quality_v1/ellipsis_lines_ratio": gq["ellipsis_lines_ratio"] <= 0.3,
        "gopher_quality_v1/alpha_words_ratio": gq["alpha_words_ratio"] >= 0.8,
        "gopher_quality_v1/stop_words": gq["stop_words"] >= 2,
        "c4_v1/lorem_ipsum": c4["lorem_ipsum"] == 0,
        "c4_v1/curly_bracket": c4["curly_bracket"] == 0,
        "c4_v1/sentences": c4["sentences"] >= 5,
        "fineweb_v1/line_punct_ratio": fw["line_punct_ratio"] >= 0.12,
        "fineweb_v1/short_line_ratio": fw["short_line_ratio"] <= 0.67,
        "fineweb_v1/char_dup_ratio": fw["char_dup_ratio"] <= 0.01,
        "fineweb_v1/list_ratio": fw["list_ratio"] <= 0.3,
    }
    for key, limit in (
        ("dup_para_frac", 0.3),
        ("dup_para_char_frac", 0.2),
        ("dup_line_frac", 0.3),
        ("dup_line_char_frac", 0.2),
        ("top_2_gram_char_frac", 0.2),
        ("top_3_gram_char_frac", 0.18),
        ("top_4_gram_char_frac", 0.16),
    ) + tuple((f"dup_{n}_gram_char_frac", t) for n, t in DUP_NGRAMS):
        out[f"gopher_repetition_v1/{key}"] = gr[key] <= limit
    for name in RULE_SETS:
        out[f"{name}/pass"] = v[name]["pass"] > 0
    return out


def datatrove_decisions(docs_file: str, limit: int) -> dict[str, list]:
    python = ensure_peer("datatrove") / "python"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "decisions.json"
        subprocess.run(
            [str(python), str(PEER_SCRIPT), docs_file, str(limit), str(out)], check=True, capture_output=True
        )
        return json.loads(out.read_text())


def agreement(docs_file: str, limit: int) -> dict[str, float]:
    """Share of documents on which our keep/drop decision equals datatrove's, per rule."""
    theirs = datatrove_decisions(docs_file, limit)
    texts = {d.id: d.text for b in io.read_documents(docs_file) for d in b.docs}
    ours = rule_decisions(our_values([texts[i] for i in theirs["ids"]]))
    return {rule: float(np.mean(np.asarray(ours[rule]) == np.asarray(theirs[rule]))) for rule in ours}
