"""Exact, MinHash and paragraph dedup on real documents with planted copies."""

import json
import random
import re

import numpy as np
import polars as pl
import pytest
from conftest import read_jsonl, run_cli, sample_docs, tree_bytes, write_jsonl_gz

from dolma.dedup.components import connected_components
from dolma.dedup.minhash import s_curve
from dolma.dedup.params import DedupParams


def plant(tmp_path):
    """Real documents plus planted copies: exact (case and punctuation changed), near (1% of words deleted) and
    far (40% of words replaced). Returns the documents folder and the planted (copy, original, kind) triples."""
    rng = random.Random(7)
    base = [d for d in sample_docs("python-docs") + sample_docs("postgresql-docs") if len(d["text"].split()) > 200][
        :160
    ]
    copies, truth = [], []
    for i, d in enumerate(base[:30]):
        words = d["text"].split(" ")
        if i < 10:
            text, kind = d["text"].upper().replace(".", " . "), "exact"
        elif i < 22:
            text, kind = " ".join(w for w in words if rng.random() > 0.01), "near"
        else:
            text, kind = " ".join(w if rng.random() > 0.4 else rng.choice(words) for w in words), "far"
        copies.append({**d, "id": d["id"] + "-copy", "text": text})
        truth.append((d["id"] + "-copy", d["id"], kind))
    docs = base + copies
    rng.shuffle(docs)
    folder = tmp_path / "documents"
    write_jsonl_gz(folder / "part-0.jsonl.gz", docs[: len(docs) // 2])
    write_jsonl_gz(folder / "part-1.jsonl.gz", docs[len(docs) // 2 :])
    return folder, truth


def removed_ids(folder, name, method):
    out = set()
    for part in ("part-0", "part-1"):
        docs = read_jsonl(folder / f"{part}.jsonl.gz")
        attrs = read_jsonl(folder.parent / "attributes" / name / f"{part}.jsonl.gz")
        assert [a["id"] for a in attrs] == [d["id"] for d in docs]
        out |= {a["id"] for a in attrs if a["attributes"][f"{name}__{method}__duplicate"][0][2] == 1.0}
    return out


def pair_hit(removed, copy, original):
    return (copy in removed) != (original in removed)  # exactly one of the pair goes


def test_exact_dedup_removes_one_of_each_normalised_copy(tmp_path):
    folder, truth = plant(tmp_path)
    run_cli(
        "dedup",
        "--documents",
        str(folder / "*.gz"),
        "--work",
        str(tmp_path / "work"),
        "--method",
        "exact",
        "--name",
        "exact",
        "--workers",
        "2",
    )
    removed = removed_ids(folder, "exact", "exact")
    assert all(pair_hit(removed, c, o) for c, o, k in truth if k == "exact")
    assert not any(c in removed or o in removed for c, o, k in truth if k != "exact")
    assert len(removed) == 10


def test_minhash_dedup_finds_near_copies_and_spares_far_ones(tmp_path):
    folder, truth = plant(tmp_path)
    proc = run_cli("dedup", "--documents", str(folder / "*.gz"), "--work", str(tmp_path / "work"), "--workers", "2")
    assert "26 bands × 11 rows" in proc.stdout and "P(candidate)" in proc.stdout
    removed = removed_ids(folder, "dedup", "minhash")
    assert all(pair_hit(removed, c, o) for c, o, k in truth if k in ("exact", "near"))
    assert not any(c in removed for c, o, k in truth if k == "far")
    summary = json.loads((tmp_path / "work/attributes/_ledger/dedup-attributes/summary.json").read_text())
    assert summary["read"] == 190 and summary["dropped"]["duplicate"] == len(removed)
    ledger = pl.concat(
        [
            pl.read_parquet(p)
            for p in (tmp_path / "work/attributes/_ledger/dedup-attributes/documents").glob("*.parquet")
        ]
    )
    dups = ledger.filter(pl.col("reason") == "duplicate")
    assert len(dups) == len(removed) and all(d.startswith("duplicate of ") for d in dups["detail"].to_list())
    # the removed copy names its original as the document it duplicates
    by_id = dict(zip(dups["id"].to_list(), dups["detail"].to_list()))
    for c, o, k in truth:
        if k == "near" and c in by_id:
            assert by_id[c] == f"duplicate of {o}"
    # the report shows the largest clusters: the keeper's text and copies removed for it, escaped
    import html

    from dolma.dedup.clusters import ClusterStage, DedupStage

    (section,) = ClusterStage(DedupStage(str(folder / "*.gz"), str(tmp_path / "work"))).report()
    header, *rows = section.table
    assert header[0] == "documents" and 0 < len(rows) <= 5
    texts = {d["id"]: d["text"] for f in folder.glob("*.gz") for d in read_jsonl(f)}
    for size, kept, copies in rows:
        assert int(size) >= 2 and kept.startswith("<details><summary>kept: ") and copies.count("removed: ") >= 1
        keeper = re.search(r"kept: ([^<]+)</summary>", kept)[1]
        assert keeper in texts and html.escape(texts[keeper][:20]) in kept
        assert all(r in removed for r in re.findall(r"removed: ([^<]+)</summary>", copies))


def test_dedup_output_does_not_depend_on_workers_or_key_ranges(tmp_path):
    """1 worker, 2 workers, and 2 workers with the pairs step split into 3 key ranges per band: the same
    duplicates, clusters and keepers."""
    folder, _ = plant(tmp_path)
    for workers, parts in (("1", "1"), ("2", "1"), ("2", "3")):
        run_cli(
            "dedup",
            "--documents",
            str(folder / "*.gz"),
            "--work",
            str(tmp_path / f"w{workers}{parts}"),
            "--name",
            f"d{workers}{parts}",
            "--workers",
            workers,
            "--pair-partitions",
            parts,
        )
    assert len(list((tmp_path / "w23" / "edges").glob("band=000-keys=*.parquet"))) == 3
    for part in ("part-0", "part-1"):
        one = read_jsonl(tmp_path / "attributes" / "d11" / f"{part}.jsonl.gz")
        assert sum(a["attributes"]["d11__minhash__duplicate"][0][2] for a in one) > 0
        for other in ("d21", "d23"):
            two = read_jsonl(tmp_path / "attributes" / other / f"{part}.jsonl.gz")
            assert json.dumps(one).replace("d11__", f"{other}__") == json.dumps(two)
    assert tree_bytes(tmp_path / "w11" / "bands") == tree_bytes(tmp_path / "w21" / "bands")


def test_s_curve_and_presets():
    fineweb = DedupParams(input="x/documents/*.gz", work="w", preset="fineweb")
    assert (fineweb.bands, fineweb.rows, fineweb.ngram, fineweb.jaccard_threshold) == (14, 8, 5, None)
    curve = dict(s_curve(26, 11))
    assert curve[0.5] < 0.02 and curve[0.9] > 0.99 and 0.85 < curve[0.8] < 0.95
    # bands x rows for a requested threshold: datasketch's optimum within the preset's 286 hashes
    tuned = DedupParams(input="x/documents/*.gz", work="w", lsh_threshold=0.8)
    assert (tuned.bands, tuned.rows) == (17, 16) and tuned.bands * tuned.rows <= 286
    steep = dict(s_curve(tuned.bands, tuned.rows))
    assert steep[0.7] < curve[0.7] and 0.3 < steep[0.8] < 0.7 and steep[0.9] > 0.95  # steepest around 0.8
    assert (DedupParams(input="x/documents/*.gz", work="w", lsh_threshold=0.8, bands=5).rows) == 11


def test_connected_components_merge_chains():
    a = np.array([1, 2, 10, 30], np.uint64)
    b = np.array([2, 3, 11, 10], np.uint64)
    nodes, labels = connected_components(a, b)
    assert dict(zip(nodes.tolist(), labels.tolist())) == {1: 1, 2: 1, 3: 1, 10: 10, 11: 10, 30: 10}


def test_paragraph_dedup_marks_repeated_paragraphs_and_saves_the_filter(tmp_path):
    docs = sample_docs("postgresql-docs", 60)
    paragraph = max(docs[0]["text"].split("\n"), key=len)
    assert len(paragraph.split()) >= 13
    docs[40] = {**docs[40], "text": docs[40]["text"] + "\n" + paragraph}
    folder = tmp_path / "a" / "documents"
    write_jsonl_gz(folder / "x.jsonl.gz", docs)
    run_cli(
        "dedup-paragraphs",
        "--documents",
        str(folder / "*.gz"),
        "--expected-ngrams",
        "200000",
        "--bloom-out",
        str(tmp_path / "bloom.bin"),
    )
    attrs = read_jsonl(tmp_path / "a" / "attributes" / "paragraph_dedup" / "x.jsonl.gz")
    spans = attrs[40]["attributes"]["paragraph_dedup__paragraph_bloom__duplicate_paragraph"]
    text = docs[40]["text"]
    assert any(text[s:e] == paragraph for s, e, _ in spans)
    first = attrs[0]["attributes"].get("paragraph_dedup__paragraph_bloom__duplicate_paragraph", [])
    assert not any(docs[0]["text"][s:e] == paragraph for s, e, _ in first)  # its first occurrence is not marked
    # a second dataset checked read-only against the saved filter: the copied paragraph is found there too
    other = tmp_path / "b" / "documents"
    write_jsonl_gz(
        other / "y.jsonl.gz", [{"id": "new", "text": "A fresh line nobody wrote before today.\n" + paragraph}]
    )
    run_cli(
        "dedup-paragraphs",
        "--documents",
        str(other / "*.gz"),
        "--bloom-in",
        str(tmp_path / "bloom.bin"),
        "--read-only",
        "--name",
        "against_a",
    )
    (line,) = read_jsonl(tmp_path / "b" / "attributes" / "against_a" / "y.jsonl.gz")
    ((s, e, _),) = line["attributes"]["against_a__paragraph_bloom__duplicate_paragraph"]
    assert (
        "fresh line nobody" not in line["id"]
        and s > 0
        and e == len("A fresh line nobody wrote before today.\n" + paragraph)
    )


def test_paragraph_dedup_leaves_short_lines_alone_and_finds_repeated_headers(tmp_path):
    """In source code, lines such as `}` or `return nil` recur in every file and are no duplicated content;
    the licence header repeated at the top of every file is."""
    docs = sample_docs("go-src")
    folder = tmp_path / "documents"
    write_jsonl_gz(folder / "go.jsonl.gz", docs)
    run_cli("dedup-paragraphs", "--documents", str(folder / "*.gz"), "--expected-ngrams", "2000000")
    attrs = read_jsonl(tmp_path / "attributes" / "paragraph_dedup" / "go.jsonl.gz")
    key = "paragraph_dedup__paragraph_bloom__duplicate_paragraph"
    marked = [d["text"][s:e] for d, a in zip(docs, attrs) for s, e, _ in a["attributes"].get(key, [])]
    assert marked and all(len(re.findall(r"\w+", m)) >= 5 for m in marked)  # words as the filter counts them
    assert sum("governed by a BSD-style" in m for m in marked) >= len(docs) // 2


def test_bad_dedup_parameters_are_user_errors(tmp_path):
    proc = run_cli("dedup", "--documents", str(tmp_path / "none/*.gz"), "--work", str(tmp_path), check=False)
    assert proc.returncode == 2 and "no document files" in proc.stderr
    with pytest.raises(Exception, match="unknown keeper rule"):
        DedupParams(input="x", work="w", keeper=["biggest"])


def test_attribute_files_stay_aligned_around_a_broken_line(tmp_path):
    """A line the dedup steps cannot read gets an empty attribute line in its own place, so every later
    document still meets its own attributes (document and paragraph dedup)."""
    import gzip

    from dolma import io

    docs = sample_docs("python-docs", 30)
    folder = tmp_path / "documents"
    lines = [json.dumps(d).encode() for d in docs]
    lines[5] = b'{"id": "broken", "text": '  # cut short: not JSON
    folder.mkdir()
    (folder / "x.jsonl.gz").write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    run_cli("dedup", "--documents", str(folder / "*.gz"), "--work", str(tmp_path / "w"), "--name", "d")
    run_cli("dedup-paragraphs", "--documents", str(folder / "*.gz"), "--expected-ngrams", "100000")
    for name in ("d", "paragraph_dedup"):
        attrs = read_jsonl(tmp_path / "attributes" / name / "x.jsonl.gz")
        assert len(attrs) == 30 and attrs[5] == {"id": "", "attributes": {}}
        batches = list(
            io.read_aligned(str(folder / "x.jsonl.gz"), {name: io.attributes_url(str(folder / "x.jsonl.gz"), name)})
        )
        assert sum(len(b.docs) for b in batches) == 29
        assert [r.reason for b in batches for r in b.rejected] == ["invalid_json"]


@pytest.mark.parametrize("preset", ["dolma3", "fineweb"])
def test_the_clean_original_is_kept_over_a_copy_padded_with_boilerplate(tmp_path, preset):
    """The copy a site padded with navigation and a copyright footer is longer: "longest" kept it and removed
    the clean text. The keeper is the member whose n-grams the others hold, so the original stays."""
    base = [d for d in sample_docs("postgresql-docs") if 300 < len(d["text"].split()) < 3000][:40]
    nav = "Home | Documentation | Downloads | Community | Support | About us | Contact | Search this site\n\n"
    footer = "\n\nCopyright © 1996-2024 The Example Group. All rights reserved. Privacy policy. Terms of use."
    padded = [{**d, "id": d["id"] + "-padded", "text": nav + d["text"] + footer} for d in base[:20]]
    folder = tmp_path / "documents"
    write_jsonl_gz(folder / "part-0.jsonl.gz", padded[:10] + base[:20])
    write_jsonl_gz(folder / "part-1.jsonl.gz", base[20:] + padded[10:])
    work = str(tmp_path / "work")
    run_cli("dedup", "--documents", str(folder / "*.gz"), "--work", work, "--preset", preset, "--workers", "2")
    removed = removed_ids(folder, "dedup", "minhash")
    assert {d["id"] for d in padded} <= removed
    assert not removed & {d["id"] for d in base}


def test_an_exact_twin_or_a_dissimilar_candidate_does_not_make_a_padded_copy_the_keeper():
    """The shape met on the shared near-duplicate corpus: an original O, a padded copy P served twice (P2 holds
    the same n-grams), an edited copy E, and, without verification (FineWeb preset), an unverified candidate
    edge E-P at Jaccard 0.5. Summed over every edge, P's twin and its dissimilar candidate lifted P above O and
    the padded copy was kept; only near-duplicate edges between different sets count, so O is kept."""
    from dolma.dedup.clusters import _contained
    from dolma.dedup.keepers import pick_keepers

    orig, pad, twin, edit = 1, 2, 3, 4
    edges = pl.DataFrame(
        {
            "a": [pad, pad, edit, edit],
            "b": [orig, twin, orig, pad],
            "ca": [0.963, 1.0, 0.887, 0.62],
            "cb": [1.0, 1.0, 0.891, 0.68],
        },
        schema={"a": pl.UInt64, "b": pl.UInt64, "ca": pl.Float32, "cb": pl.Float32},
    )
    contained = _contained(edges, 0.8)
    members = (
        pl.DataFrame(
            {
                "doc": [orig, pad, twin, edit],
                "component": [1] * 4,
                "id": ["o", "p", "p2", "e"],
                "created": ["2024"] * 4,
                "length": [1258, 1315, 1315, 1252],
            },
            schema_overrides={"doc": pl.UInt64, "component": pl.UInt64},
        )
        .join(contained, on="doc", how="left")
        .with_columns(pl.col("contained").fill_null(0.0))
    )
    keepers = pick_keepers(members, ["contained", "newest", "longest", "lowest_id"])
    assert set(keepers["keeper_id"]) == {"o"}
    assert _contained(edges, None).filter(pl.col("doc") == pad)["contained"].item() > 0.963  # the dissimilar edge


def test_a_killed_runs_temporary_file_beside_a_steps_folder_is_swept_on_rerun(tmp_path):
    """Dedup's pairs step writes its edges in the work folder beside its own: a temporary file a killed run
    left there is removed by the next run, so reruns give the same tree."""
    import socket
    import subprocess
    import sys

    folder, _ = plant(tmp_path)
    work = tmp_path / "work"
    args = ["dedup", "--documents", str(folder / "*.gz"), "--work", str(work), "--workers", "1"]
    run_cli(*args)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = (
        work
        / "edges"
        / f".band=002.parquet.{socket.gethostname().replace('.', '_')}-{dead.stdout.strip()}-0a1b2c3d.tmp"
    )
    leftover.write_bytes(b"half a file")
    run_cli(*args)
    assert not leftover.exists()


def edit_chain(doc: dict, versions: int) -> list[dict]:
    """Versions of a real document, each with 1% more of its words replaced (scattered): neighbours in the
    chain are alike (Jaccard ~0.9), its ends are not (~0.3)."""
    words = doc["text"].split()
    out = []
    for k in range(versions):
        edited = [f"edited{i}" if i * 37 % 100 < k else w for i, w in enumerate(words)]
        out.append({**doc, "id": f"{doc['id']}-v{k}", "text": " ".join(edited)})
    return out


@pytest.mark.parametrize("preset", ["dolma3", "fineweb"])
def test_a_removed_document_is_like_its_keeper_even_at_the_end_of_a_chain(tmp_path, preset):
    """Connected components join a chain of edits end to end; a document is removed only for a keeper it is
    at least 0.8 like, so no chain end is removed for a keeper at the other end, and nearly every link still
    has one of its two documents removed."""
    from bench.dedup import evaluate

    base = [d for d in sample_docs("postgresql-docs") if 800 < len(d["text"].split()) < 3000][:3]
    chains = [v for d in base for v in edit_chain(d, 10)]
    folder = tmp_path / "documents"
    write_jsonl_gz(folder / "part-0.jsonl.gz", chains[::2] + sample_docs("go-src", 20))
    write_jsonl_gz(folder / "part-1.jsonl.gz", chains[1::2])
    truth = tmp_path / "truth.jsonl"
    links = [(c, chains[i + 1]) for i, c in enumerate(chains[:-1]) if c["id"].split("-v")[0] in chains[i + 1]["id"]]
    truth.write_text("".join(json.dumps({"copy": b["id"], "original": a["id"], "kind": "edit", "edit_rate": 0.01})
                             + "\n" for a, b in links))  # fmt: skip
    work = tmp_path / "work"
    run_cli("dedup", "--documents", str(folder / "*.gz"), "--work", str(work), "--preset", preset, "--workers", "2")
    quality = evaluate(str(folder), str(work), str(truth), 0.8)
    assert quality["planted pairs at or above threshold"] == len(links) == 27
    assert quality["precision (Jaccard with keeper)"] == 1.0 and quality["removed"] >= 9
    assert quality["recall (one of the pair removed)"] >= 0.9  # a link between two new keepers stays whole
    said = run_cli("dedup", "--documents", str(folder / "*.gz"), "--work", str(work), "--preset", preset,
                   "--keeper-jaccard", "off", "--workers", "2")  # fmt: skip
    unchecked = evaluate(str(folder), str(work), str(truth), 0.8)
    assert unchecked["precision (Jaccard with keeper)"] < 0.8, said.stdout  # the chain, without the check


def test_signatures_are_the_minimum_of_each_permutation_over_each_texts_shingles():
    """Shingles and signatures, vectorised over a batch, against the definition computed text by text: real texts
    mixed with empty ones, one-word ones and texts shorter than the n-gram (one shingle, the rest of it zeros)."""
    from dolma.dedup.minhash import WORD, minhash, shingle_hashes

    texts = [d["text"] for d in sample_docs("python-docs", 40)]
    texts[3:3] = ["", "Word", "two Words", "a b 9 d", "!!! ...", "x y z w v u"]
    n, n_perm = 5, 37
    doc, keys = shingle_hashes(pl.Series(texts), n)
    sig = minhash(doc, keys, len(texts), n_perm, seed=3)
    rng = np.random.default_rng(3)
    a = rng.integers(0, 2**32, n_perm, dtype=np.uint64).astype(np.uint32) | np.uint32(1)
    b = rng.integers(0, 2**32, n_perm, dtype=np.uint64).astype(np.uint32)
    for i, text in enumerate(texts):
        words = pl.Series([text]).str.to_lowercase().str.replace_all(r"\d", "0").str.extract_all(WORD)[0]
        h = [int(x) for x in pl.Series(words, dtype=pl.String).hash(seed=7)]
        starts = range(max(len(h) - n + 1, 1)) if h else []
        expected = []
        for s in starts:
            key = 0
            for j in range(n):
                key = (key * 0x100000001B3 + (h[s + j] if s + j < len(h) else 0)) % 2**64
            expected.append(key)
        assert keys[doc == i].tolist() == expected, text[:40]
        folded = np.array([(k ^ (k >> 32)) & 0xFFFFFFFF for k in expected], np.uint64)
        if len(folded):
            want = ((folded[:, None] * a[None, :] + b[None, :]) % 2**32).min(axis=0)
            assert sig[i].tolist() == want.tolist(), text[:40]
        else:
            assert (sig[i] == np.iinfo(np.uint32).max).all()
