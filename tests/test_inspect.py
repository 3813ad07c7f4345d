"""Looking at the data: `dolma show`, `trace` and `sample` read what a run decided, document by document."""

import gzip
import html
import json

import pytest
from conftest import run_cli, sample_docs

from dolma.core.tokenizer import DEFAULT_TOKENIZER, load_tokenizer
from dolma.tokenize.reader import TokenReader


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect")
    docs = sample_docs("python-docs", 60)
    raw = root / "raw"
    raw.mkdir()
    body = "".join(json.dumps(d) + "\n" for d in docs) + '{"id": "broken", "text": "unterminated\n'
    (raw / "docs.jsonl.gz").write_bytes(gzip.compress(body.encode()))
    recipe = root / "recipe.yaml"
    recipe.write_text(
        f"""
stages:
  - {{stage: import, input: "{raw}/*.jsonl.gz", output: "{root}/documents"}}
  - {{stage: tag, input: "{root}/documents/*.jsonl.zst", experiment: q, taggers: [c4_v1, stats_v1]}}
  - stage: mix
    work: {root}/work
    output: {root}/mix
    target_tokens: 20000
    streams:
      - name: docs
        documents: ["{root}/documents/*.jsonl.zst"]
        attributes: [q]
        tokens: q__stats_v1__tokens
        exclude: [{{attribute: q__c4_v1__sentences, op: "<", value: 20}}]
  - {{stage: tokenize, input: "{root}/mix/*.jsonl.zst", output: "{root}/tokens"}}
"""
    )
    run_cli("run", str(recipe), "--workers", "1")
    return root, recipe, docs


def test_show_prints_a_document_with_every_attribute(run):
    root, _, docs = run
    proc = run_cli("show", f"{root}/documents/docs.jsonl.zst:3", "--chars", "80")
    assert docs[2]["id"] in proc.stdout and docs[2]["text"][:40].split("\n")[0] in proc.stdout
    assert "q__c4_v1__sentences" in proc.stdout and "q__stats_v1__tokens" in proc.stdout


def test_trace_follows_an_id_through_every_stage_and_show_finds_it_by_id(run):
    root, recipe, docs = run
    proc = run_cli("trace", docs[0]["id"], "--recipe", str(recipe))
    for stage in ("import", "tag", "mix-stats", "mix-shuffle"):
        assert stage in proc.stdout
    reader = TokenReader(str(root / "tokens"))
    entry = reader.manifest.files[0]
    start, end, doc_id, *_ = reader.rows(entry)[0]
    traced = " ".join(run_cli("trace", doc_id, "--recipe", str(recipe), env={"COLUMNS": "250"}).stdout.split())
    assert f"tokens: {entry.npy} [{start}:{end}]" in traced  # the token file and range of each copy
    text = load_tokenizer(DEFAULT_TOKENIZER).decode(reader.memmap(entry)[start : end - 1].tolist())
    assert text == next(d["text"] for d in docs if d["id"] == doc_id)
    by_id = run_cli("show", docs[0]["id"], "--recipe", str(recipe), "--chars", "60")
    assert docs[0]["id"] in by_id.stdout and "q__c4_v1__sentences" in by_id.stdout
    missing = run_cli("trace", "no-such-id", "--recipe", str(recipe), check=False)
    assert missing.returncode == 2 and "no stage of the recipe read" in missing.stderr


def test_sample_prints_the_documents_a_rule_removed_the_same_every_time(run):
    root, recipe, docs = run
    args = ["sample", "--recipe", str(recipe), "--stage", "mix-stats", "--reason", "sentences", "-n", "3"]
    first, second = run_cli(*args), run_cli(*args)
    assert first.stdout == second.stdout and first.stdout.count("exclude: q__c4_v1__sentences") == 3
    quarantined = run_cli("sample", "--recipe", str(recipe), "--stage", "import", "--reason", "invalid_json")
    assert "unterminated" in quarantined.stdout
    unknown = run_cli("sample", "--recipe", str(recipe), "--stage", "imprt", check=False)
    assert unknown.returncode == 2 and "no stage named 'imprt'" in unknown.stderr


def test_the_report_shows_sampled_victims_of_each_rule_escaped(run):
    root, recipe, docs = run
    out = root / "report.html"
    run_cli("report", str(recipe), "--output", str(out))
    page = out.read_text()
    section = page[page.index("What the rules removed") : page.index("</table>", page.index("What the rules removed"))]
    assert "exclude: q__c4_v1__sentences" in section and section.count("<details>") >= 4
    assert "invalid_json" in section  # the quarantined line is listed too
    removed = [d for d in docs if d["id"] in section]
    assert removed and all(html.escape(d["text"][:60]) in section for d in removed)  # texts escaped, not markup


def test_the_report_samples_what_each_mix_stream_kept_escaped(run):
    root, recipe, docs = run
    out = root / "report.html"
    run_cli("report", str(recipe), "--output", str(out))
    page = out.read_text()
    start = page.index("What each stream kept")
    section = page[start : page.index("</table>", start)]
    kept = [d for d in docs if d["id"] in section]
    assert section.count("<details>") >= 3 and len(kept) >= 3
    assert all(html.escape(d["text"][:60]) in section for d in kept)


def test_removed_rows_are_sampled_across_ledger_files_as_from_all_their_rows_at_once(tmp_path):
    """Counting first and then reading only the picked positions of each file gives the rows a seeded pick over
    every removed row of those reasons (files in order) gives, whatever reasons and files they fall in."""
    import random

    import polars as pl

    from dolma.app import inspect

    files = []
    for f, n in enumerate([7, 0, 130, 41]):
        frame = pl.DataFrame(
            {
                "file": [f"in-{f}.jsonl"] * n,
                "line": list(range(1, n + 1)),
                "id": [f"d{f}-{i}" for i in range(n)],
                "outcome": [("kept", "dropped", "quarantined")[(i * 7 + f) % 3] for i in range(n)],
                "reason": [("", "rule a", "rule b", "invalid_json")[(i * 5 + f) % 4] for i in range(n)],
                "detail": [""] * n,
            }
        ).with_columns(pl.col("file", "outcome", "reason").cast(pl.Categorical))
        files.append(str(tmp_path / f"part-{f}.parquet"))
        frame.write_parquet(files[-1])
    every = pl.concat([pl.read_parquet(f).cast({"file": pl.String, "outcome": pl.String, "reason": pl.String})
                       for f in files]).filter(pl.col("outcome") != "kept")  # fmt: skip
    counts = inspect.removal_counts(files)
    assert sum(sum(c.values()) for c in counts) == every.height
    for reasons in ({"rule a"}, {"rule b", "invalid_json"}, {"", "rule a", "rule b", "invalid_json"}):
        for seed in (0, 1, 2):
            rows = every.filter(pl.col("reason").is_in(sorted(reasons)))
            want = rows[sorted(random.Random(seed).sample(range(rows.height), min(5, rows.height)))]
            got = inspect.sample_of(files, counts, reasons, 5, seed)
            assert got.select(want.columns).to_dicts() == want.to_dicts(), (reasons, seed)


def test_show_of_a_line_that_is_not_a_document_says_so_without_a_traceback(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"id": "a", "text": "fine"}\n\x00\x01 not json\n')
    proc = run_cli("show", f"{bad}:2", check=False)
    assert proc.returncode == 2 and f"{bad} line 2 is not a document: invalid_" in proc.stderr
    assert "Traceback" not in proc.stderr and "ValueError" not in proc.stderr
