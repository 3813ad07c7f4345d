"""Memory against shard size: every stage on one 250 MB shard and on one 1 GB shard (``python -m bench.shards``).

allenai's shards are commonly ~1 GB; a stage that held a whole shard (tokenize once did: 3.2 GB of peak RSS on a
250 MB shard, 7.6 GB on 1 GB) would need a machine per shard size. Here each size is one ``.jsonl.gz`` file of
letter-rotated copies of ``../shared/corpora/docs/shard-00000`` (distinct documents, the base's kind of text; see
:mod:`bench.scale`), and import → tag → dedup → paragraph dedup → mix → tokenize each run as a whole ``dolma
run`` with one worker, started by the harness's launcher, whose ``wait4`` gives the peak RSS of the run's
processes. The check: a stage's peak on the largest shard is within 20% of its peak on the smallest, i.e. memory
follows the batch (``BATCH_BYTES``, 16 MB of documents), not the shard.

``tag`` runs ``fineweb_v1`` and ``stats_v1`` (what the mix reads), not the seven quickstart taggers: those take
~20 minutes of one core on a 1 GB shard. How the quickstart taggers' memory grows with the corpus is
:mod:`bench.scale`'s part (same batches, more of them). Results go to ``bench/results/shards-*.json``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from pathlib import Path

from bench.rates import MIX_SHARE, ROOT, stages
from bench.scale import rotated, run_measured

SHARD_MB = (250, 1000)
TAGGERS = ["fineweb_v1"]


def write_shard(base: Path, mb: int, path: Path) -> int:
    """One gzip shard of rotated copies of the base's documents, cut at ``mb`` MB of JSON; its JSON bytes."""
    lines = gzip.decompress(base.read_bytes()).splitlines()
    path.parent.mkdir(parents=True)
    total, k = 0, 0
    with gzip.open(path, "wb", compresslevel=1) as out:
        while total < mb * 1e6:
            k += 1
            table = rotated(k)
            for line in lines:
                doc = json.loads(line)
                doc["id"], doc["text"] = f"r{k}-{doc['id']}", doc["text"].translate(table)
                data = (json.dumps(doc) + "\n").encode()
                out.write(data)
                total += len(data)
                if total >= mb * 1e6:
                    break
    return total


def one_shard(base: Path, mb: int, work: Path, only: set[str] | None = None) -> dict:
    src, out = work / "src", work / "out"
    input_bytes = write_shard(base, mb, src / "shard.jsonl.gz")
    result = {}
    for stage in stages(src, out, int(input_bytes / 4 * MIX_SHARE), TAGGERS):
        if only and stage["stage"] not in only | {"import"}:  # every stage reads what import wrote
            continue
        seconds, peak = run_measured(stage, work, workers=1)
        result[stage["stage"]] = {"seconds": round(seconds, 1), "peak_rss_mb": peak}
        print(f"  {mb:5d} MB shard  {stage['stage']:16s} {peak:6d} MB  {seconds:7.1f} s", flush=True)
    return {"input_bytes": input_bytes, "stages": result}


def measure(corpora: Path, work: Path, sizes: tuple[int, ...] = SHARD_MB, only: set[str] | None = None) -> dict:
    base = corpora / "docs" / "shard-00000.jsonl.gz"
    runs = {mb: one_shard(base, mb, work / f"mb{mb}", only) for mb in sizes}
    small, large = runs[min(sizes)]["stages"], runs[max(sizes)]["stages"]
    checks = {
        kind: {
            "peak_rss_mb": [small[kind]["peak_rss_mb"], large[kind]["peak_rss_mb"]],
            "memory_ratio": round(large[kind]["peak_rss_mb"] / small[kind]["peak_rss_mb"], 3),
            "flat_memory": large[kind]["peak_rss_mb"] <= 1.2 * small[kind]["peak_rss_mb"],
        }
        for kind in small
    }
    result = {"base": base.name, "taggers": TAGGERS, "runs": runs, "checks": checks}
    out = ROOT / "bench" / "results" / f"shards-{time.strftime('%Y-%m-%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    for kind, c in checks.items():
        small_mb, large_mb = c["peak_rss_mb"]
        verdict = "flat" if c["flat_memory"] else "NOT flat"
        print(f"  {kind:16s} peak RSS {small_mb} -> {large_mb} MB ({c['memory_ratio']:.2f}x, {verdict})")
    print(f"results: {out}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", default=str(ROOT.parent / "shared" / "corpora"))
    parser.add_argument("--mb", default=",".join(map(str, SHARD_MB)), help="shard sizes in MB of JSON")
    parser.add_argument("--stages", help="only these stages (and import), comma-separated: e.g. paragraph_dedup")
    args = parser.parse_args()
    only = set(args.stages.split(",")) if args.stages else None
    known = {stage["stage"] for stage in stages(Path("."), Path("."), 1, TAGGERS)}
    if only and only - known:
        parser.error(f"unknown stage {sorted(only - known)[0]!r}; stages: {', '.join(sorted(known))}")
    with tempfile.TemporaryDirectory() as tmp:
        measure(Path(args.corpora), Path(tmp), tuple(map(int, args.mb.split(","))), only)


if __name__ == "__main__":
    main()
