"""Connected components of the dedup graph as rounds of tasks over edge partitions: the labels equal those of
one in-memory pass over every edge, and the dedup attributes are the same for any partition and worker count."""

import gzip
import random

import numpy as np
import polars as pl
import pytest
from conftest import sample_docs, write_jsonl_gz

from dolma.dedup.clusters import DedupStage
from dolma.dedup.components import EDGE, both_ways, connected_components, labels, large_star, small_star, split
from dolma.runtime.executors import LocalExecutor
from dolma.runtime.run import run_stages


def _rounds(a: np.ndarray, b: np.ndarray, partitions: int) -> tuple[pl.DataFrame, int]:
    """The steps' algorithm, partition by partition, as the tasks run it: (labels, rounds)."""
    parts = split(both_ways(pl.DataFrame({"u": a, "v": b}, schema=EDGE)), partitions)
    changed: list[int] = []
    while not (len(changed) % 2 == 0 and changed and changed[-1] == 0 and changed[-2] == 0):
        step = large_star if len(changed) % 2 == 0 else small_star
        out: dict[int, list[pl.DataFrame]] = {}
        total = 0
        for k in range(partitions):
            edges, n = step(parts.get(k, pl.DataFrame(schema=EDGE)))
            total += n
            for j, frame in split(edges, partitions).items():
                out.setdefault(j, []).append(frame)
        parts = {j: pl.concat(frames) for j, frames in out.items()}
        changed.append(total)
        assert len(changed) < 200
    empty = pl.DataFrame(schema=EDGE)
    return pl.concat([labels(parts.get(k, empty)) for k in range(partitions)]).sort("doc"), len(changed)


@pytest.mark.parametrize("partitions", [1, 3, 8])
def test_star_rounds_label_every_node_with_the_smallest_of_its_component(partitions):
    rng = np.random.default_rng(partitions)
    chain = np.arange(1, 500, dtype=np.uint64)[::-1].copy()  # a long chain: the slowest case for rounds
    graphs = [(chain, chain - np.uint64(1))]
    for n, m in ((50, 30), (2000, 1500), (300, 2000)):
        graphs.append((rng.integers(0, n, m).astype(np.uint64), rng.integers(0, n, m).astype(np.uint64)))
    for a, b in graphs:
        a, b = (a << np.uint64(3)) | np.uint64(1 << 33), (b << np.uint64(3)) | np.uint64(1 << 33)  # doc-like
        keep = a != b
        nodes, component = connected_components(a[keep], b[keep])
        got, rounds = _rounds(a[keep], b[keep], partitions)
        assert got["doc"].to_list() == nodes.tolist()
        assert got["component"].to_list() == component.tolist()
        assert rounds >= 2


def _drift(text: str, rng: random.Random, share: float) -> str:
    words = text.split(" ")
    return " ".join(rng.choice(words) if rng.random() < share else w for w in words)


def _corpus(folder):
    """Real documents plus chains of copies, each 1.5% of words away from the one before: neighbours are
    near-duplicates, the ends of a chain are not (the keeper check moves members), and the components need
    several rounds. Spread over three shards."""
    rng = random.Random(3)
    docs = [d for d in sample_docs("python-docs") + sample_docs("sympy-docs") if len(d["text"].split()) > 250]
    docs = docs[:120]
    for c, base in enumerate(docs[:4]):
        text = base["text"]
        for i in range(8):
            text = _drift(text, rng, 0.015)
            docs.append({**base, "id": f"{base['id']}-chain{c}-{i}", "text": text})
    rng.shuffle(docs)
    for k in range(3):
        write_jsonl_gz(folder / f"part-{k}.jsonl.gz", docs[k::3])


def _dedup(tmp_path, name, workers, partitions):
    folder = tmp_path / name / "documents"
    _corpus(folder)
    work = tmp_path / name / "work"
    stage = DedupStage(str(folder / "*.jsonl.gz"), str(work), cluster_partitions=partitions)
    results = run_stages([stage], LocalExecutor(workers))
    attributes = {
        f.name: gzip.decompress(f.read_bytes()) for f in sorted((folder.parent / "attributes" / "dedup").glob("*.gz"))
    }
    return work, results, attributes


@pytest.mark.timeout(600)
def test_dedup_clusters_are_the_same_for_any_partitions_and_workers(tmp_path):
    work, results, reference = _dedup(tmp_path, "one", 1, None)
    metrics = {k: v for r in results for k, v in r.summary.metrics.items()}
    assert metrics["duplicates"] > 20 and metrics["moved_from_keeper"] > 0  # chains were cut by the keeper check
    rounds = [r.name for r in results if r.name.startswith("dedup-components-")]
    assert len(rounds) >= 4 and len(rounds) % 2 == 0  # chains are no stars after one round of each kind
    # the labels are those of one in-memory pass over every verified edge
    edges = pl.concat([pl.read_parquet(f) for f in sorted((work / "verified").glob("*.parquet"))])
    nodes, component = connected_components(edges["a"].to_numpy(), edges["b"].to_numpy())
    got = pl.concat([pl.read_parquet(f) for f in (work / "labels").glob("*.parquet")]).sort("doc")
    assert got["doc"].to_list() == nodes.tolist() and got["component"].to_list() == component.tolist()
    # no step is one task over the corpus: three shards make three partitions, so three tasks (or more)
    for step in ("graph", "labels", "route", "clusters", "attributes"):
        done = list((work / ("components" if step == "graph" else step)).glob(f"_ledger/dedup-{step}/done/*.json"))
        assert len(done) == 3, step
    for name, workers, partitions in (("two", 2, 5), ("single", 1, 1), ("twin", 2, None)):
        other, again, attributes = _dedup(tmp_path, name, workers, partitions)
        assert attributes == reference, (workers, partitions)
        assert sum(r.summary.metrics.get("duplicates", 0) for r in again) == metrics["duplicates"]
    # with the same partitions, every intermediate file is the same bytes whatever the number of workers
    for step in ("components", "labels", "route", "clusters"):
        files = sorted(p.relative_to(work) for p in (work / step).rglob("*.parquet") if "_ledger" not in p.parts)
        assert files and files == sorted(
            p.relative_to(other) for p in (other / step).rglob("*.parquet") if "_ledger" not in p.parts
        )
        assert all((work / f).read_bytes() == (other / f).read_bytes() for f in files), step
