"""Tokenized shards: exact decode round trip, OLMo-core layout, size limits, shuffling, determinism."""

import gzip

import numpy as np
from conftest import SAMPLE, run_cli, sample_docs, tree_bytes, write_jsonl_gz

from dolma.core.tokenizer import DEFAULT_TOKENIZER, load_tokenizer
from dolma.runtime.executors import LocalExecutor
from dolma.runtime.run import run_stage
from dolma.tokenize.reader import TokenReader
from dolma.tokenize.stage import TokenizeStage


def test_every_document_decodes_back_to_its_text_with_the_dolma2_tokenizer(tmp_path):
    out = tmp_path / "tokens"
    run_cli(
        "tokenize", "--input", str(SAMPLE), "--output", str(out), "--workers", "2", "--max-tokens-per-file", "250000"
    )
    reader = TokenReader(str(out))
    m = reader.manifest
    assert (m.tokenizer.vocab_size, m.tokenizer.eos_token_id, m.tokenizer.dtype) == (100278, 100257, "uint32")
    texts = {
        d["id"]: d["text"]
        for name in ("python-docs", "postgresql-docs", "sympy-docs", "go-src")
        for d in sample_docs(name)
    }
    tok = load_tokenizer(DEFAULT_TOKENIZER)
    seen = 0
    for doc in reader.documents():
        assert doc.tokens[-1] == 100257 and 100257 not in doc.tokens[:-1]
        assert tok.decode(doc.tokens[:-1].tolist(), skip_special_tokens=False) == texts[doc.id]
        seen += 1
    assert seen == m.documents == len(texts)
    assert sum(m.tokens_per_source.values()) == m.tokens == sum(f.tokens for f in m.files)
    assert m.documents_per_source == {
        "golang-1.19-src": 150,
        "postgresql-doc-15": 300,
        "python-sympy-doc": 200,
        "python3.11-doc": 400,
    }
    for f in m.files:
        raw = np.fromfile(out / f.npy, dtype=np.uint32)  # no header: the file is exactly the ids
        assert raw.size == f.tokens and (f.tokens <= 250000 or f.documents == 1)
        ends = [end for _, end, *_ in reader.rows(f)]
        assert reader.eos_boundaries(f).tolist() == reader.eos_boundaries(f, chunk=1000).tolist() == ends
        assert reader.ends(f).tolist() == ends
        rows = gzip.open(out / f.csv, "rt").read().splitlines()
        start, end, doc_id, src, loc = rows[0].split(",")
        assert start == "0" and src.endswith(".jsonl.gz") and int(loc) >= 1
    assert "every file's CSV boundaries match" in run_cli("stats", str(out)).stdout


def test_documents_are_shuffled_by_seed_and_output_does_not_depend_on_workers(tmp_path):
    def tokenize(out, workers, seed):
        stage = TokenizeStage(
            input=str(SAMPLE / "postgresql-docs.jsonl.gz"), output=str(out), seed=seed, max_tokens_per_file=60000
        )
        run_stage(stage, LocalExecutor(workers))
        return [d.id for d in TokenReader(str(out)).documents()]

    a = tokenize(tmp_path / "a", 1, seed=1)
    b = tokenize(tmp_path / "b", 2, seed=1)
    c = tokenize(tmp_path / "c", 1, seed=2)
    original = [d["id"] for d in sample_docs("postgresql-docs")]
    assert a == b and tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b")
    assert a != original and c != a and sorted(a) == sorted(c) == sorted(original)
    assert len(TokenReader(str(tmp_path / "a")).manifest.files) > 3


def test_files_gathered_from_the_spill_in_small_slices_are_the_same_bytes(tmp_path, monkeypatch):
    """Tokens are gathered from the spill file a slice at a time: slices far smaller than a document (and than
    a file) must give exactly the files one slice gives, every document decoding to its text; the offsets
    (written as CSV in chunks, here far smaller than a file's) too."""
    import dolma.tokenize.stage as stage_module

    monkeypatch.setattr(stage_module, "CSV_CHUNK", 1000)

    def tokenize(out):
        stage = TokenizeStage(input=str(SAMPLE / "sympy-docs.jsonl.gz"), output=str(out), max_tokens_per_file=40000)
        run_stage(stage, LocalExecutor(1))

    tokenize(tmp_path / "whole")
    monkeypatch.setattr(stage_module, "SLICE_TOKENS", 97)
    tokenize(tmp_path / "sliced")
    assert tree_bytes(tmp_path / "whole") == tree_bytes(tmp_path / "sliced")
    texts = {d["id"]: d["text"] for d in sample_docs("sympy-docs")}
    tok = load_tokenizer(DEFAULT_TOKENIZER)
    docs = list(TokenReader(str(tmp_path / "sliced")).documents())
    assert len(docs) == len(texts) and len(TokenReader(str(tmp_path / "sliced")).manifest.files) > 2
    assert all(tok.decode(d.tokens[:-1].tolist(), skip_special_tokens=False) == texts[d.id] for d in docs)


def test_small_vocabulary_gives_uint16_and_bos_is_optional(tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2000, special_tokens=["<unk>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    docs = sample_docs("go-src", 60)
    tok.train_from_iterator([d["text"] for d in docs], trainer)
    path = tmp_path / "tok.json"
    tok.save(str(path))
    src = write_jsonl_gz(tmp_path / "docs.jsonl.gz", docs)
    out = tmp_path / "tokens"
    run_stage(
        TokenizeStage(input=str(src), output=str(out), tokenizer=str(path), eos_token="</s>", bos_token="<s>"),
        LocalExecutor(1),
    )
    reader = TokenReader(str(out))
    assert reader.manifest.tokenizer.dtype == "uint16"
    assert np.fromfile(out / reader.manifest.files[0].npy, np.uint16).size == reader.manifest.tokens
    by_id = {d["id"]: d["text"] for d in docs}
    for doc in reader.documents():
        assert doc.tokens[0] == tok.token_to_id("<s>") and doc.tokens[-1] == tok.token_to_id("</s>")
        assert tok.decode(doc.tokens[1:-1].tolist()) == by_id[doc.id]


def test_unknown_tokenizer_file_is_a_one_line_error(tmp_path):
    proc = run_cli(
        "tokenize",
        "--input",
        str(SAMPLE),
        "--output",
        str(tmp_path),
        "--tokenizer",
        str(tmp_path / "missing.json"),
        check=False,
    )
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_stats_finds_a_csv_whose_boundaries_are_not_the_eos_positions(tmp_path):
    """``dolma stats`` checks each file's CSV against its EOS tokens (read a chunk at a time): one document
    end moved in the CSV is an error naming the file, not a pass."""
    out = tmp_path / "tokens"
    run_stage(TokenizeStage(input=str(SAMPLE / "sympy-docs.jsonl.gz"), output=str(out)), LocalExecutor(1))
    assert run_cli("stats", str(out)).returncode == 0
    csv_path = next(out.glob("*.csv.gz"))
    rows = gzip.open(csv_path, "rt").read().splitlines()
    start, end, *rest = rows[1].split(",")
    rows[1] = ",".join([start, str(int(end) - 1), *rest])
    csv_path.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    proc = run_cli("stats", str(out), check=False)
    assert proc.returncode == 2 and "do not match its EOS tokens" in proc.stderr, proc.stderr
