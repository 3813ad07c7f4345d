"""Tasks over document shards: start-up, import, tokenize and the heuristic taggers.

Inputs are cut from ``docs/shard-0000{0,1}`` (real web documents, ~6.7k each): the large size is a full shard
(two for import), the small one a quarter of it; ``--quick`` takes smaller cuts.
"""

from __future__ import annotations

from pathlib import Path

from bench.harness import Contender, Size, Target, Task
from bench.paths import TOKENIZER
from bench.tasks.common import (
    allenai,
    allenai_env,
    attributes,
    ceiling,
    cut,
    datatrove,
    link_input,
    ours,
    printed,
    require,
    summaries,
    token_documents,
)

HEURISTICS = ["gopher_repetition_v1", "gopher_quality_v1", "c4_v1", "fineweb_v1"]


def sizes(corpora: Path, work: Path, shards: list[str], shares: tuple, unit: str = "MB") -> tuple[Size, Size]:
    """Two cuts of the docs shards: a share of each (a float) or its first N documents (an int)."""
    out = []
    for label, share in zip(("small", "large"), shares):
        folder = work / "in" / label
        limit = share if isinstance(share, int) else None
        size, docs = cut([corpora / "docs" / s for s in shards], float(share), folder, limit)
        out.append(Size(label, size / 1e6 if unit == "MB" else docs, {"dir": folder}))
    return out[0], out[1]


def files(size: Size) -> list[str]:
    return [str(f) for f in sorted(size.inputs["dir"].glob("*.jsonl.gz"))]


def startup(corpora: Path, work: Path, quick: bool) -> Task:
    """A stage's fixed cost: the CPU seconds of ``dolma import`` of 10 documents (and of 1,000, for the rate),
    against the bare read ceiling."""
    return Task(
        "startup",
        "documents",
        sizes(corpora, work, ["shard-00000.jsonl.gz"], (10, 1000), "documents"),
        [
            Contender("ours: dolma import", "ours", lambda s, o: ours_import(s, o)),
            Contender("ISA-L + msgspec read (ceiling)", "ceiling", lambda s, o: ceiling("read", *files(s))),
        ],
        lambda outs: _same_documents(outs, "ours: dolma import", "ISA-L + msgspec read (ceiling)"),
        [Target("ours: dolma import", None, 0.3, "fixed_seconds")],
        "the fixed CPU seconds of one stage as a user runs it: interpreter, imports, ledger and markers",
    )


def ours_import(size: Size, out: Path) -> list[str]:
    return ours("import", "--input", str(size.inputs["dir"]), "--output", str(out / "documents"), "--workers", "1")


def _same_documents(outs: dict[str, Path], ours_name: str, ceiling_name: str) -> dict:
    s, read = summaries(outs[ours_name]), printed(outs[ceiling_name])["documents"]
    require(s["read"] == read and s["kept"] == read, f"import kept {s} of the {read} documents the ceiling read")
    return {"documents (both)": read}


def importer(corpora: Path, work: Path, quick: bool) -> Task:
    shards = ["shard-00000.jsonl.gz"] if quick else ["shard-00000.jsonl.gz", "shard-00001.jsonl.gz"]
    return Task(
        "import",
        "MB",
        sizes(corpora, work, shards, (0.1, 0.4) if quick else (0.25, 1.0)),
        [
            Contender("ours: dolma import", "ours", ours_import),
            Contender("ISA-L + msgspec read (ceiling)", "ceiling", lambda s, o: ceiling("read", *files(s))),
        ],
        lambda outs: _same_documents(outs, "ours: dolma import", "ISA-L + msgspec read (ceiling)"),
        [],
        "validate every line, rewrite the shard as .jsonl.zst, ledger per document",
    )


