"""The mix task: one allenai mixer config run unchanged by both tools, and our token-target mix beside them.

The pool is both docs shards, tagged once (untimed) with ``gopher_quality_v1`` and ``stats_v1``; the large pool
adds two copies of it (ids prefixed, so they are distinct documents): six shards. The config drops documents
that fail Gopher quality (``< 0.5``, not ``== 0``: allenai's JSONPath never finds the float 0.0 equal to the
integer 0), discards the joined attributes and writes gzip JSON lines, which both tools do alike. The check: both
keep exactly the same ids, and the recipe mix keeps as many documents.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from bench.harness import Contender, Size, Target, Task
from bench.tasks.common import allenai, allenai_env, attributes, ceiling, cut, lines, ours, require, write_lines

RULE = "$.attributes[?(@.t__gopher_quality_v1__pass[0][2] < 0.5)]"
OURS, PEER, RECIPE = "ours: dolma mix -c (allenai config)", "allenai dolma mix", "ours: recipe mix (token target)"
READ = "ISA-L + msgspec read (ceiling)"


def _pools(corpora: Path, work: Path, quick: bool) -> tuple[Size, Size]:
    """The tagged pool once (small) and three times over (large); the tokens of the documents the rule keeps."""
    tagged = work / "tagged"
    cut(sorted((corpora / "docs").glob("shard-*.jsonl.gz")), 0.4 if quick else 1.0, tagged / "documents")
    subprocess.run(
        ours("tag", "--documents", f"{tagged}/documents/*.jsonl.gz", "--experiment", "t")
        + ["--taggers", "gopher_quality_v1", "stats_v1", "--workers", "2"],
        check=True,
        capture_output=True,
    )
    sizes = []
    for label, copies in (("small", 1), ("large", 3)):
        pool, amount, tokens = work / "in" / label, 0, 0
        for copy in range(copies):
            for tree in ("documents", "attributes/t"):
                for f in sorted((tagged / tree).glob("*.jsonl.gz")):
                    rows = [json.loads(r) for r in lines(f)]
                    for row in rows:
                        row["id"] = f"c{copy}-{row['id']}"
                    size = write_lines(pool / tree / f"c{copy}-{f.name}", [json.dumps(r).encode() for r in rows])
                    if tree == "documents":
                        amount += size
                    else:
                        tokens += sum(
                            r["attributes"]["t__stats_v1__tokens"][0][2]
                            for r in rows
                            if r["attributes"]["t__gopher_quality_v1__pass"][0][2] == 1
                        )
        sizes.append(Size(label, amount / 1e6, {"dir": pool, "tokens": tokens}))
    return sizes[0], sizes[1]


def _config(size: Size, out: Path) -> None:
    pool = size.inputs["dir"]
    config = {
        "streams": [
            {
                "name": "docs",
                "documents": [f"{pool}/documents/*.jsonl.gz"],
                "attributes": ["t"],
                "output": {"path": str(out / "mixed"), "max_size_in_bytes": 10**9, "discard_fields": ["attributes"]},
                "filter": {"exclude": [RULE]},
            }
        ],
        "processes": 1,
    }
    (out / "mix.json").write_text(json.dumps(config))


def _recipe(size: Size, out: Path) -> None:
    pool = size.inputs["dir"]
    stream = {
        "name": "docs",
        "documents": [f"{pool}/documents/*.jsonl.gz"],
        "attributes": ["t"],
        "tokens": "t__stats_v1__tokens",
        "exclude": [RULE],
    }
    mix = {
        "stage": "mix",
        "work": str(out / "work"),
        "output": str(out / "mixed"),
        "target_tokens": int(size.inputs["tokens"]),
        "max_repetition": 1,
        "throwaway": 0.0,
        "calibrate": False,
        "streams": [stream],
    }
    (out / "recipe.yaml").write_text(yaml.safe_dump({"executor": {"kind": "local", "workers": 1}, "stages": [mix]}))


def mix(corpora: Path, work: Path, quick: bool) -> Task:
    def check(outs: dict[str, Path]) -> dict:
        kept = {name: {r["id"] for r in attributes(outs[name] / "mixed")} for name in (OURS, PEER, RECIPE)}
        require(kept[OURS] == kept[PEER], f"kept ids differ: ours {len(kept[OURS])}, allenai {len(kept[PEER])}")
        require(len(kept[RECIPE]) == len(kept[OURS]), f"the recipe mix kept {len(kept[RECIPE])} documents")
        return {"documents kept (each tool)": len(kept[OURS])}

    return Task(
        "mix",
        "MB",
        _pools(corpora, work, quick),
        [
            Contender(
                OURS, "ours", lambda s, o: ours("mix", "-c", str(o / "mix.json"), "--workers", "1"), prepare=_config
            ),
            Contender(PEER, "peer", lambda s, o: allenai("-c", str(o / "mix.json"), "mix"), allenai_env(), _config),
            Contender(RECIPE, "ours", lambda s, o: ours("run", str(o / "recipe.yaml")), prepare=_recipe),
            Contender(
                READ, "ceiling", lambda s, o: ceiling("read", *map(str, sorted(s.inputs["dir"].glob("documents/*"))))
            ),
        ],
        check,
        [Target(OURS, PEER, 4.0), Target(OURS, READ, 0.6), Target(RECIPE, READ, 0.6)],
        "one exclude rule over a joined attribute set; the recipe mix also plans, shuffles and hits a token target",
    )
