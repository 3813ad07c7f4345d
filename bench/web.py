"""Extraction quality on pages with ground truth: the ``web`` stage's extraction (its defaults, and with
``favor_precision``) vs trafilatura's defaults, every page decoded the way the stage decodes it.

- trafilatura's evaluation pages: share of must-contain snippets found and of must-not-contain snippets avoided;
- the article-extraction benchmark: token-level F1 of the extracted text against the human-written body.
"""

from __future__ import annotations

import collections
import gzip
import json
import re
from pathlib import Path

import trafilatura

from dolma.ingest.html import Options, decode, main_text

SETTINGS = {
    "ours (balanced, no comments, tables)": lambda html, url: main_text(html, url, Options()),
    "ours with favor_precision": lambda html, url: main_text(html, url, Options(favor_precision=True)),
    "trafilatura defaults": lambda html, url: trafilatura.extract(html, url=url),
}


def _tokens(text: str) -> collections.Counter:
    return collections.Counter(re.findall(r"\w+", text.lower()))


def f1(predicted: str, truth: str) -> float:
    p, t = _tokens(predicted), _tokens(truth)
    overlap = sum((p & t).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(p.values()), overlap / sum(t.values())
    return 2 * precision * recall / (precision + recall)


def evaluate(pages: Path, settings: tuple[str, ...] = tuple(SETTINGS)) -> dict:
    """Per setting: must-contain found, must-not-contain avoided (trafilatura's pages), mean token F1 (AEB)."""
    out = {}
    traf = json.loads((pages / "trafilatura" / "evaldata.json").read_text())
    aeb = json.loads((pages / "aeb" / "ground-truth.json").read_text())
    for name in settings:
        extract = SETTINGS[name]
        found = avoided = with_total = without_total = 0
        for url, item in traf.items():
            html = decode(gzip.open(pages / "trafilatura" / item["file"]).read(), None)[0]
            text = extract(html, url) or ""
            found += sum(s in text for s in item["with"])
            avoided += sum(s not in text for s in item["without"])
            with_total += len(item["with"])
            without_total += len(item["without"])
        scores = []
        for key, item in aeb.items():
            html = decode(gzip.open(pages / "aeb" / f"{key}.html.gz").read(), None)[0]
            scores.append(f1(extract(html, item.get("url")) or "", item["articleBody"]))
        out[name] = {
            "must-contain found": round(found / with_total, 4),
            "must-not-contain avoided": round(avoided / without_total, 4),
            "article body token F1 (mean)": round(sum(scores) / len(scores), 4),
        }
    return out
