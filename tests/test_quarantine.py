"""Corrupted input is quarantined with file, line and reason; the ledger balances; good documents survive."""

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard
from conftest import read_jsonl, run_cli, sample_docs

from dolma.core.document import ENCODER, AttributeLine


def _line(d) -> bytes:
    return json.dumps(d).encode() + b"\n"


def build_corrupt_corpus(root):
    good = sample_docs("postgresql-docs", 40)
    bad_lines = {
        "invalid_json": b'{"id": "x1", "text": "unterminated\n',
        "invalid_utf8": b'{"id": "x2", "text": "caf\xe9 latin-1 bytes"}\n',
        "missing_id": _line({"text": "no id here"}),
        "missing_text": _line({"id": "x3"}),
        "id_wrong_type": _line({"id": 12345, "text": "numeric id"}),
        "text_wrong_type": _line({"id": "x4", "text": ["a", "list"]}),
        "not_an_object": b'["id", "text"]\n',
        "empty_line": b"   \n",
        "metadata_wrong_type": _line({"id": "x5", "text": "t", "metadata": "a string"}),
        "empty_id": _line({"id": "", "text": "blank id"}),
        "lone_surrogate": b'{"id": "x6", "text": "broken \\ud800 pair"}\n',
        "duplicate_id": _line(good[0]),
    }
    body = b""
    for i, d in enumerate(good[:20]):
        body += _line(d)
        if i < len(bad_lines):
            body += list(bad_lines.values())[i]
    (root / "mixed.jsonl.gz").write_bytes(gzip.compress(body))
    whole = gzip.compress(b"".join(_line(d) for d in good[20:]))
    (root / "truncated.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    zst = bytearray(zstandard.ZstdCompressor().compress(b"".join(_line(d) for d in good[20:])))
    zst[len(zst) // 2 : len(zst) // 2 + 64] = b"\x00" * 64
    (root / "corrupt.jsonl.zst").write_bytes(bytes(zst))
    (root / "garbage.parquet").write_bytes(b"PAR1 this is not parquet at all")
    pq.write_table(pa.table({"id": ["p1", "p2", None], "text": ["one", None, "three"]}), root / "nulls.parquet")
    return good, bad_lines


def test_ten_kinds_of_corruption_are_quarantined_and_the_ledger_balances(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    good, bad_lines = build_corrupt_corpus(src)
    out = tmp_path / "out"
    proc = run_cli("import", "--input", str(src), "--output", str(out), "--workers", "2")
    assert "Summary" in proc.stdout

    summary = json.loads((out / "_ledger/import/summary.json").read_text())
    assert summary["read"] == summary["kept"] + sum(summary["dropped"].values()) + sum(summary["quarantined"].values())
    q = summary["quarantined"]
    for reason in ("invalid_json", "invalid_utf8", "invalid_schema", "empty_line", "duplicate_id", "corrupt_stream"):
        assert q.get(reason, 0) >= 1, (reason, q)
    # mixed: 12 bad lines; truncated gz, corrupt zst, garbage parquet: 1 each; nulls.parquet: 2 rows
    assert sum(q.values()) == len(bad_lines) + 3 + 2

    records = [
        json.loads(line)
        for p in sorted((out / "_ledger/import/quarantine").rglob("*.jsonl.gz"))
        for line in gzip.open(p)
    ]
    mixed = [r for r in records if r["file"].endswith("mixed.jsonl.gz")]
    assert len(mixed) == len(bad_lines)
    # every bad line is reported at its own line number: good line i is 2i+1, bad line i is 2i+2
    assert sorted(r["line"] for r in mixed) == [2 * i + 2 for i in range(len(bad_lines))]
    assert all(r["reason"] and r["error"] for r in records)
    dup = next(r for r in mixed if r["reason"] == "duplicate_id")
    assert "already at line 1" in dup["error"]

    kept_mixed = read_jsonl(out / "mixed.jsonl.zst")
    assert [d["id"] for d in kept_mixed] == [d["id"] for d in good[:20]]
    assert kept_mixed[3] == good[3]  # unchanged, metadata included
    kept_truncated = read_jsonl(out / "truncated.jsonl.zst")
    assert 0 < len(kept_truncated) < 20 and [d["id"] for d in kept_truncated] == [
        d["id"] for d in good[20 : 20 + len(kept_truncated)]
    ]
    assert [d["id"] for d in read_jsonl(out / "nulls.jsonl.zst")] == ["p1"]

    ledger = pq.read_table(out / "_ledger/import/documents/mixed.parquet").to_pylist()
    assert len(ledger) == 20 + len(bad_lines)
    assert {r["outcome"] for r in ledger} == {"kept", "quarantined"}
    # a truncated stream after N lines counts N+1 records read (the unreadable tail is one quarantined record)
    per_file = json.loads((out / "_ledger/import/done/truncated.json").read_text())
    assert per_file["quarantined"] == {"corrupt_stream": 1}
    assert per_file["read"] == per_file["kept"] + 1 == len(kept_truncated) + 1


def test_attribute_files_out_of_step_quarantine_their_documents(tmp_path):
    docs = sample_docs("go-src", 30)
    doc_dir = tmp_path / "in" / "documents"
    doc_dir.mkdir(parents=True)
    (doc_dir / "a.jsonl.gz").write_bytes(gzip.compress(b"".join(_line(d) for d in docs)))
    attrs = [AttributeLine(d["id"], {"len__v1__chars": [[0, len(d["text"]), len(d["text"])]]}) for d in docs]
    attrs[4] = AttributeLine("wrong-id", {})
    attr_file = tmp_path / "in" / "attributes" / "len" / "a.jsonl.gz"
    attr_file.parent.mkdir(parents=True)
    attr_file.write_bytes(gzip.compress(ENCODER.encode_lines(attrs[:25])))

    out = tmp_path / "out" / "documents"
    run_cli("import", "--input", str(doc_dir), "--output", str(out), "--attributes", "len", "--workers", "1")
    summary = json.loads((out / "_ledger/import/summary.json").read_text())
    assert summary["read"] == 30 and summary["kept"] == 24
    assert summary["quarantined"] == {"attributes_out_of_step": 6}
    kept_ids = [d["id"] for d in read_jsonl(out / "a.jsonl.zst")]
    realigned = read_jsonl(tmp_path / "out" / "attributes" / "len" / "a.jsonl.zst")
    assert [a["id"] for a in realigned] == kept_ids
    assert all(
        a["attributes"]["len__v1__chars"][0][2] == len(d["text"])
        for a, d in zip(realigned, [d for d in docs if d["id"] in set(kept_ids)])
    )
