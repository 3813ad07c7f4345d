"""ai2-olmo-core, the trainer our token files are for, reads them with its own numpy datasets.

Its fixed-sequence-length dataset must see the files' tokens in order, and its padded dataset (one instance
per document) must give back each source document's text followed by EOS, with the boundaries our CSV rows
state.
"""

import json
import subprocess

import numpy as np
import pytest
from conftest import ROOT, SAMPLE, run_cli, sample_docs

from bench.peers import ensure_peer
from dolma.core.tokenizer import DEFAULT_TOKENIZER, load_tokenizer
from dolma.tokenize.reader import TokenReader

pytestmark = pytest.mark.peer


def test_olmo_core_numpy_datasets_read_our_token_files_back_to_the_source_documents(tmp_path):
    out = tmp_path / "tokens"
    shards = [str(SAMPLE / f"{n}.jsonl.gz") for n in ("postgresql-docs", "go-src")]
    (tmp_path / "in").mkdir()
    for i, shard in enumerate(shards):
        (tmp_path / "in" / f"{i}.jsonl.gz").write_bytes(open(shard, "rb").read())
    run_cli("tokenize", "--input", str(tmp_path / "in"), "--output", str(out), "--max-tokens-per-file", "200000")
    reader = TokenReader(str(out))
    assert len(reader.manifest.files) >= 2
    rows = [row for f in reader.manifest.files for row in reader.rows(f)]
    longest = max(end - start for start, end, *_ in rows)
    tok = load_tokenizer(DEFAULT_TOKENIZER)
    pad = tok.token_to_id("<|pad|>")
    python = ensure_peer("olmo-core") / "python"
    script = ROOT / "bench" / "peer_scripts" / "olmo_core_read.py"
    proc = subprocess.run(
        [str(python), str(script), str(out / "manifest.json"), str(tmp_path / "olmo"), str(longest), str(pad)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout)

    files = [np.fromfile(out / f.npy, dtype=reader.dtype) for f in reader.manifest.files]
    expected_fsl = np.concatenate([a[: a.size // 512 * 512] for a in files]).reshape(-1, 512)
    assert np.array_equal(np.array(seen["fsl"], dtype=np.int64), expected_fsl.astype(np.int64))

    texts = {d["id"]: d["text"] for name in ("postgresql-docs", "go-src") for d in sample_docs(name)}
    eos = reader.manifest.tokenizer.eos_token_id
    assert len(seen["padded"]) == len(rows) == len(texts)
    for ids, (start, end, doc_id, _src, _loc) in zip(seen["padded"], rows):
        assert len(ids) == end - start and ids[-1] == eos and eos not in ids[:-1]
        assert tok.decode(ids[:-1], skip_special_tokens=False) == texts[doc_id]
