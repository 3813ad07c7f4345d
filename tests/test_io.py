"""Document and attribute I/O: formats, batching, metadata fidelity."""

import gzip
import json
import os
import subprocess
import sys

import pytest
from conftest import sample_docs, write_jsonl_gz

from dolma import io
from dolma.core.document import ENCODER, AttributeLine
from dolma.core.errors import UserError
from dolma.io import streams


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


def test_a_batch_of_large_documents_ends_at_its_byte_budget(tmp_path, monkeypatch):
    """A batch holds ``batch_size`` documents or about ``BATCH_BYTES``, whichever comes first, so a shard of
    large documents never puts a thousand of them in memory at once; lines stay numbered across batches."""
    from dolma.io import lines as lines_module

    docs = sample_docs("python-docs", 100)
    sizes = [len(ENCODER.encode(d)) + 1 for d in docs]
    monkeypatch.setattr(lines_module, "BATCH_BYTES", sum(sizes) // 7)
    src = write_jsonl_gz(tmp_path / "in.jsonl.gz", docs)
    batches = list(io.read_documents(str(src), batch_size=1000))
    assert 7 <= len(batches) <= 9
    assert all(b.nbytes - len(b.docs[-1].text) <= sum(sizes) // 7 for b in batches if b.docs)
    assert [line for b in batches for line in b.lines] == list(range(1, 101))
    assert [d.id for b in batches for d in b.docs] == [d["id"] for d in docs]


def test_lines_read_in_blocks_match_the_file_line_for_line_even_where_it_is_cut(tmp_path, monkeypatch):
    """Lines are read a block at a time; a line longer than a block, a last line without a newline, and a
    stream cut inside a block must come out as a line-by-line reader gives them."""
    monkeypatch.setattr(streams, "_BLOCK", 4096)  # blocks of one or two lines, and lines over many blocks
    docs = sample_docs("python-docs", 40)
    body = b"".join(ENCODER.encode(d) + b"\n" for d in docs)[:-1]  # no newline after the last line
    src = tmp_path / "in.jsonl.gz"
    src.write_bytes(gzip.compress(body))
    batches = list(io.read_lines(str(src), batch_size=7))
    assert [len(b.lines) for b in batches] == [7] * 5 + [5]
    assert b"".join(line for b in batches for line in b.lines) == body
    assert [n for b in batches for n in b.numbers] == list(range(1, 41))

    monkeypatch.undo()  # a stream cut in its first block: every whole line before the cut is recovered
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(src.read_bytes()[: len(src.read_bytes()) * 2 // 3])
    with gzip.open(cut, "rb") as f:
        readable = []
        with pytest.raises(EOFError):
            readable.extend(f)
    got = list(io.read_lines(str(cut), batch_size=7))
    lines = [line for b in got for line in b.lines]
    assert 10 < len(lines) < 40 and lines == readable
    assert [r.reason for b in got for r in b.rejected] == ["corrupt_stream"]
    assert got[-1].rejected[0].line == len(lines) + 1


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


@pytest.mark.parametrize("batch_size", [4096, 3])
def test_aligned_attributes_join_and_detect_misalignment(tmp_path, batch_size):
    docs = sample_docs("go-src", 20)
    src = write_jsonl_gz(tmp_path / "documents" / "a.jsonl.gz", docs)
    lines = [AttributeLine(d["id"], {"t__len__chars": [[0, len(d["text"]), len(d["text"])]]}) for d in docs]
    lines[7] = AttributeLine("someone-else", {})
    for name, body in (("len", ENCODER.encode_lines(lines[:15])), ("ok", ENCODER.encode_lines(lines[:3]))):
        if name == "ok":  # a second set: in step, but line 2 is not JSON and it ends after line 12
            ok = [AttributeLine(d["id"], {"o__x__y": [[0, 1, 1.0]]}) for d in docs[:12]]
            ok[4].attributes["t__len__chars"] = [[0, 1, 99.0]]  # a key in both sets: the later set's spans win
            body = ENCODER.encode_lines(ok).split(b"\n")
            body[1] = b'{"id": "broken'
            body = b"\n".join(body)
        attr = tmp_path / "attributes" / name / "a.jsonl.gz"
        attr.parent.mkdir(parents=True)
        attr.write_bytes(gzip.compress(body))
    sets = {name: io.attributes_url(str(src), name) for name in ("len", "ok")}
    batches = list(io.read_aligned(str(src), sets, batch_size))
    joined = [d.id for b in batches for d in b.docs]
    rejected = {r.line: r for b in batches for r in b.rejected}
    assert joined == [d["id"] for i, d in enumerate(docs[:12]) if i not in (1, 7)]
    assert sorted(rejected) == [2, 8, 13, 14, 15, 16, 17, 18, 19, 20]
    assert "someone-else" in rejected[8].error and "len/a.jsonl.gz line 8" in rejected[8].error
    assert rejected[2].reason == "invalid_attribute" and "ok/a.jsonl.gz line 2: invalid_attribute" in rejected[2].error
    assert "ok/a.jsonl.gz ends before line 13" in rejected[13].error  # the first set at fault is named
    assert "len/a.jsonl.gz ends before line 16" in rejected[16].error
    assert all(r.reason == "attributes_out_of_step" for n, r in rejected.items() if n != 2)
    first = next(b for b in batches if b.docs)
    assert first.attributes[0]["len"]["t__len__chars"][0][2] == len(docs[0]["text"])
    assert first.attributes[0]["ok"] == {"o__x__y": [[0, 1, 1.0]]}
    # as columns: the same documents, the same rejections in the same order, each key's spans per document
    select = io.KeySelection(frozenset({"t__len__chars", "o__x__y"}))
    per_doc = list(io.read_aligned(str(src), sets, batch_size, select))
    columnar = list(io.read_aligned_columns(str(src), sets, select, batch_size))
    assert [d.id for b in columnar for d in b.docs] == [i for b in columnar for i in b.ids] == joined
    assert [b.lines for b in columnar] == [b.lines for b in per_doc]
    assert [(r.line, r.reason, r.error, r.id) for b in columnar for r in b.rejected] == [
        (r.line, r.reason, r.error, r.id) for b in per_doc for r in b.rejected
    ]
    merged = [{k: v for s in a.values() for k, v in s.items()} for b in per_doc for a in b.attributes]
    for key in ("t__len__chars", "o__x__y"):
        assert [v for b in columnar for v in b.columns[key]] == [m.get(key) for m in merged]
    overridden = joined.index(docs[4]["id"])
    assert [v for b in columnar for v in b.columns["t__len__chars"]][overridden] == [(0, 1, 99.0)]


def test_attribute_sets_join_column_by_column_and_reject_lines_out_of_step(tmp_path):
    import gzip

    docs = sample_docs("go-src", 20)
    ids = [d["id"] for d in docs]
    root = tmp_path / "attributes"
    lead = [AttributeLine(i, {"a__len__chars": [[0, 5, 5]], "a__topic__go": [[0, 5, 0.9]]}) for i in ids]
    other = [
        AttributeLine(i, {"b__q__score": [[0, 5, k / 10]], "b__topic__c": [[0, 5, 0.5]]}) for k, i in enumerate(ids)
    ]
    other[3] = AttributeLine("someone-else", {})
    body = ENCODER.encode_lines(other[:15]).split(b"\n")
    body[9] = b'{"id": "broken'  # line 10 of the second set is not JSON
    for name, data in (("a", ENCODER.encode_lines(lead)), ("b", b"\n".join(body))):
        (root / name).mkdir(parents=True)
        (root / name / "x.jsonl.gz").write_bytes(gzip.compress(data))
    sets = {name: str(root / name / "x.jsonl.gz") for name in ("a", "b")}
    batches = list(io.read_attribute_columns(sets, io.KeySelection(frozenset({"b__q__score"}), "a__topic__"), 8))
    kept = [n for b in batches for n in b.lines]
    assert kept == [n for n in range(1, 16) if n not in (4, 10)]
    rejected = {r.line: r.error for b in batches for r in b.rejected}
    assert sorted(rejected) == [4, 10, 16, 17, 18, 19, 20]
    reasons = {r.line: r.reason for b in batches for r in b.rejected}
    assert "x.jsonl.gz line 4 has id 'someone-else'" in rejected[4] and reasons[4] == "attributes_out_of_step"
    assert reasons[10] == "invalid_attribute" and "x.jsonl.gz line 10" in rejected[10]
    assert "ends before line 16" in rejected[16]
    first = batches[0]
    assert first.ids == [ids[n - 1] for n in first.lines]
    assert sorted(first.columns) == ["a__topic__go", "b__q__score"]  # selected names and the prefix, nothing else
    assert [v[0][2] for v in first.columns["b__q__score"]] == [(n - 1) / 10 for n in first.lines]


def test_listing_skips_ledgers_and_temporary_files(tmp_path):
    for rel in ["a.jsonl.gz", "sub/b.jsonl.gz", "_ledger/import/quarantine/a.jsonl.gz", ".c.jsonl.gz.tmp", "notes.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    found = io.document_files(str(tmp_path))
    assert [io.relative_to_root(f, str(tmp_path)) for f in found] == ["a.jsonl.gz", "sub/b.jsonl.gz"]
    with pytest.raises(UserError, match="no document files"):
        io.document_files(str(tmp_path / "nothing-here"))


def test_id_check_without_parsing_accepts_only_the_right_id_at_the_head_of_a_whole_line():
    docs = sample_docs("postgresql-docs", 3)
    ours = ENCODER.encode(docs[0]) + b"\n"  # {"id":...} as we and allenai dolma write it
    python = json.dumps(docs[1]).encode()  # {"id": ...} with Python's separators
    other_order = json.dumps({"text": docs[2]["text"], "id": docs[2]["id"]}).encode()
    lines = [ours, python, ours, ours[: len(ours) // 2], other_order, b'{"id": "' + docs[0]["id"].encode() + b'x"}']
    ids = [docs[0]["id"], docs[1]["id"], docs[1]["id"], docs[0]["id"], docs[2]["id"], docs[0]["id"]]
    assert io.starts_with_id(lines, ids).tolist() == [True, True, False, False, False, False]
    # what the byte check leaves undecided, the parse decides: the other key order is the right id
    assert io.line_id(other_order) == docs[2]["id"] and io.line_id(lines[3]) is None


@pytest.mark.parametrize("chosen", [None, "mimalloc"])
def test_arrow_buffers_come_from_the_c_allocator_unless_the_user_chose_a_pool(chosen):
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if chosen:
        env["ARROW_DEFAULT_MEMORY_POOL"] = chosen
    code = "import dolma.io, pyarrow as pa; dolma.io.configure(); print(pa.default_memory_pool().backend_name)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == (chosen or "system")


def test_arrow_arrays_from_python_values_keep_every_value_null_and_type():
    import numpy as np
    import pyarrow as pa

    from dolma.core.arrow import array, dictionary

    strings = ["a", None, "ünïcødé ✓", "", "x" * 1000]
    for kind in (pa.string(), pa.large_string()):
        made = array(strings, kind)
        assert made.type == kind and made.to_pylist() == strings and made.null_count == 1
    raw = [b"\x00\xff", b"", memoryview(b"zz")]
    assert array(raw, pa.large_binary()).to_pylist() == [b"\x00\xff", b"", b"zz"]
    assert array(np.arange(3, dtype=np.int32), pa.int64()).to_pylist() == [0, 1, 2]
    encoded = dictionary(["b", "a", "b", ""])
    assert encoded.type == pa.dictionary(pa.int32(), pa.string()) and encoded.to_pylist() == ["b", "a", "b", ""]
    with pytest.raises(TypeError):
        array([1, 2], pa.int64())  # numbers come as a NumPy array


def test_a_small_stage_writes_its_ledger_without_pyarrow_compute_or_polars(tmp_path):
    """The ledger's columns get their exact Arrow types from their buffers, without a cast or polars (whose
    imports would be a fixed cost of every small stage): strings with nulls, reasons dictionary-encoded. The
    stage's parameters are checked without pydantic and no YAML is read, for the same reason."""
    write_jsonl_gz(tmp_path / "in" / "a.jsonl.gz", [*sample_docs("python-docs", 5), {"id": "e", "text": ""}])
    code = (
        "import sys; sys.argv = ['dolma', 'import', '--input', sys.argv[1], '--output', sys.argv[2]];"
        "from dolma.app.cli import main; main();"
        "print('LOADED', *(m in sys.modules for m in ('pyarrow.compute', 'polars', 'pydantic', 'yaml')))"
    )
    args = [sys.executable, "-c", code, str(tmp_path / "in"), str(tmp_path / "out")]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    assert "LOADED False False False False" in out.stdout
    import pyarrow as pa
    import pyarrow.parquet as pq

    ledger = pq.read_table(next((tmp_path / "out" / "_ledger").rglob("*.parquet")))
    assert ledger.schema.field("id").type == pa.string() and ledger.schema.field("detail").type == pa.string()
    assert ledger.schema.field("reason").type == pa.dictionary(pa.int32(), pa.string())
    reasons = dict(zip(ledger["line"].to_pylist(), ledger["reason"].to_pylist()))
    assert reasons == {1: "", 2: "", 3: "", 4: "", 5: "", 6: "invalid_schema"}
    ids = dict(zip(ledger["line"].to_pylist(), ledger["id"].to_pylist()))
    assert ids[6] is None and ids[1] == sample_docs("python-docs", 1)[0]["id"]


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst"])
def test_compressed_files_are_cut_into_checked_units_whatever_buffer_is_written(tmp_path, monkeypatch, suffix):
    """Writers get bytes, bytearrays and buffers (Arrow, memoryview); each is cut into units at line ends."""
    from dolma.io import writers

    monkeypatch.setattr(writers, "UNIT", 4096)
    lines = [ENCODER.encode({"id": str(i), "text": f"line {i} " * 20}) + b"\n" for i in range(300)]
    body = b"".join(lines)
    path = str(tmp_path / f"x{suffix}")
    with io.AtomicWriter(path) as w:
        w.write(memoryview(body[:50_000]))
        w.write(bytearray(body[50_000:60_000]))
        w.write(body[60_000:])
    got = [line for batch in io.read_lines(path) for line in batch.lines]
    assert got == lines and all(not b.rejected for b in io.read_lines(path))
    magic = b"\x1f\x8b\x08" if suffix.endswith("gz") else b"\x28\xb5\x2f\xfd"
    assert (tmp_path / f"x{suffix}").read_bytes().count(magic) >= len(body) // 4096


def test_a_frame_stream_is_read_back_range_by_range_and_an_empty_one_keeps_its_schema(tmp_path):
    import polars as pl

    schema = {"line": pl.Int64, "v": pl.UInt32}
    with io.FrameStream(str(tmp_path / "t.parquet"), schema) as out:
        for start in range(0, 30, 10):  # a row group per write, lines ascending
            out.write(pl.DataFrame({"line": range(start, start + 10), "v": range(10)}, schema=schema))
    ranges = io.FrameRanges(str(tmp_path / "t.parquet"), "line")
    assert ranges.between(8, 12)["line"].to_list() == [8, 9, 10, 11, 12]
    assert ranges.between(29, 40)["line"].to_list() == [29] and ranges.between(31, 40).height == 0
    ranges.close()
    with io.FrameStream(str(tmp_path / "empty.parquet"), schema):
        pass
    empty = io.FrameRanges(str(tmp_path / "empty.parquet"), "line").between(0, 5)
    assert empty.height == 0 and empty.schema == pl.Schema(schema)


TRICKY_LINES = [
    b'{"id": "plain", "text": "An ordinary document.", "metadata": {"url": "https://example.com"}}\n',
    b'{"id": "null-meta", "text": "Metadata null becomes an empty object.", "metadata": null}\n',
    b'{"id": "no-meta", "text": "No metadata at all."}\n',
    b'{"id": "list-meta", "text": "Metadata that is not an object.", "metadata": [1]}\n',
    b'{"id": "", "text": "An empty id."}\n',
    b'{"id": "spaces", "text": "   \\n\\t  "}\n',
    b'{"id": "empty", "text": ""}\n',
    b'{"id": "lead-space", "text": "  Leading spaces, then words."}\n',
    b'{"id": "lead-escape", "text": "\\nA newline escape first."}\n',
    b'{"id": "lead-quote", "text": "\\"Quoted\\" at the start."}\n',
    b'{"id": "unicode-blank", "text": "\\u00a0\\u2003"}\n',
    b'{"id": "number", "text": 12}\n',
    '{"id": "accents", "text": "Caf\u00e9 na\u00efve \u4e2d\u6587 \U0001f600."}\n'.encode(),
    b'{"id": "bad-utf8", "text": "broken \xff\xfe bytes"}\n',
    b'{"id": "surrogate", "text": "lone \\ud800 escape"}\n',
    b"\n",
    b"not json at all\n",
    b'{"id": "padded", "text": "Whitespace around the object."}   \n',
    b'{"id": "last", "text": "No newline at the end."}',
]


@pytest.mark.parametrize("lazy", [False, True])
def test_a_batch_decoded_together_gives_what_decoding_line_by_line_gives(lazy):
    """The batch path accepts a document only where the line-by-line check would, and rejects every other line
    with the same reason, wherever the odd line sits in the batch (alone among plain lines, or many at once)."""
    from dolma.io.lines import LineBatch, RejectedLine, parse_line

    def one_by_one(lines):
        out = []
        for number, line in enumerate(lines, 1):
            try:
                out.append(("doc", number, ENCODER.encode(parse_line(number, line, lazy))))
            except RejectedLine as e:
                out.append(("rejected", number, e.rejected.reason))
        return out

    def batched(lines):
        batch = io.parse_lines(LineBatch(list(range(1, len(lines) + 1)), list(lines)), lazy)
        got = [("doc", n, ENCODER.encode(d)) for n, d in zip(batch.lines, batch.docs)]
        return sorted(got + [("rejected", r.line, r.reason) for r in batch.rejected], key=lambda x: x[1])

    plain = [b'{"id": "p%d", "text": "Plain text %d."}\n' % (i, i) for i in range(5)]
    for odd in TRICKY_LINES:
        lines = plain[:2] + [odd] + plain[2:]
        assert batched(lines) == one_by_one(lines), odd
    assert batched(TRICKY_LINES) == one_by_one(TRICKY_LINES)
    kinds = [k for k, _, _ in one_by_one(TRICKY_LINES)]
    assert kinds.count("doc") == 9 and kinds.count("rejected") == 10
