"""Side-by-side benchmarks: ours, each peer and the hardware ceilings, on the same files, as ratios.

    python -m bench.run [--corpora ../shared/corpora] [--rounds 3] [--only tokenize,heuristics]

Contenders alternate round by round (the machines are shared and noisy) and medians are reported. Every
contender runs single-process with one thread, so figures are per core. Results go to
``bench/results/<date>.json`` and a table is printed; BENCHMARKS.md summarises a run.
"""

from __future__ import annotations

import argparse
import gzip
import io as io_module
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ONE_THREAD = {
    "RAYON_NUM_THREADS": "1",
    "POLARS_MAX_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
os.environ.update(ONE_THREAD)

import numpy as np  # noqa: E402
import orjson  # noqa: E402
import polars as pl  # noqa: E402

from bench.peers import ensure_peer, peer_env  # noqa: E402
from bench.scale import bench_scale  # noqa: E402


def cpu_seconds(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def child_cpu_seconds(cmd: list[str], **kwargs) -> float:
    """CPU seconds (user + system) of a command and its children."""
    before = os.times()
    subprocess.run(cmd, check=True, capture_output=True, **kwargs)
    after = os.times()
    return (after.children_user - before.children_user) + (after.children_system - before.children_system)


def rounds(contenders: dict[str, Callable[[], float]], n: int) -> dict[str, float]:
    """Run every contender once per round, alternating; return the median seconds of each."""
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for r in range(n):
        order = list(contenders) if r % 2 == 0 else list(reversed(contenders))
        for name in order:
            times[name].append(contenders[name]())
    return {k: statistics.median(v) for k, v in times.items()}


def as_rates(secs: dict[str, float], amount: float, unit: str, **extra) -> dict:
    """Figures (amount per second) per contender, and the first contender's (ours) ratio to each other one."""
    rate = {k: amount / v for k, v in secs.items()}
    first = next(iter(rate))
    return {
        "unit": unit,
        "figures": rate,
        "ratios": {f"{first} / {k}": rate[first] / v for k, v in rate.items() if k != first},
        **extra,
    }


def subset(src: Path, dst: Path, limit: int) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(src, "rb") as f, gzip.open(dst, "wb") as g:
        for i, line in enumerate(f):
            if i >= limit:
                break
            g.write(line)
    return dst


# ------------------------------------------------------------------------------------------------ tasks
def bench_tokenize(corpora: Path, work: Path, n_rounds: int) -> dict:
    from dolma.core.tokenizer import DEFAULT_TOKENIZER, load_tokenizer
    from dolma.runtime.ledger import ShardLedger
    from dolma.runtime.stage import Shard, Task
    from dolma.tokenize.stage import TokenizeStage

    shard = subset(corpora / "docs" / "shard-00000.jsonl.gz", work / "tok" / "documents" / "a.jsonl.gz", 1500)
    texts = [orjson.loads(line)["text"] for line in gzip.open(shard)]
    tok = load_tokenizer(DEFAULT_TOKENIZER)
    tokens = sum(len(e) for e in tok.encode_batch_fast(texts, add_special_tokens=False)) + len(texts)

    def ours() -> float:
        out = work / "tok" / "ours"
        shutil.rmtree(out, ignore_errors=True)
        stage = TokenizeStage(input=str(shard), output=str(out))
        return cpu_seconds(lambda: stage.run(Task("a", Shard(str(shard))), ShardLedger()))

    def raw() -> float:
        return cpu_seconds(lambda: tok.encode_batch_fast(texts, add_special_tokens=False))

    def allenai() -> float:
        out = work / "tok" / "allenai"
        shutil.rmtree(out, ignore_errors=True)
        return child_cpu_seconds(
            [
                str(ensure_peer("allenai-dolma") / "dolma"),
                "tokens",
                "--documents",
                str(shard),
                "--destination",
                str(out),
                "--tokenizer.name_or_path",
                DEFAULT_TOKENIZER,
                "--tokenizer.eos_token_id",
                "100257",
                "--tokenizer.pad_token_id",
                "100277",
                "--processes",
                "1",
                "--dtype",
                "uint32",
            ],
            env=peer_env(),
        )

    contenders = {"ours": ours, "tokenizers.encode_batch (ceiling)": raw}
    try:
        allenai()
        contenders["allenai dolma tokens"] = allenai
    except subprocess.CalledProcessError as e:
        print(f"  allenai dolma tokens could not load the tokenizer: {e.stderr.decode()[-300:]}", file=sys.stderr)
    secs = rounds(contenders, n_rounds)
    rate = {k: tokens / v for k, v in secs.items()}
    return {
        "unit": "tokens/s per core",
        "documents": len(texts),
        "tokens": tokens,
        "figures": rate,
        "ratios": {f"ours / {k}": rate["ours"] / v for k, v in rate.items() if k != "ours"},
    }


def bench_heuristics(corpora: Path, work: Path, n_rounds: int) -> dict:
    from bench.heuristics import agreement
    from dolma.runtime.ledger import ShardLedger
    from dolma.runtime.stage import Shard, Task
    from taggers.stage import TagStage

    n = 1000
    docs_dir = work / "heur" / "documents"
    shard = subset(corpora / "docs" / "shard-00001.jsonl.gz", docs_dir / "a.jsonl.gz", n)
    rule_sets = ["gopher_repetition_v1", "gopher_quality_v1", "c4_v1", "fineweb_v1"]

    def ours() -> float:
        stage = TagStage(input=str(docs_dir / "*.jsonl.gz"), taggers=rule_sets, experiment="ours")
        return cpu_seconds(lambda: stage.run(Task("a", Shard(str(shard))), ShardLedger()))

    def datatrove() -> float:
        out = work / "heur" / "dt.json"
        subprocess.run(
            [
                str(ensure_peer("datatrove") / "python"),
                str(Path(__file__).parent / "peer_scripts" / "datatrove_heuristics.py"),
                str(shard),
                str(n),
                str(out),
                "--time",
            ],
            check=True,
            capture_output=True,
            env={**os.environ, **ONE_THREAD},
        )
        return json.loads(out.read_text())["cpu_seconds"]

    def allenai() -> float:
        shutil.rmtree(work / "heur" / "attributes" / "peer", ignore_errors=True)
        return child_cpu_seconds(
            [
                str(ensure_peer("allenai-dolma") / "dolma"),
                "tag",
                "--documents",
                str(shard),
                "--experiment",
                "peer",
                "--taggers",
                "gopher_v1",
                "c4_v1",
                "--processes",
                "1",
            ],
            env=peer_env(),
        )

    secs = rounds(
        {"ours": ours, "datatrove (4 filters)": datatrove, "allenai dolma tag gopher_v1+c4_v1": allenai}, n_rounds
    )
    rate = {k: n / v for k, v in secs.items()}
    agree = agreement(str(shard), n)
    return {
        "unit": "documents/s per core",
        "documents": n,
        "figures": rate,
        "ratios": {f"ours / {k}": rate["ours"] / v for k, v in rate.items() if k != "ours"},
        "quality": {
            "min rule agreement with datatrove": min(agree.values()),
            "rules below 99%": {k: v for k, v in agree.items() if v < 0.99},
        },
    }


def bench_lid(corpora: Path, work: Path, n_rounds: int) -> dict:
    import polars as pl

    from taggers.registry import TextBatch, build_tagger, load_builtin

    load_builtin()
    docs = []
    for name in ("manpages", "debian_reference", "debian_faq", "fortunes"):
        for line in gzip.open(corpora / "multilingual" / f"{name}.jsonl.gz"):
            d = orjson.loads(line)
            docs.append((name, d["text"], d["metadata"].get("lang")))
    tagger = build_tagger("ft_lang_id_v1")
    texts = pl.Series([t for _, t, _ in docs])
    result: dict = {}
    secs = rounds({"ours": lambda: cpu_seconds(lambda: result.update(tagger.tag(TextBatch(texts))))}, n_rounds)
    top = []
    for i in range(len(docs)):
        scores = {lang: spans[i][0][2] for lang, spans in result.items() if spans[i]}
        top.append(max(scores, key=scores.get) if scores else "")
    per_set = {}
    for name in ("manpages", "debian_reference", "debian_faq", "fortunes"):
        idx = [i for i, d in enumerate(docs) if d[0] == name]
        per_set[name] = float(np.mean([top[i] == docs[i][2] for i in idx]))
    return {
        "unit": "documents/s per core",
        "documents": len(docs),
        "figures": {"ours": len(docs) / secs["ours"]},
        "ratios": {},
        "quality": {"top-1 accuracy vs metadata.lang": per_set},
    }


def bench_import(corpora: Path, work: Path, n_rounds: int) -> dict:
    from dolma.ingest.importer import ImportStage
    from dolma.runtime.ledger import ShardLedger
    from dolma.runtime.stage import Shard, Task

    src = corpora / "docs" / "shard-00000.jsonl.gz"
    mb = len(gzip.open(src).read()) / 1e6

    def ours() -> float:
        out = work / "import"
        shutil.rmtree(out, ignore_errors=True)
        stage = ImportStage(input=str(src), output=str(out))
        return cpu_seconds(lambda: stage.run(Task("a", Shard(str(src))), ShardLedger()))

    def ceiling() -> float:
        return cpu_seconds(lambda: [orjson.loads(line) for line in gzip.open(src)])

    import zstandard

    zst = work / "import-src.jsonl.zst"
    zst.write_bytes(zstandard.ZstdCompressor(level=3).compress(gzip.open(src).read()))

    def zstd_ceiling() -> float:
        def read() -> None:
            with zstandard.ZstdDecompressor().stream_reader(open(zst, "rb")) as f:
                for line in io_module.TextIOWrapper(f, encoding="utf-8"):
                    orjson.loads(line)

        return cpu_seconds(read)

    secs = rounds(
        {
            "ours (validate + write zst)": ours,
            "gzip + orjson read (ceiling)": ceiling,
            "zstd + orjson read (ceiling)": zstd_ceiling,
        },
        n_rounds,
    )
    return as_rates(secs, mb, "MB/s per core (uncompressed JSONL)")


def bench_dedup(corpora: Path, work: Path, n_rounds: int) -> dict:
    import resource

    from bench.dedup import _sets, evaluate, jaccard
    from dolma import io

    docs = corpora / "neardup" / "documents"
    truth_file = corpora / "neardup" / "groundtruth.jsonl"
    local = work / "dedup" / "documents"  # attributes are written beside the documents: use a copy
    shutil.copytree(docs, local, dirs_exist_ok=True)

    def ours(preset: str, tag: str, folder: Path = local) -> tuple[float, int]:
        shutil.rmtree(work / "dedup" / tag, ignore_errors=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds = child_cpu_seconds(
            [
                sys.executable,
                "-m",
                "dolma",
                "dedup",
                "--documents",
                str(folder / "*.jsonl.gz"),
                "--work",
                str(work / "dedup" / tag),
                "--name",
                tag,
                "--preset",
                preset,
                "--workers",
                "1",
            ],
            env={**os.environ, **ONE_THREAD},
        )
        return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 if before else 0

    datatrove_result: dict = {}

    def datatrove() -> float:
        out = work / "dedup" / "datatrove.json"
        shutil.rmtree(work / "dedup" / "dt", ignore_errors=True)
        subprocess.run(
            [
                str(ensure_peer("datatrove") / "python"),
                str(Path(__file__).parent / "peer_scripts" / "datatrove_minhash.py"),
                str(docs),
                str(work / "dedup" / "dt"),
                str(out),
            ],
            check=True,
            capture_output=True,
            env={**os.environ, **ONE_THREAD},
        )
        datatrove_result.update(json.loads(out.read_text()))
        return datatrove_result["cpu_seconds"]

    secs = rounds(
        {
            "ours (dolma3: 26x11, Jaccard 0.8)": lambda: ours("dolma3", "d3")[0],
            "ours (fineweb: 14x8)": lambda: ours("fineweb", "fw")[0],
        },
        n_rounds,
    )
    secs["datatrove 4-stage MinHash (14x8)"] = datatrove()  # ~2-3 min: one run
    n = sum(1 for f in io.document_files(str(docs)) for b in io.read_documents(f) for _ in b.docs)
    rate = {k: n / v for k, v in secs.items()}
    quality = {}
    for threshold in (0.8, 0.7):
        q_d3 = evaluate(str(local), str(work / "dedup" / "d3"), str(truth_file), threshold)
        q_fw = evaluate(str(local), str(work / "dedup" / "fw"), str(truth_file), threshold)
        # datatrove: recall on the planted pairs; precision over candidates sharing a band under the same 14x8
        removed = set(datatrove_result["removed"])
        truth = [json.loads(line) for line in open(truth_file)]
        texts = {d.id: d.text for f in io.document_files(str(docs)) for b in io.read_documents(f) for d in b.docs}
        edges = pl.concat([pl.read_parquet(p) for p in (work / "dedup" / "fw" / "edges").glob("*.parquet")])
        ids = dict(
            zip(
                *(
                    pl.concat([pl.read_parquet(p) for p in (work / "dedup" / "fw" / "docs").glob("*.parquet")])[
                        c
                    ].to_list()
                    for c in ("doc", "id")
                )
            )
        )
        pairs = [(ids[a], ids[b]) for a, b in zip(edges["a"].to_list(), edges["b"].to_list())]
        needed = removed | {x for pr in pairs for x in pr} | {t["copy"] for t in truth} | {t["original"] for t in truth}
        sets = _sets({i: texts[i] for i in needed})
        similar = {x for a, b in pairs if jaccard(sets[a], sets[b]) >= threshold for x in (a, b)}
        positives = [t for t in truth if jaccard(sets[t["copy"]], sets[t["original"]]) >= threshold]
        quality[f"t={threshold}"] = {
            "ours dolma3 (precision keeper/member, recall)": [
                round(q_d3["precision (Jaccard with keeper)"], 4),
                round(q_d3["precision (Jaccard with a cluster member)"], 4),
                round(q_d3["recall"], 4),
            ],
            "ours fineweb (precision keeper/member, recall)": [
                round(q_fw["precision (Jaccard with keeper)"], 4),
                round(q_fw["precision (Jaccard with a cluster member)"], 4),
                round(q_fw["recall"], 4),
            ],
            "datatrove (precision vs a band partner, recall)": [
                round(len(removed & similar) / max(len(removed), 1), 4),
                round(float(np.mean([(t["copy"] in removed) or (t["original"] in removed) for t in positives])), 4),
            ],
        }
    # memory: the corpus once and three times over, with the same shard sizes and the same duplicates: the two
    # extra copies rotate every ASCII letter (by 13 and by 7), so they duplicate within themselves as the corpus
    # does but not each other. Peak memory should follow the shard, not the corpus.
    triple = work / "dedup" / "triple" / "documents"
    triple.mkdir(parents=True, exist_ok=True)
    lower, upper = "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    rotate = [str.maketrans(lower + upper, lower[r:] + lower[:r] + upper[r:] + upper[:r]) for r in (0, 13, 7)]
    for k in range(3):
        for f in sorted(docs.glob("*.jsonl.gz")):
            with gzip.open(f, "rb") as src, gzip.open(triple / f"r{k}-{f.name}", "wb") as dst:
                for line in src:
                    d = orjson.loads(line)
                    d["id"] = f"{d['id']}-r{k}"
                    d["text"] = d["text"].translate(rotate[k])
                    dst.write(orjson.dumps(d) + b"\n")
    peak = {}
    runs = (("1x corpus", local, 1), ("3x corpus, same shard size and duplicate rate, 3 key ranges", triple, 3))
    for label, folder, parts in runs:  # the pairs step's key ranges grow with the corpus, as the README advises
        code = (
            f"import resource,subprocess,sys;subprocess.run([sys.executable,'-m','dolma','dedup','--documents',"
            f"'{folder}/*.jsonl.gz','--work','{work}/dedup/mem-{len(peak)}','--name','m{len(peak)}','--workers','1',"
            f"'--pair-partitions','{parts}'],check=True,capture_output=True);"
            f"print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        )
        peak[label] = (
            int(
                subprocess.run(
                    [sys.executable, "-c", code],
                    check=True,
                    capture_output=True,
                    text=True,
                    env={**os.environ, **ONE_THREAD},
                ).stdout
            )
            * 1024
            / 1e6
        )
    peak["datatrove (1x corpus)"] = datatrove_result["peak_rss_bytes"] / 1e6
    return {
        "unit": "documents/s per core (all steps)",
        "documents": n,
        "figures": rate,
        "ratios": {
            f"{k} / datatrove": v / rate["datatrove 4-stage MinHash (14x8)"]
            for k, v in rate.items()
            if not k.startswith("datatrove")
        },
        "quality": {**quality, "peak memory MB": {k: round(v) for k, v in peak.items()}},
    }


def bench_mix(corpora: Path, work: Path, n_rounds: int) -> dict:
    """Every contender mixes the pool (both docs shards, tagged) and three copies of it (ids prefixed, so the
    copies are distinct documents). The per-core rate is the slope, two pools' MB over t(three) - t(one), so
    each tool's fixed cost cancels out (allenai's interpreter start-up, about 1.1 s of CPU, as much as our plan,
    its plot and the markers); end-to-end rates on one pool are reported beside it."""
    from dolma.app.recipe import build_stage
    from dolma.runtime.executors import LocalExecutor
    from dolma.runtime.run import run_stage

    root = work / "mix"
    tagged = root / "tagged"
    (tagged / "documents").mkdir(parents=True, exist_ok=True)
    for shard in sorted((corpora / "docs").glob("shard-*.jsonl.gz")):  # the whole docs corpus (2 shards)
        shutil.copy(shard, tagged / "documents" / shard.name)
    tag = build_stage(
        "tag",
        {
            "input": str(tagged / "documents" / "*.jsonl.gz"),
            "experiment": "t",
            "taggers": ["gopher_quality_v1", "stats_v1"],
        },
        "tag",
    )
    run_stage(tag, LocalExecutor(2))  # set-up, not measured
    pools = {1: root / "x1", 3: root / "x3"}
    for copy in range(3):
        for tree in ("documents", "attributes/t"):
            for f in sorted((tagged / tree).glob("*.jsonl.gz")):
                rows = [orjson.loads(line) for line in gzip.open(f)]
                for row in rows:
                    row["id"] = f"c{copy}-{row['id']}"
                body = gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in rows), compresslevel=6)
                for n, pool in pools.items():
                    if copy < n:
                        (pool / tree).mkdir(parents=True, exist_ok=True)
                        (pool / tree / f"c{copy}-{f.name}").write_bytes(body)
    mb = sum(len(gzip.open(f).read()) for f in (pools[1] / "documents").glob("*.jsonl.gz")) / 1e6
    kept_tokens = sum(
        a["attributes"]["t__stats_v1__tokens"][0][2]
        for f in sorted((pools[1] / "attributes" / "t").glob("*.jsonl.gz"))
        for a in map(orjson.loads, gzip.open(f))
        if a["attributes"]["t__gopher_quality_v1__pass"][0][2] == 1
    )
    # ``< 0.5``, not ``== 0``: allenai's JSONPath finds the float score 0.0 unequal to the integer 0, so that
    # rule would drop nothing there; both tools must drop the same documents.
    rule = "$.attributes[?(@.t__gopher_quality_v1__pass[0][2] < 0.5)]"

    def ours(n: int) -> float:
        pool = pools[n]
        shutil.rmtree(pool / "ours", ignore_errors=True)
        group = build_stage(
            "mix",
            {
                "work": str(pool / "ours" / "work"),
                "output": str(pool / "ours" / "out"),
                "target_tokens": int(kept_tokens) * n,
                "max_repetition": 1,
                "throwaway": 0.0,
                "calibrate": False,
                "streams": [
                    {
                        "name": "docs",
                        "documents": [str(pool / "documents" / "*.jsonl.gz")],
                        "attributes": ["t"],
                        "tokens": "t__stats_v1__tokens",
                        "exclude": [rule],
                    }
                ],
            },
            "mix",
        )
        return cpu_seconds(lambda: [run_stage(st, LocalExecutor(1)) for st in group.stages()])

    def allenai(n: int) -> float:
        pool = pools[n]
        shutil.rmtree(pool / "allenai", ignore_errors=True)
        config = {
            "streams": [
                {
                    "name": "docs",
                    "documents": [str(pool / "documents" / "*.jsonl.gz")],
                    "attributes": ["t"],
                    "output": {"path": str(pool / "allenai"), "max_size_in_bytes": 10**9},
                    "filter": {"exclude": [rule]},
                }
            ],
            "processes": 1,
        }
        (pool / "mix.json").write_text(json.dumps(config))
        return child_cpu_seconds(
            [str(ensure_peer("allenai-dolma") / "dolma"), "-c", str(pool / "mix.json"), "mix"], env=peer_env()
        )

    def ceiling(n: int) -> float:
        files = (pools[n] / "documents").glob("*.jsonl.gz")
        return cpu_seconds(lambda: [orjson.loads(line) for f in files for line in gzip.open(f)])

    names = {
        "ours (stats, plan, shuffle, write)": ours,
        "allenai dolma mix": allenai,
        "gzip + orjson read (ceiling)": ceiling,
    }
    secs = rounds({f"{k} x{n}": partial(fn, n) for k, fn in names.items() for n in pools}, n_rounds)
    slope = {k: secs[f"{k} x3"] - secs[f"{k} x1"] for k in names}
    written = {  # the filter must drop the same documents in both tools, or the comparison is not like for like
        tool: sum(_count_lines(f) for f in (pools[1] / tool).rglob(pattern))
        for tool, pattern in (("ours", "*.jsonl.zst"), ("allenai", "*.json.gz"))
    }
    if written["ours"] != written["allenai"]:
        raise RuntimeError(f"the tools kept different numbers of documents: {written}")
    return as_rates(
        slope,
        2 * mb,
        "MB/s per core, marginal (uncompressed JSONL, same exclude rule)",
        details={
            "end to end on one pool (MB/s)": {k: round(mb / secs[f"{k} x1"], 1) for k in names},
            "fixed cost (CPU s)": {k: round(secs[f"{k} x1"] - slope[k] / 2, 2) for k in names},
            "pool MB": round(mb, 1),
            "documents kept (each tool)": written["ours"],
        },
    )


def _count_lines(path: Path) -> int:
    import zstandard

    data = path.read_bytes()
    if path.suffix == ".zst":
        data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    elif path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.count(b"\n")


def head_of_warc(src: Path, dst: Path, records: int) -> None:
    """The first ``records`` records of a .warc.gz (one gzip member each), copied byte for byte."""
    from fastwarc.warc import ArchiveIterator

    with open(src, "rb") as f:
        offsets = [r.stream_pos for _, r in zip(range(records + 1), ArchiveIterator(f, parse_http=False))]
    dst.write_bytes(src.read_bytes()[: offsets[-1]] if len(offsets) > records else src.read_bytes())


def bench_web(corpora: Path, work: Path, n_rounds: int) -> dict:
    from bench.web import evaluate
    from dolma.ingest.web import WebStage
    from dolma.runtime.ledger import ShardLedger

    warcs = work / "web" / "in"
    warcs.mkdir(parents=True, exist_ok=True)
    for f in ("commoncrawl-CC-MAIN-2020-34-excerpt.warc.gz", "clueweb-quirk.warc.gz"):
        shutil.copy(corpora / "web" / "warc" / f, warcs / f)
    head_of_warc(corpora / "web" / "warc" / "python311-docs-wget-loopback.warc.gz", warcs / "python-docs.warc.gz", 400)
    kept: dict[str, int] = {}

    def ours() -> float:
        stage = WebStage(input=str(warcs), output=str(work / "web" / "ours"))
        tasks = stage.tasks()
        ledgers = [ShardLedger() for _ in tasks]
        seconds = cpu_seconds(lambda: [stage.run(t, led) for t, led in zip(tasks, ledgers)])
        kept["ours"] = sum(led.summary().kept for led in ledgers)
        return seconds

    def datatrove() -> float:
        out = work / "web" / "dt.json"
        script = Path(__file__).parent / "peer_scripts" / "datatrove_warc.py"
        subprocess.run(
            [str(ensure_peer("datatrove") / "python"), str(script), str(warcs), str(out)],
            check=True,
            capture_output=True,
            env={**os.environ, **ONE_THREAD},
        )
        kept["datatrove"] = json.loads(out.read_text())["documents"]
        return json.loads(out.read_text())["cpu_seconds"]

    secs = rounds({"ours (fastwarc + trafilatura)": ours, "datatrove WarcReader + Trafilatura": datatrove}, n_rounds)
    rate = {k: kept["ours" if k.startswith("ours") else "datatrove"] / v for k, v in secs.items()}
    first = next(iter(rate))
    return {
        "unit": "documents/s per core (CC and ClueWeb excerpts, first 400 records of the Python-docs crawl)",
        "figures": rate,
        "ratios": {f"ours / {k}": rate[first] / v for k, v in rate.items() if k != first},
        "quality": {**evaluate(corpora / "web" / "pages"), "documents kept": kept},
    }


def bench_paragraphs(corpora: Path, work: Path, n_rounds: int) -> dict:
    from dolma.dedup.paragraphs import ParagraphDedupStage
    from dolma.runtime.ledger import ShardLedger

    docs = work / "para" / "documents"
    docs.mkdir(parents=True, exist_ok=True)
    for shard in sorted((corpora / "docs").glob("shard-*.jsonl.gz")):  # the whole docs corpus (2 shards)
        shutil.copy(shard, docs / shard.name)
    mb = sum(len(gzip.open(f).read()) for f in docs.glob("*.jsonl.gz")) / 1e6

    def ours() -> float:
        group = ParagraphDedupStage(
            input=str(docs / "*.jsonl.gz"), name="ours", method="bloom", expected_ngrams=10_000_000
        )
        return cpu_seconds(lambda: [s.run(t, ShardLedger()) for s in group.stages() for t in s.tasks()])

    def allenai() -> float:
        bloom = work / "para" / "bloom.bin"
        bloom.unlink(missing_ok=True)
        return child_cpu_seconds(
            [
                str(ensure_peer("allenai-dolma") / "dolma"),
                "dedupe",
                "--documents",
                str(docs / "*.jsonl.gz"),
                "--dedupe.name",
                "peer",
                "--dedupe.paragraphs.attribute_name",
                "bff_duplicate_paragraph_spans",
                "--dedupe.paragraphs.by_ngram.ngram_length",
                "13",
                "--dedupe.paragraphs.by_ngram.overlap_threshold",
                "0.5",
                "--bloom_filter.file",
                str(bloom),
                "--no-bloom_filter.read_only",
                "--bloom_filter.estimated_doc_count",
                "10000000",
                "--bloom_filter.desired_false_positive_rate",
                "0.0001",
                "--processes",
                "1",
            ],
            env=peer_env(),
        )

    secs = rounds({"ours (13-grams, threshold 0.5)": ours, "allenai dolma dedupe paragraphs (same)": allenai}, n_rounds)
    return as_rates(secs, mb, "MB/s per core (uncompressed JSONL)")


def bench_pdf(corpora: Path, work: Path, n_rounds: int) -> dict:
    from bench.pdf_quality import score
    from pdf_extract.extract import Options
    from pdf_extract.worker import PdfWorker

    if not shutil.which("pdftotext"):
        raise SystemExit("the pdf benchmark needs pdftotext: apt-get install poppler-utils")
    manifest = pl.read_csv(corpora / "pdf" / "MANIFEST.tsv", separator="\t", infer_schema_length=0)
    chosen = manifest.filter(
        (pl.col("has_text_layer") == "yes")
        & (pl.col("encrypted") == "no")
        & ~pl.col("category").is_in(["very_long", "broken_or_odd", "scanned", "image_only"])
    )
    files = [corpora / "pdf" / f for f in chosen["file"]]
    pages = int(chosen["pages"].cast(pl.Int64).sum())

    def ours_text(path: Path) -> str:
        with PdfWorker(timeout=180, memory_mb=3072) as worker:
            return worker.extract(str(path), Options()).result.text

    def pdftotext_text(path: Path) -> str:
        return subprocess.run(["pdftotext", "-q", str(path), "-"], capture_output=True, text=True).stdout

    def ours() -> float:  # one isolated worker process, as the stage runs it; wall clock covers the process
        start = time.perf_counter()
        with PdfWorker(timeout=180, memory_mb=3072) as worker:
            for f in files:
                worker.extract(str(f), Options())
        return time.perf_counter() - start

    def pdftotext() -> float:
        start = time.perf_counter()
        for f in files:
            subprocess.run(["pdftotext", "-q", str(f), "/dev/null"])
        return time.perf_counter() - start

    secs = rounds({"ours (PyMuPDF blocks + layout)": ours, "pdftotext (poppler)": pdftotext}, n_rounds)
    quality = {"ours": score(ours_text, corpora), "pdftotext": score(pdftotext_text, corpora)}
    return as_rates(secs, pages, f"pages/s, one process ({len(files)} PDFs, {pages} pages)", quality=quality)


TASKS = {
    "import": bench_import,
    "tokenize": bench_tokenize,
    "heuristics": bench_heuristics,
    "lid": bench_lid,
    "dedup": bench_dedup,
    "mix": bench_mix,
    "web": bench_web,
    "paragraphs": bench_paragraphs,
    "pdf": bench_pdf,
    "scale": bench_scale,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", default=str(ROOT.parent / "shared" / "corpora"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", help="comma-separated tasks: " + ",".join(TASKS))
    args = parser.parse_args()
    corpora = Path(args.corpora)
    chosen = args.only.split(",") if args.only else list(TASKS)
    results = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "tasks": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name in chosen:
            started = time.time()
            print(f"== {name}", flush=True)
            results["tasks"][name] = TASKS[name](corpora, Path(tmp), args.rounds)
            r = results["tasks"][name]
            for k, v in r["figures"].items():
                print(f"  {k:45s} {v:14,.1f} {r['unit']}")
            for k, v in r["ratios"].items():
                print(f"  {k:45s} {v:14.2f}x")
            for k, v in {**r.get("quality", {}), **r.get("details", {})}.items():
                print(f"  {k}: {v}")
            print(f"  ({time.time() - started:.0f} s)", flush=True)
    out = ROOT / "bench" / "results" / f"{results['date']}-{time.strftime('%H%M%S')}-{'-'.join(chosen)}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
