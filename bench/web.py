"""Extraction quality on pages with ground truth: ours (favor_precision, no comments, tables) vs trafilatura's
defaults.

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

from dolma.ingest.web import decode

SETTINGS = {
    "ours (favor_precision, no comments, tables)": dict(
        favor_precision=True, include_comments=False, include_tables=True, deduplicate=False
    ),
    "trafilatura defaults": {},
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


def evaluate(pages: Path) -> dict:
    out = {}
    traf = json.loads((pages / "trafilatura" / "evaldata.json").read_text())
    aeb = json.loads((pages / "aeb" / "ground-truth.json").read_text())
    for name, settings in SETTINGS.items():
        found = avoided = with_total = without_total = 0
        for url, item in traf.items():
            html, _ = decode(gzip.open(pages / "trafilatura" / item["file"]).read(), None)
            text = trafilatura.extract(html, url=url, **settings) or ""
            found += sum(s in text for s in item["with"])
            avoided += sum(s not in text for s in item["without"])
            with_total += len(item["with"])
            without_total += len(item["without"])
        scores = []
        for key, item in aeb.items():
            html, _ = decode(gzip.open(pages / "aeb" / f"{key}.html.gz").read(), None)
            scores.append(f1(trafilatura.extract(html, url=item.get("url"), **settings) or "", item["articleBody"]))
        out[name] = {
            "must-contain found": round(found / with_total, 4),
            "must-not-contain avoided": round(avoided / without_total, 4),
            "article body token F1 (mean)": round(sum(scores) / len(scores), 4),
        }
    return out
