"""Document and attribute I/O: formats, batching, metadata fidelity."""

import json

import pytest
from conftest import sample_docs, write_jsonl_gz

from dolma import io
from dolma.document import ENCODER, AttributeLine


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst", ".parquet"])
def test_round_trip_every_format_keeps_documents_and_metadata(tmp_path, suffix):
    src = write_jsonl_gz(tmp_path / "in.jsonl.gz", sample_docs("sympy-docs", 50))
    docs = [d for b in io.read_documents(str(src)) for d in b.docs]
    out = str(tmp_path / f"out{suffix}")
    with io.DocumentWriter(out) as w:
        w.write(docs)
    again = [d for b in io.read_documents(out) for d in b.docs]
    assert [(d.id, d.text, d.source, d.added) for d in again] == [(d.id, d.text, d.source, d.added) for d in docs]
    assert [json.loads(bytes(d.metadata)) for d in again] == [r["metadata"] for r in sample_docs("sympy-docs", 50)]


def test_reading_is_batched_and_numbers_lines(tmp_path):
    src = write_jsonl_gz(tmp_path / "in.jsonl.gz", sample_docs("python-docs", 100))
    batches = list(io.read_documents(str(src), batch_size=30))
    assert [len(b.docs) for b in batches] == [30, 30, 30, 10]
    assert [line for b in batches for line in b.lines] == list(range(1, 101))


def test_a_killed_writer_leaves_no_file_under_the_final_name(tmp_path):
    out = tmp_path / "x.jsonl.zst"
    with pytest.raises(RuntimeError):
        with io.DocumentWriter(str(out)) as w:
            w.write(
                [
                    d
                    for b in io.read_documents(str(write_jsonl_gz(tmp_path / "a.jsonl.gz", sample_docs(n=5))))
                    for d in b.docs
                ]
            )
            raise RuntimeError("killed")
    assert list(tmp_path.glob("x*")) == [] and list(tmp_path.glob(".x*")) == []


def test_aligned_attributes_join_and_detect_misalignment(tmp_path):
    docs = sample_docs("go-src", 20)
    src = write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", docs)
    lines = [AttributeLine(d["id"], {"t__len__chars": [[0, len(d["text"]), len(d["text"])]]}) for d in docs]
    lines[7] = AttributeLine("someone-else", {})
    attr = tmp_path / "attributes" / "len" / "a.jsonl.gz"
    attr.parent.mkdir(parents=True)
    import gzip

    attr.write_bytes(gzip.compress(ENCODER.encode_lines(lines[:15])))
    batches = list(io.read_aligned(str(src), {"len": io.attributes_url(str(src), "len")}))
    joined = [d.id for b in batches for d in b.docs]
    rejected = [r for b in batches for r in b.rejected]
    assert joined == [d["id"] for i, d in enumerate(docs[:15]) if i != 7]
    assert {r.line for r in rejected} == {8, 16, 17, 18, 19, 20}
    assert "someone-else" in rejected[0].error and "a.jsonl.gz line 8" in rejected[0].error
    assert all(r.reason == "attributes_out_of_step" for r in rejected)
    assert batches[0].attributes[0]["len"]["t__len__chars"][0][2] == len(docs[0]["text"])


def test_listing_skips_ledgers_and_temporary_files(tmp_path):
    for rel in ["a.jsonl.gz", "sub/b.jsonl.gz", "_ledger/import/quarantine/a.jsonl.gz", ".c.jsonl.gz.tmp", "notes.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    found = io.document_files(str(tmp_path))
    assert [io.relative_to_root(f, str(tmp_path)) for f in found] == ["a.jsonl.gz", "sub/b.jsonl.gz"]
    with pytest.raises(io.UserError, match="no document files"):
        io.document_files(str(tmp_path / "nothing-here"))
