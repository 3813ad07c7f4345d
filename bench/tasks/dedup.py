"""Dedup tasks: MinHash documents (ours, both presets, against datatrove's four-stage MinHash) and paragraphs
(ours, exact method, against allenai's ``dolma dedupe`` Bloom filter with the same n-grams and threshold).

MinHash runs on the planted near-duplicate corpus (``neardup``: one shard small, both large); the check is the
recall of the planted pairs at Jaccard ≥ 0.8 among the documents of the large input, for every contender.
Paragraphs run on the docs shards; the check is that both tools mark mostly the same paragraphs. They do not
mark exactly the same: on a cut of docs shard 0, about 80% of the marked paragraphs that have a word are common
to both (82% of those of 13 words or more), so the two tools' paragraph rules differ in more than the span ends.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from bench.harness import Contender, Size, Target, Task
from bench.tasks.common import (
    allenai,
    allenai_env,
    attributes,
    cut,
    datatrove,
    lines,
    link_input,
    ours,
    require,
)

WORD = re.compile(r"\w")
D3, FW, DT = "ours: dolma dedup --preset dolma3", "ours: dolma dedup --preset fineweb", "datatrove MinHash (14x8)"


def _sizes(files: list[Path], work: Path, shares: tuple[float, float], unit: str) -> tuple[Size, Size]:
    out = []
    for label, (chosen, share) in zip(("small", "large"), shares):
        size, docs = cut(files[:chosen], share, work / "in" / label)
        out.append(Size(label, size / 1e6 if unit == "MB" else docs, {"dir": work / "in" / label}))
    return out[0], out[1]


def minhash(corpora: Path, work: Path, quick: bool) -> Task:
    files = sorted((corpora / "neardup" / "documents").glob("*.jsonl.gz"))
    shares = ((1, 0.04), (2, 0.1)) if quick else ((1, 1.0), (2, 1.0))

    def ours_dedup(preset: str):
        def command(size: Size, out: Path) -> list[str]:
            return ours(
                "dedup",
                *("--documents", f"{out}/documents/*.jsonl.gz", "--work", str(out / "work"), "--name", "d"),
                *("--preset", preset, "--workers", "1"),
            )

        return command

    def datatrove_minhash(size: Size, out: Path) -> list[str]:
        return datatrove("datatrove_minhash.py", str(size.inputs["dir"]), str(out / "work"), str(out / "dt.json"))

    def check(outs: dict[str, Path]) -> dict:
        present = {r["id"] for r in attributes(outs[D3] / "attributes" / "d")}
        truth = [json.loads(line) for line in open(corpora / "neardup" / "groundtruth.jsonl")]
        pairs = [t for t in truth if t["jaccard_5gram"] >= 0.8 and {t["copy"], t["original"]} <= present]
        removed = {
            name: {
                r["id"]
                for r in attributes(outs[name] / "attributes" / "d")
                if r["attributes"]["d__minhash__duplicate"][0][2] == 1
            }
            for name in (D3, FW)
        }
        removed[DT] = set(json.loads((outs[DT] / "dt.json").read_text())["removed"])
        recall = {
            k: sum(bool({t["copy"], t["original"]} & v) for t in pairs) / max(len(pairs), 1) for k, v in removed.items()
        }
        for name, r in recall.items():
            require(r >= 0.95, f"{name} found {r:.3f} of the planted pairs at Jaccard >= 0.8 (< 0.95)")
        return {
            "planted pairs at Jaccard >= 0.8": len(pairs),
            "recall (one of the pair removed)": {k: round(v, 4) for k, v in recall.items()},
            "documents removed": {k: len(v) for k, v in removed.items()},
        }

    return Task(
        "minhash",
        "documents",
        _sizes(files, work, shares, "documents"),
        [
            Contender(D3, "ours", ours_dedup("dolma3"), prepare=link_input),
            Contender(FW, "ours", ours_dedup("fineweb"), prepare=link_input),
            Contender(DT, "peer", datatrove_minhash),
        ],
        check,
        [Target(D3, DT, 20.0, "end_to_end")],
        "all steps: signatures, bands, pairs, (verification), clusters, attributes; dolma3 = 26x11 bands with a "
        "Jaccard check at 0.8, fineweb = datatrove's 14x8",
    )


def paragraphs(corpora: Path, work: Path, quick: bool) -> Task:
    files = sorted((corpora / "docs").glob("shard-*.jsonl.gz"))
    shares = ((1, 0.05), (2, 0.1)) if quick else ((1, 0.5), (2, 1.0))
    name_ours, name_peer = "ours: dolma dedup-paragraphs (exact)", "allenai dolma dedupe paragraphs (Bloom)"

    def ours_paragraphs(size: Size, out: Path) -> list[str]:
        return ours(
            "dedup-paragraphs",
            *("--documents", f"{out}/documents/*.jsonl.gz", "--name", "p", "--min-words", "1"),
            *("--ngram", "13", "--overlap-threshold", "0.5", "--workers", "1"),
        )

    def allenai_paragraphs(size: Size, out: Path) -> list[str]:
        return allenai(
            "dedupe",
            *("--documents", f"{out}/documents/*.jsonl.gz", "--dedupe.name", "peer"),
            *("--dedupe.paragraphs.attribute_name", "bff_duplicate_paragraph_spans"),
            *("--dedupe.paragraphs.by_ngram.ngram_length", "13"),
            *("--dedupe.paragraphs.by_ngram.overlap_threshold", "0.5"),
            *("--bloom_filter.file", str(out / "bloom.bin"), "--no-bloom_filter.read_only"),
            *("--bloom_filter.estimated_doc_count", "10000000", "--bloom_filter.desired_false_positive_rate", "0.0001"),
            *("--processes", "1"),
        )

    def starts(folder: Path, key: str) -> set[tuple]:
        """(id, start) of every marked paragraph that has a word: allenai's spans end after the newline and it
        also marks word-less lines ("-", blank), which have no n-gram here and are never marked."""
        texts = {}
        for f in sorted((folder.parent.parent / "documents").iterdir()):
            texts.update((d["id"], d["text"]) for d in map(json.loads, lines(f)))
        return {
            (r["id"], s[0])
            for r in attributes(folder)
            for s in r["attributes"].get(key) or []
            if WORD.search(texts[r["id"]], s[0], s[1])
        }

    def check(outs: dict[str, Path]) -> dict:
        mine = starts(outs[name_ours] / "attributes" / "p", "p__paragraph_bloom__duplicate_paragraph")
        theirs = starts(outs[name_peer] / "attributes" / "peer", "bff_duplicate_paragraph_spans")
        agree = len(mine & theirs) / max(len(mine | theirs), 1)
        require(agree >= 0.6, f"ours and allenai share {agree:.4f} of their duplicate paragraphs (< 0.6)")
        require(0.75 <= len(mine) / max(len(theirs), 1) <= 1.33, f"duplicate paragraphs: {len(mine)} vs {len(theirs)}")
        return {
            "duplicate paragraphs with a word (ours, allenai)": [len(mine), len(theirs)],
            "in common": round(agree, 4),
        }

    return Task(
        "paragraphs",
        "MB",
        _sizes(files, work, shares, "MB"),
        [
            Contender(name_ours, "ours", ours_paragraphs, prepare=link_input),
            Contender(name_peer, "peer", allenai_paragraphs, allenai_env(), prepare=link_input),
        ],
        check,
        [],
        "13-word n-grams, a paragraph is a duplicate when half of its n-grams were seen before",
    )
