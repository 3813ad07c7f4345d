"""Hostile inputs to the stages with their own formats: WARC and loose HTML, attribute values in a mix, texts
that quote special tokens, folders that loop. Each ends the stage, is accounted for, and costs nothing beside it."""

from __future__ import annotations

import gzip
import json
import os
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import read_jsonl, run_cli
from test_web import HTML, http

from dolma import io
from dolma.core.tokenizer import DEFAULT_TOKENIZER, load_tokenizer

PAGE = (HTML / "bugs.html").read_bytes()


def record(uri: str, block: bytes, record_id: str, kind: str = "response", length: int | None = None) -> bytes:
    n = len(block) if length is None else length
    return (
        (
            f"WARC/1.0\r\nWARC-Type: {kind}\r\nWARC-Target-URI: {uri}\r\nWARC-Date: 2024-05-01T12:00:00Z\r\n"
            f"WARC-Record-ID: <urn:uuid:{record_id}>\r\nContent-Type: application/http; msgtype=response\r\n"
            f"Content-Length: {n}\r\n\r\n"
        ).encode()
        + block
        + b"\r\n\r\n"
    )


def good(k: int) -> bytes:
    return record(f"http://good.example/{k}", http("200 OK", "text/html; charset=utf-8", PAGE), f"good{k}")


def _summary(out, name: str) -> dict:
    return json.loads((out / "_ledger" / "web" / "done" / f"{name}.json").read_text())


def _kept_ids(out, name: str) -> list[str]:
    return [d["id"] for d in read_jsonl(out / f"{name}.jsonl.zst")]


