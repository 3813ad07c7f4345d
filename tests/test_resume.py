"""Idempotent reruns: a run killed with SIGKILL at any moment and rerun equals an uninterrupted run,
and the output does not depend on the number of workers."""

import gzip
import json
import os
import signal
import subprocess
import sys
import time

import zstandard
from conftest import sample_docs, tree_bytes


def make_corpus(root, shards=40, per_shard=300):
    docs = sample_docs("python-docs") + sample_docs("postgresql-docs") + sample_docs("sympy-docs")
    root.mkdir(parents=True)
    for s in range(shards):
        lines = []
        for i in range(per_shard):
            d = dict(docs[(s * per_shard + i) % len(docs)])
            d["id"] = f"{d['id']}-{s}-{i}"
            lines.append(json.dumps(d))
        if s % 7 == 3:
            lines.insert(5, "{not json")
        (root / f"shard-{s:03d}.jsonl.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), 1))


def import_cmd(src, out, workers):
    return [
        sys.executable,
        "-m",
        "dolma",
        "import",
        "--input",
        str(src),
        "--output",
        str(out),
        "--workers",
        str(workers),
        "--batch-size",
        "64",
    ]


def test_sigkill_at_any_moment_then_rerun_gives_the_uninterrupted_output(tmp_path):
    src = tmp_path / "in"
    make_corpus(src)
    reference = tmp_path / "reference"
    subprocess.run(import_cmd(src, reference, 1), check=True, capture_output=True)
    expected = tree_bytes(reference)
    assert len([k for k in expected if k.endswith(".jsonl.zst")]) == 40

    partial_states = 0
    # kill before any shard is done, after the first one, and about half-way (polling the completion markers)
    for label, wanted in (("early", 0), ("first", 1), ("half", 20)):
        out = tmp_path / f"killed-{label}"
        proc = subprocess.Popen(
            import_cmd(src, out, 2), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.time() + 120
        while proc.poll() is None and time.time() < deadline:
            done = len(list((out / "_ledger/import/done").glob("*.json"))) if out.exists() else 0
            if done >= wanted and (wanted or time.time() > deadline - 119.5):
                break
            time.sleep(0.01)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole run: main process and its workers
        proc.wait()
        done = len(list((out / "_ledger/import/done").glob("*.json"))) if out.exists() else 0
        partial_states += 0 < done < 40
        subprocess.run(import_cmd(src, out, 2), check=True, capture_output=True)
        assert tree_bytes(out) == expected, f"rerun after SIGKILL ({label}) differs"
    assert partial_states >= 1, "no kill landed mid-run"


def test_output_does_not_depend_on_the_number_of_workers(tmp_path):
    src = tmp_path / "in"
    make_corpus(src, shards=6, per_shard=100)
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run(import_cmd(src, one, 1), check=True, capture_output=True)
    subprocess.run(import_cmd(src, two, 2), check=True, capture_output=True)
    assert tree_bytes(one) == tree_bytes(two)
    summary = json.loads((one / "_ledger/import/summary.json").read_text())
    assert summary["read"] == 6 * 100 + 1 and summary["quarantined"] == {"invalid_json": 1}


def test_finished_shards_are_not_redone_unless_their_input_changed(tmp_path):
    src = tmp_path / "in"
    make_corpus(src, shards=3, per_shard=20)
    out = tmp_path / "out"
    subprocess.run(import_cmd(src, out, 1), check=True, capture_output=True)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.jsonl.zst")}
    subprocess.run(import_cmd(src, out, 1), check=True, capture_output=True)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.jsonl.zst")} == before  # nothing changed
    (src / "shard-001.jsonl.gz").write_bytes(gzip.compress(b'{"id": "changed", "text": "x"}\n'))
    subprocess.run(import_cmd(src, out, 1), check=True, capture_output=True)
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("*.jsonl.zst")}
    assert after["shard-000.jsonl.zst"] == before["shard-000.jsonl.zst"]
    assert after["shard-002.jsonl.zst"] == before["shard-002.jsonl.zst"]
    assert after["shard-001.jsonl.zst"] != before["shard-001.jsonl.zst"]  # its input changed: redone
    lines = zstandard.ZstdDecompressor().stream_reader((out / "shard-001.jsonl.zst").read_bytes()).read()
    assert [json.loads(line)["id"] for line in lines.splitlines()] == ["changed"]