def tokenize(corpora: Path, work: Path, quick: bool) -> Task:
    def allenai_tokens(size: Size, out: Path) -> list[str]:
        return allenai(
            "tokens",
            *("--documents", *files(size)),
            *("--destination", str(out / "tokens")),
            *("--tokenizer.name_or_path", TOKENIZER),
            *("--tokenizer.eos_token_id", "100257", "--tokenizer.pad_token_id", "100277"),
            *("--processes", "1", "--dtype", "uint32", "--seed", "0"),
        )

    def check(outs: dict[str, Path]) -> dict:
        mine = token_documents(outs["ours: dolma tokenize"] / "tokens")
        theirs = token_documents(outs["allenai dolma tokens"] / "tokens")
        raw = printed(outs["raw tokenizers batch encode (ceiling)"])
        same = sum(1 for k, v in mine.items() if theirs.get(k) == v)
        require(len(mine) == raw["documents"], f"ours tokenized {len(mine)} of {raw['documents']} documents")
        require(same == len(mine) == len(theirs), f"{same} of {len(mine)} documents have allenai's exact tokens")
        ours_tokens = sum(len(v) // 4 for v in mine.values())
        require(ours_tokens == raw["tokens"] + raw["documents"], "ours != raw encode + one EOS per document")
        return {"documents with identical token ids (ours, allenai)": same, "tokens (ours)": ours_tokens}

    shares = (0.05, 0.2) if quick else (0.25, 1.0)
    return Task(
        "tokenize",
        "MB",
        sizes(corpora, work, ["shard-00000.jsonl.gz"], shares),
        [
            Contender(
                "ours: dolma tokenize",
                "ours",
                lambda s, o: (
                    ours("tokenize", "--input", str(s.inputs["dir"]), "--output", str(o / "tokens"))
                    + ["--workers", "1"]
                ),
            ),
            Contender("allenai dolma tokens", "peer", allenai_tokens, allenai_env()),
            Contender("raw tokenizers batch encode (ceiling)", "ceiling", lambda s, o: ceiling("encode", *files(s))),
        ],
        check,
        [
            Target("ours: dolma tokenize", "raw tokenizers batch encode (ceiling)", 0.9),
            Target("ours: dolma tokenize", "allenai dolma tokens", 1.0),
        ],
        "dolma2 tokenizer, uint32 ids, EOS after every document, one thread",
    )


def heuristics(corpora: Path, work: Path, quick: bool) -> Task:
    def ours_tag(size: Size, out: Path) -> list[str]:
        return ours(
            "tag",
            *("--documents", f"{out}/documents/*.jsonl.gz", "--taggers", *HEURISTICS),
            *("--experiment", "h", "--output", str(out / "attributes" / "h"), "--workers", "1"),
        )

    def allenai_tag(size: Size, out: Path) -> list[str]:
        return allenai(
            "tag",
            *("--documents", f"{out}/documents/*.jsonl.gz", "--experiment", "peer"),
            *("--taggers", "gopher_v1", "c4_v1", "--processes", "1"),
        )

    def datatrove_filter(size: Size, out: Path) -> list[str]:
        return datatrove("datatrove_heuristics.py", files(size)[0], "1000000", str(out / "decisions.json"), "--time")

    def check(outs: dict[str, Path]) -> dict:
        import json

        rows = list(attributes(outs["ours: dolma tag (4 rule sets)"] / "attributes" / "h"))
        mine = {r["id"]: all(r["attributes"][f"h__{t}__pass"][0][2] == 1 for t in HEURISTICS) for r in rows}
        decisions = json.loads((outs["datatrove (4 filters)"] / "decisions.json").read_text())
        theirs = dict(zip(decisions["ids"], decisions["pass"]))
        agree = sum(mine[k] == v for k, v in theirs.items()) / len(theirs)
        require(set(mine) == set(theirs), "ours and datatrove tagged different documents")
        require(agree >= 0.98, f"ours and datatrove agree on {agree:.3f} of the keep decisions (< 0.98)")
        peer = list(attributes(outs["allenai dolma tag gopher_v1 + c4_v1"] / "attributes" / "peer"))
        require({r["id"] for r in peer} == set(mine), "allenai tagged different documents")
        return {"documents": len(mine), "keep decisions equal to datatrove's": round(agree, 4)}

    shares = (0.03, 0.1) if quick else (0.25, 1.0)
    return Task(
        "heuristics",
        "documents",
        sizes(corpora, work, ["shard-00001.jsonl.gz"], shares, "documents"),
        [
            Contender("ours: dolma tag (4 rule sets)", "ours", ours_tag, prepare=link_input),
            Contender("datatrove (4 filters)", "peer", datatrove_filter),
            Contender("allenai dolma tag gopher_v1 + c4_v1", "peer", allenai_tag, allenai_env(), prepare=link_input),
        ],
        check,
        [
            Target("ours: dolma tag (4 rule sets)", "datatrove (4 filters)", 10.0),
            Target("ours: dolma tag (4 rule sets)", "allenai dolma tag gopher_v1 + c4_v1", 5.0),
        ],
        "Gopher repetition + Gopher quality + C4 + FineWeb rules at their published defaults",
    )