@pytest.fixture(scope="module")
def web_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("web")
    src = root / "in"
    (src / "pages").mkdir(parents=True)
    no_status = record("http://bad.example/x", b"no status line here\r\n\r\n<html><p>hi</p></html>", "nostatus")
    (src / "no_status.warc").write_bytes(good(1) + no_status + good(2))
    too_long = record("http://bad.example/long", http("200 OK", "text/html", PAGE), "toolong", length=len(PAGE) * 3)
    (src / "too_long.warc").write_bytes(good(1) + too_long + good(2) + good(3))
    (src / "cut.warc").write_bytes(good(1) + good(2) + good(3)[:-400])
    (src / "garbage_between.warc").write_bytes(good(1) + b"some bytes that are no record\r\n" + good(2))
    members = [gzip.compress(good(k)) for k in range(1, 4)]
    broken = bytearray(members[1])
    broken[len(broken) // 2] ^= 0x20
    (src / "broken_member.warc.gz").write_bytes(members[0] + bytes(broken) + members[2])
    (src / "trailing.warc.gz").write_bytes(members[0] + members[1] + b"trailing garbage")
    encoded = http("200 OK", "text/html; charset=utf-8", gzip.compress(PAGE)).replace(
        b"Content-Type", b"Content-Encoding: gzip\r\nContent-Type", 1
    )
    (src / "encoded.warc").write_bytes(record("http://gz.example/", encoded, "encoded"))
    polish = "Ptaki sprzeciwiają się zmianom; für die Vögel ist das schön, sagt man in der Stadt. ".encode() * 12
    stray = b"<html><head><title>Ptaki\xff</title></head><body><article><p>" + polish + b"</p></article></body></html>"
    (src / "stray_byte.warc").write_bytes(
        record("http://pl.example/", http("200 OK", "text/html; charset=utf-8", stray), "stray")
    )
    big = b"<html><body>" + b"<p>" + b"word " * 400_000 + b"</p></body></html>"
    (src / "oversize.warc").write_bytes(
        good(1) + record("http://big.example/", http("200 OK", "text/html", big), "big")
    )
    (src / "pages" / "a.html").write_bytes(PAGE)
    whole = gzip.compress(PAGE)
    (src / "pages" / "b.html.gz").write_bytes(whole[: len(whole) // 2])
    (src / "pages" / "c.html").write_bytes(PAGE)
    out = root / "out"
    started = time.monotonic()
    proc = run_cli(
        "web", "--input", str(src), "--output", str(out), "--workers", "2", "--max-page-mb", "1", check=False
    )
    return out, proc, time.monotonic() - started


def test_web_run_ends_and_balances(web_run):
    out, proc, _ = web_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "_ledger/web/summary.json").read_text())
    assert summary["read"] == summary["kept"] + sum(summary["dropped"].values()) + sum(summary["quarantined"].values())


@pytest.mark.parametrize(
    "name,records,kept,reason",
    [
        ("no_status.warc", 3, ["good1", "good2"], "malformed_record"),
        ("too_long.warc", 4, ["good1", "good2", "good3"], "malformed_record"),
        ("cut.warc", 3, ["good1", "good2"], "malformed_record"),
        ("garbage_between.warc", 3, ["good1", "good2"], "malformed_record"),
        ("broken_member.warc", 3, ["good1", "good3"], "malformed_record"),
        ("trailing.warc", 3, ["good1", "good2"], "malformed_record"),
        ("encoded.warc", 1, ["encoded"], None),
        ("oversize.warc", 2, ["good1"], None),
    ],
)
def test_a_broken_record_costs_that_record_only(web_run, name, records, kept, reason):
    out, proc, _ = web_run
    summary = _summary(out, name)
    assert summary["read"] == records, summary
    assert _kept_ids(out, name) == kept
    if reason:
        assert summary["quarantined"] == {reason: records - len(kept)}, summary
    if name == "oversize.warc":
        assert summary["dropped"] == {"oversize": 1}


def test_a_page_that_declares_utf8_with_one_stray_byte_is_not_mojibake(web_run):
    out, _, _ = web_run
    (doc,) = read_jsonl(out / "stray_byte.warc.jsonl.zst")
    assert "sprzeciwiają się" in doc["text"] and "für die Vögel" in doc["text"]
    assert doc["metadata"]["charset"] == "utf-8" and doc["metadata"]["decode_errors"] == 1


def test_a_truncated_loose_page_is_quarantined_and_its_folder_goes_on(web_run):
    out, _, _ = web_run
    summary = _summary(out, "pages-html")
    assert summary["read"] == 3 and summary["kept"] == 2 and summary["quarantined"] == {"corrupt_stream": 1}


def test_a_page_that_runs_past_the_time_limit_in_c_code_is_killed_and_the_next_is_extracted():
    from dolma.ingest.html import Extractor, Options, Page

    paragraphs = b"".join(b"<p>word %d word word and more words <a href='x'>link</a></p>" % i for i in range(20_000))
    slow = b"<html><body>" + paragraphs + b"</body></html>"  # several seconds inside lxml and trafilatura
    with Extractor(timeout=1.0, memory_mb=0) as ex:
        started = time.monotonic()
        got = ex.extract(Page(slow, "http://slow.example/", None, Options()))
        assert got.reason == "timeout" and time.monotonic() - started < 10
        assert ex.extract(Page(PAGE, "http://ok.example/", "utf-8", Options())).text


def _mix_input(root) -> dict[str, str]:
    """Twenty documents and an attribute set where eight lines hold values no mix can use."""
    (root / "data/documents").mkdir(parents=True)
    (root / "data/attributes/t").mkdir(parents=True)
    docs = [{"id": f"d{i}", "text": f"document {i} " + "words here " * 30} for i in range(20)]
    attrs = [
        {"id": d["id"], "attributes": {"t__x__tokens": [[0, 10, 64]], "t__x__q": [[0, 10, i / 20]]}}
        for i, d in enumerate(docs)
    ]
    bad = {
        1: {"t__x__tokens": "a string"},
        2: {"t__x__tokens": [[0, 5]]},
        3: {"t__x__tokens": [[]]},
        4: {"t__x__tokens": [[0, 5, -10]]},
        5: {"t__x__tokens": [[0, 5, 1e300]]},
        6: {"t__x__q": [[0, 5, "high"]]},
        7: {"t__x__q": [[0, 5, None]]},
        8: {"t__x__tokens": [[0, 5, 2.5e13]]},
    }
    for i, v in bad.items():
        attrs[i]["attributes"].update(v)
    with gzip.open(root / "data/documents/a.jsonl.gz", "wt") as f:
        f.writelines(json.dumps(d) + "\n" for d in docs)
    with gzip.open(root / "data/attributes/t/a.jsonl.gz", "wt") as f:
        f.writelines(json.dumps(a) + "\n" for a in attrs)
    return {f"d{i}": str(i) for i in bad}


def test_attribute_values_no_mix_can_use_are_quarantined_naming_the_key(tmp_path):
    bad = _mix_input(tmp_path)
    recipe = tmp_path / "mix.yaml"
    recipe.write_text(
        f"""
stages:
  - stage: mix
    work: {tmp_path}/work
    output: {tmp_path}/out
    target_tokens: 500
    max_repetition: 2
    throwaway: 0
    streams:
      - name: s
        documents: [{tmp_path}/data/documents/a.jsonl.gz]
        attributes: [t]
        quality: t__x__q
        tokens: t__x__tokens
"""
    )
    proc = run_cli("run", str(recipe), "--workers", "1", check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "work/stats/_ledger/mix-stats/summary.json").read_text())
    assert summary["read"] == 20 and summary["quarantined"] == {"invalid_attribute": len(bad)}
    records = [json.loads(x) for x in gzip.open(next((tmp_path / "work/stats/_ledger").rglob("quarantine/**/*.gz")))]
    assert sorted(r["line"] for r in records) == sorted(int(v) + 1 for v in bad.values())
    assert all("t__x__tokens" in r["error"] or "t__x__q" in r["error"] for r in records)
    written = {d["id"] for p in (tmp_path / "out").glob("*.jsonl.zst") for d in read_jsonl(p)}
    assert written and not written & set(bad)


