"""Hostile inputs end every stage with every record accounted for and every good document beside them intact.

The cases (``tests/hostile.py``) are one file each; ``import`` and ``tag`` run over all of them at once, in a
subprocess under a time limit whose peak memory is measured. For each case: read = kept + dropped +
quarantined, read equals the records the file holds, the reasons are the expected ones, and the good
documents come out unchanged (``import``) or tagged in line (``tag``). A corruption sweep flips bytes of shards
the toolkit wrote and checks no altered document is ever kept.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import read_jsonl
from hostile import CASES, write_cases

from dolma import io
from dolma.io import writers

MEMORY_BOUND_MB = 1500  # peak RSS of a whole stage over every case, the 2 MB-capped giant document included
RUNNER = """
import resource, runpy, sys
sys.argv = ["dolma", *sys.argv[1:]]
try:
    runpy.run_module("dolma", run_name="__main__")
finally:
    usage = [resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    peak = max(usage)
    print(f"PEAK_KB {peak}", file=sys.stderr)
"""


def run_measured(*args: str, timeout: int = 600, cap_mb: str = "2") -> tuple[subprocess.CompletedProcess, int]:
    env = {**os.environ, "DOLMA_MAX_DOCUMENT_MB": cap_mb}
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, *args], capture_output=True, text=True, timeout=timeout, env=env
    )
    peak = int(next(x.split()[1] for x in proc.stderr.splitlines() if x.startswith("PEAK_KB"))) // 1024
    return proc, peak


@pytest.fixture(scope="module")
def hostile_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    write_cases(root / "documents")
    runs = {}
    imported, peak = run_measured("import", "--input", str(root / "documents"), "--output", str(root / "out"))
    runs["import"] = (imported, peak, root / "out" / "_ledger" / "import")
    tagged, peak = run_measured(
        "tag", "--documents", str(root / "documents") + "/*", "--taggers", "c4_v1", "stats_v1", "--workers", "2"
    )
    runs["tag"] = (tagged, peak, root / "attributes" / "tags" / "_ledger" / "tag")
    return root, runs


def _marker(ledger: Path, name: str) -> dict:
    return json.loads((ledger / "done" / f"{name}.json").read_text())


@pytest.mark.parametrize("stage", ["import", "tag"])
def test_the_stage_ends_cleanly_within_the_memory_bound(hostile_runs, stage):
    _, runs = hostile_runs
    proc, peak, _ = runs[stage]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert peak < MEMORY_BOUND_MB, f"{stage} peaked at {peak} MB"


@pytest.mark.parametrize("stage", ["import", "tag"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_record_is_accounted_for_and_good_documents_survive(hostile_runs, stage, case):
    root, runs = hostile_runs
    proc, _, ledger = runs[stage]
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = _marker(ledger, io.strip_suffix(case.file))
    quarantined = summary["quarantined"]
    assert summary["read"] == summary["kept"] + sum(summary["dropped"].values()) + sum(quarantined.values())
    assert summary["read"] == case.records, summary
    if stage == "tag" and case.import_only:  # a repeated id is a line like any other to a tagger
        assert summary["kept"] == len(case.good) + len(case.import_only) and not quarantined
        return
    assert summary["kept"] == len(case.good), summary
    for reason, n in case.reasons.items():
        assert quarantined.get(reason, 0) >= n, (reason, quarantined)
    if stage == "import":
        out = root / "out" / (io.strip_suffix(case.file) + ".jsonl.zst")
        kept = read_jsonl(out) if case.good else []
        assert [{k: d[k] for k in ("id", "text")} for d in kept] == case.good
    else:
        attrs = read_jsonl(root / "attributes" / "tags" / case.file) if case.records else []
        tagged = [a["id"] for a in attrs if a["attributes"]]
        assert tagged == [d["id"] for d in case.good]


def test_quarantine_keeps_the_raw_line_capped_with_its_full_length(hostile_runs):
    root, _ = hostile_runs
    records = [
        json.loads(x) for p in (root / "out/_ledger/import/quarantine").rglob("*.jsonl.gz") for x in read_jsonl_raw(p)
    ]
    big = next(r for r in records if r["reason"] == "oversize")
    assert big["size"] > 2_000_000 and len(big["raw"].encode()) <= 64 << 10
    dup = next(r for r in records if r["reason"] == "duplicate_id")
    assert "another text under the same id" in dup["raw"]  # the duplicate can be recovered from quarantine
    deep = next(r for r in records if r["file"].endswith("deep_metadata.jsonl"))
    assert deep["reason"] == "invalid_json" and "nested too deeply" in deep["error"]
    surrogate = next(r for r in records if r["file"].endswith("lone_surrogate.jsonl"))
    assert "surrogate" in surrogate["error"]


GIANT_MB = 8
# peak memory a giant document adds to a stage, in multiples of its size: each split word of it is a row of
# several columns (text, document, hashes), each k-gram pass a hash table: measured ~12x (tag; freed pages go
# back at once, dolma.core.allocators), under 3x (tokenize); polars' allocator defaults gave 28x (tag)
QUICKSTART_TAGGERS = ["gopher_quality_v1", "gopher_repetition_v1", "c4_v1", "fineweb_v1", "ft_lang_id_v1"]
MEMORY_MULTIPLE = {"tag": 16, "tokenize": 6}


@pytest.mark.parametrize("stage", ["tag", "tokenize"])
def test_one_giant_document_costs_a_bounded_multiple_of_its_size(tmp_path, stage):
    """An 8 MB document (real text, repeated) among small ones: the stage's peak memory grows by at most a
    fixed multiple of the document's size over the same stage on the small ones alone."""
    from conftest import sample_docs, write_jsonl_gz

    docs = sample_docs("python-docs") + sample_docs("sympy-docs")
    text = "\n\n".join(d["text"] for d in docs)
    giant = (text * (GIANT_MB * 10**6 // len(text) + 1))[: GIANT_MB * 10**6]
    peaks = {}
    for name, shard in (("small", docs[:3]), ("giant", [*docs[:3], {"id": "giant", "text": giant}])):
        write_jsonl_gz(tmp_path / name / "documents" / "d.jsonl.gz", shard)
        glob = str(tmp_path / name / "documents" / "*")
        if stage == "tag":
            args = ["tag", "--documents", glob, "--taggers", *QUICKSTART_TAGGERS, "pii_v1", "stats_v1"]
        else:
            args = ["tokenize", "--input", glob, "--output", str(tmp_path / name / "tokens")]
        proc, peaks[name] = run_measured(*args, "--workers", "1", cap_mb="50")
        assert proc.returncode == 0, proc.stderr[-3000:]
    grown = peaks["giant"] - peaks["small"]
    assert grown < MEMORY_MULTIPLE[stage] * GIANT_MB, f"{stage}: an {GIANT_MB} MB document added {grown} MB"


def read_jsonl_raw(path: Path) -> list[bytes]:
    import gzip

    return gzip.decompress(path.read_bytes()).splitlines()


@pytest.mark.parametrize("suffix", [".jsonl.zst", ".jsonl.gz"])
def test_corruption_sweep_never_keeps_an_altered_document(tmp_path, monkeypatch, suffix):
    """Flip one byte at each of 40 random offsets of a shard we wrote: what is kept is always the original."""
    from conftest import sample_docs

    from dolma.core.document import Document

    monkeypatch.setattr(writers, "UNIT", 16 << 10)  # many checked units, so damage costs one of several
    docs = [Document(d["id"], d["text"]) for d in sample_docs("python-docs", 300)]
    original = {d.id: d.text for d in docs}
    clean = tmp_path / f"clean{suffix}"
    with io.DocumentWriter(str(clean)) as w:
        w.write(docs)  # one write: the writer cuts it into units itself
    data = clean.read_bytes()
    rng = random.Random(7)
    for trial in range(40):
        damaged = bytearray(data)
        damaged[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        path = tmp_path / f"t{trial}{suffix}"
        path.write_bytes(bytes(damaged))
        kept, rejected = [], []
        for batch in io.read_documents(str(path)):
            kept += batch.docs
            rejected += batch.rejected
        assert all(original.get(d.id) == d.text for d in kept), f"trial {trial} kept an altered document"
        assert len({d.id for d in kept}) == len(kept)
        assert len(kept) >= len(docs) * 0.5, f"trial {trial}: one flipped byte cost {len(docs) - len(kept)} documents"
        if len(kept) < len(docs):
            assert rejected, f"trial {trial} lost documents without a record"
