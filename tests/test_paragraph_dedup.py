"""Paragraph dedup's exact method (many tasks) against the Bloom filter's single ordered task."""

import gzip
import json
from pathlib import Path

from conftest import SAMPLE, read_jsonl, run_cli, sample_docs, write_jsonl_gz

KEY = "paragraph_dedup__paragraph_bloom__duplicate_paragraph"


def _corpus(root: Path) -> Path:
    """The four bundled sample files, and a fifth of Python-docs pages copied with a line of their own each:
    their paragraphs were first seen in another file, so only the partitions across files can find them."""
    folder = root / "documents"
    folder.mkdir(parents=True)
    for f in sorted(SAMPLE.glob("*.jsonl.gz")):
        (folder / f.name).write_bytes(f.read_bytes())
    copies = [
        {**d, "id": d["id"] + "-copy", "text": f"Copied page {i}.\n" + d["text"]}
        for i, d in enumerate(sample_docs()[:40])
    ]
    write_jsonl_gz(folder / "zz-copies.jsonl.gz", copies)
    return folder


def _attributes(root: Path) -> dict[str, bytes]:
    """Each attribute file's lines (the compressed bytes depend on how the writes were cut: batch sizes)."""
    out = root / "attributes" / "paragraph_dedup"
    return {p.name: gzip.decompress(p.read_bytes()) for p in sorted(out.glob("*.jsonl.gz"))}


def _done(root: Path, step: str) -> int:
    return len(list((root / "attributes" / "paragraph_dedup").rglob(f"_ledger/{step}/done/*.json")))


def test_the_exact_method_runs_as_many_tasks_and_marks_what_the_bloom_filter_marks(tmp_path):
    bloom = tmp_path / "bloom"
    folder = _corpus(bloom)
    run_cli(
        "dedup-paragraphs", "--documents", str(folder / "*.gz"), "--method", "bloom", "--expected-ngrams", "3000000"
    )
    expected = _attributes(bloom)
    copies = read_jsonl(bloom / "attributes" / "paragraph_dedup" / "zz-copies.jsonl.gz")
    assert sum(bool(c["attributes"].get(KEY)) for c in copies) >= 25  # found across files
    # batches of 7 documents: a file's n-grams are kept a batch at a time, so repeats across its batches are
    # found by the key partitions exactly as repeats across files
    for workers, partitions, batch in ((1, None, None), (2, "3", "7"), (4, "7", None)):
        root = tmp_path / f"exact-{workers}"
        folder = _corpus(root)
        args = ["--documents", str(folder / "*.gz"), "--workers", str(workers)]
        args += ["--partitions", partitions] if partitions else []
        proc = run_cli("dedup-paragraphs", *args, *(["--batch-size", batch] if batch else []))
        assert "(method: exact)" in proc.stdout
        assert _attributes(root) == expected, f"{workers} workers, {partitions} partitions, batches of {batch}"
        # every step has many tasks: one per file, one per key partition (default: one per file), one per file
        parts = int(partitions) if partitions else 5
        assert (_done(root, "paragraph_dedup-ngrams"), _done(root, "paragraph_dedup-first")) == (5, parts)
        assert _done(root, "paragraph_dedup") == 5
        summary = json.loads((root / "attributes/paragraph_dedup/_ledger/paragraph_dedup/summary.json").read_text())
        assert summary["read"] == summary["kept"] == sum(len(read_jsonl(f)) for f in folder.glob("*.gz"))


def test_a_bloom_option_with_the_exact_method_is_an_error_naming_both(tmp_path):
    folder = tmp_path / "documents"
    write_jsonl_gz(folder / "a.jsonl.gz", sample_docs(n=3))
    args = ["--documents", str(folder / "*.gz"), "--method", "exact", "--bloom-out", str(tmp_path / "f.bloom")]
    proc = run_cli("dedup-paragraphs", *args, check=False)
    assert proc.returncode == 2 and "bloom_out needs method: bloom" in proc.stderr and "Traceback" not in proc.stderr