def test_a_text_that_quotes_the_eos_token_stays_one_document(tmp_path):
    from dolma.tokenize.reader import TokenReader

    docs = [
        {"id": "quote", "text": "The separator <|endoftext|> appears in this text, and so does <|pad|>."},
        {"id": "long-id-" + "x" * 1_000_000, "text": "a document whose id is a megabyte long"},
        {"id": "plain", "text": "nothing special here"},
    ]
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps(d) + "\n" for d in docs))
    run_cli("tokenize", "--input", str(src), "--output", str(tmp_path / "tok"), "--workers", "1")
    reader = TokenReader(str(tmp_path / "tok"))
    tok = load_tokenizer(DEFAULT_TOKENIZER)
    found = {d.id: d.tokens for d in reader.documents()}
    assert set(found) == {d["id"] for d in docs}
    for entry in reader.manifest.files:
        assert len(reader.eos_boundaries(entry)) == entry.documents  # a trainer sees three documents
    quote = np.asarray(found["quote"][:-1])
    assert tok.decode(quote.tolist()) == docs[0]["text"]
    proc = run_cli("stats", str(tmp_path / "tok"))
    assert proc.returncode == 0


def test_a_folder_that_links_to_itself_is_listed_once(tmp_path):
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.jsonl").write_text(json.dumps({"id": "a", "text": "one"}) + "\n")
    os.symlink(".", folder / "here")
    os.symlink("..", folder / "sub" / "up")
    assert io.list_files(str(folder)) == [str(folder / "sub" / "a.jsonl")]
    os.symlink(str(tmp_path.parent), folder / "outside")
    with pytest.raises(Exception, match="outside the input"):
        io.list_files(str(folder))


@pytest.mark.parametrize("payload", ["shard", "stream_file"])
def test_a_file_whose_task_fails_is_quarantined_and_the_stage_goes_on(tmp_path, payload):
    """Every payload that names one file (a shard; a mix stream's file) gets the per-file boundary."""
    from dataclasses import dataclass

    from dolma.runtime.executors import LocalExecutor
    from dolma.runtime.run import run_stages
    from dolma.runtime.stage import Stage, Task, shard_tasks
    from mixers.stats import StreamFile

    @dataclass
    class Copy(Stage):
        """Copies each shard; on one it fails after publishing, as a library would on a file it cannot read."""

        input: str
        output: str
        name: str = "copy"

        def tasks(self):
            shards = shard_tasks(self.input)
            if payload == "shard":
                return shards
            return [Task(t.key, StreamFile("web", t.payload.url)) for t in shards]

        def run(self, task, ledger):
            with io.DocumentWriter(io.join(self.output, task.key + ".jsonl")) as w:
                for batch in io.read_documents(task.payload.url):
                    ledger.read += batch.records
                    ledger.kept(task.payload.url, batch.lines, [d.id for d in batch.docs])
                    w.write(batch.docs)
            io.write_json(io.join(self.output, task.key + ".extra.json"), {"published": True})
            if "bad" in task.key:
                raise OSError(5, "Input/output error")

    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "bad", "c"):
        (src / f"{name}.jsonl").write_text(json.dumps({"id": name, "text": f"text of {name}"}) + "\n")
    out = tmp_path / "out"
    (result,) = run_stages([Copy(str(src), str(out))], LocalExecutor(1))
    assert result.summary.read == 3 and result.summary.kept == 2
    assert result.summary.quarantined == {"unreadable_file": 1}
    assert sorted(p.name for p in out.glob("*.json*")) == ["a.extra.json", "a.jsonl", "c.extra.json", "c.jsonl"]
    (record,) = [json.loads(x) for x in gzip.open(out / "_ledger/copy/quarantine/bad.jsonl.gz")]
    assert record["reason"] == "unreadable_file" and "Input/output error" in record["error"]


def test_a_link_that_leads_nowhere_is_quarantined_not_skipped(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.jsonl").write_text(json.dumps({"id": "a", "text": "text of a"}) + "\n")
    (src / "gone.jsonl.gz").symlink_to(tmp_path / "nowhere.jsonl.gz")
    out = tmp_path / "out"
    run_cli("import", "--input", str(src), "--output", str(out), "--workers", "1")
    summary = json.loads((out / "_ledger/import/summary.json").read_text())
    assert summary["read"] == 2 and summary["kept"] == 1 and summary["quarantined"] == {"unreadable_file": 1}
    (record,) = [json.loads(x) for x in gzip.open(out / "_ledger/import/quarantine/gone.jsonl.gz")]
    assert record["file"].endswith("gone.jsonl.gz") and "No such file" in record["error"]


def test_a_pipe_among_the_inputs_is_an_error_naming_it_not_a_hang(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.jsonl").write_text(json.dumps({"id": "a", "text": "text of a"}) + "\n")
    os.mkfifo(src / "b.jsonl")
    proc = run_cli("import", "--input", str(src), "--output", str(tmp_path / "out"), check=False)
    assert proc.returncode == 2 and "b.jsonl" in proc.stderr and "not a regular file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_file_that_fails_inside_a_task_over_many_files_costs_that_file_only(tmp_path):
    """Paragraph dedup reads every file in one task: a link that leads nowhere among them is one unreadable
    record, and the files around it are marked as they would be without it."""
    docs = tmp_path / "documents"
    docs.mkdir()
    para = "A paragraph long enough to count, repeated across two of the files here."
    for name in ("a", "c"):
        (docs / f"{name}.jsonl").write_text(json.dumps({"id": name, "text": f"{para}\n\nonly in {name}"}) + "\n")
    (docs / "b.jsonl").symlink_to(tmp_path / "nowhere.jsonl")
    run_cli("dedup-paragraphs", "--documents", str(docs / "*.jsonl"), "--workers", "1")
    out = tmp_path / "attributes" / "paragraph_dedup"
    summary = json.loads((out / "_ledger/paragraph_dedup/summary.json").read_text())
    assert summary["read"] == 3 and summary["kept"] == 2 and summary["quarantined"] == {"unreadable_file": 1}
    (c,) = read_jsonl(out / "c.jsonl")
    assert c["attributes"]["paragraph_dedup__paragraph_bloom__duplicate_paragraph"][0][:2] == [0, len(para)]
    assert not (out / "b.jsonl").exists()


def test_a_file_that_fails_half_read_leaves_one_record_and_nothing_else_of_it(tmp_path):
    from dolma.runtime.ledger import ShardLedger
    from dolma.runtime.shards import file_boundary

    ledger = ShardLedger()
    ledger.read = 2
    ledger.kept("a", [1, 2], ["a1", "a2"])
    with file_boundary(ledger, "b"):
        ledger.read += 3
        ledger.kept("b", [1], ["b1"])
        ledger.dropped("b", [2], ["b2"], "too_short")
        ledger.quarantined("b", [io.Rejected(3, "invalid_json", "bad")])
        raise OSError(5, "Input/output error")
    summary = ledger.summary()
    assert summary.read == 3 and summary.kept == 2 and not summary.dropped
    assert summary.quarantined == {"unreadable_file": 1} and summary.balanced()
    ledger.write(str(tmp_path / "ledger.parquet"), str(tmp_path / "quarantine.jsonl"))
    assert [(q["file"], q["reason"]) for q in read_jsonl(tmp_path / "quarantine.jsonl")] == [("b", "unreadable_file")]
    rows = pq.read_table(tmp_path / "ledger.parquet").to_pylist()
    outcomes = [(r["file"], r["line"], r["outcome"]) for r in rows]
    assert outcomes == [("a", 1, "kept"), ("a", 2, "kept"), ("b", 0, "quarantined")]


def test_a_ledger_past_its_spill_size_writes_what_one_held_in_memory_writes(tmp_path, monkeypatch):
    """Rows and quarantined lines spilled to temporary files come back in order, less those of a file that
    failed half read (spilled before it failed, or still held), and the counts are the same."""
    from dolma.runtime import ledger as module
    from dolma.runtime.shards import file_boundary

    def record(ledger):
        ledger.read = 405 + 295  # a's lines and c's; b's are counted as it is read
        ledger.kept("a", list(range(200)), [f"a{i}" for i in range(200)])
        ledger.dropped("a", list(range(200, 400)), [f"a{i}" for i in range(200, 400)], "too_short", "3 words")
        ledger.quarantined("a", [io.Rejected(400 + i, "invalid_json", "bad", b"x" * 50) for i in range(5)])
        with file_boundary(ledger, "b"):  # fails after some of its rows and lines were spilled
            ledger.read += 300
            ledger.kept("b", list(range(150)), [f"b{i}" for i in range(150)])
            ledger.quarantined("b", [io.Rejected(151 + i, "invalid_utf8", "bad", b"y" * 50) for i in range(9)])
            raise OSError(5, "Input/output error")
        ledger.dropped("c", list(range(295)), [f"c{i}" for i in range(295)], ["short", "long"] * 147 + ["short"])
        return ledger

    outputs = []
    for rows, raw in ((1 << 16, 16 << 20), (64, 300)):
        monkeypatch.setattr(module, "SPILL_ROWS", rows)
        monkeypatch.setattr(module, "SPILL_QUARANTINE_BYTES", raw)
        ledger = record(module.ShardLedger())
        folder = tmp_path / str(rows)
        folder.mkdir()
        ledger.write(str(folder / "ledger.parquet"), str(folder / "quarantine.jsonl"))
        outputs.append((ledger.summary(), pq.read_table(folder / "ledger.parquet").to_pylist(),
                        (folder / "quarantine.jsonl").read_bytes()))  # fmt: skip
    (held, held_rows, held_lines), (spilled, spilled_rows, spilled_lines) = outputs
    assert held == spilled and held.balanced() and held.quarantined == {"invalid_json": 5, "unreadable_file": 1}
    assert spilled_rows == held_rows and len(held_rows) == 200 + 200 + 5 + 1 + 295
    assert not [r for r in held_rows if r["file"] == "b" and r["outcome"] != "quarantined"]
    assert spilled_lines == held_lines and held_lines.count(b"\n") == 6
    assert pq.ParquetFile(tmp_path / "64" / "ledger.parquet").num_row_groups > 1
