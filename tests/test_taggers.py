"""Taggers on real text: registry, language ID, heuristic rules, classifiers, PII, statistics, decontamination."""

import json

import numpy as np
import polars as pl
import pytest
from conftest import ROOT, SHARED, read_jsonl, run_cli, sample_docs, write_jsonl_gz

from dolma.core.errors import UserError
from dolma.core.tokenizer import DEFAULT_TOKENIZER, load_tokenizer
from taggers.classifier import TrainParams, train_classifier
from taggers.registry import TAGGERS, TextBatch, build_tagger, load_builtin

FIXTURES = ROOT / "tests" / "fixtures"
load_builtin()


def tag(name_or_spec, texts):
    return build_tagger(name_or_spec).tag(TextBatch(pl.Series(texts, dtype=pl.String)))


def test_language_id_on_real_multilingual_text():
    docs = read_jsonl(FIXTURES / "multilingual.jsonl.gz")
    result = tag("ft_lang_id_v1", [d["text"] for d in docs])
    predicted = []
    for i in range(len(docs)):
        scores = {lang: spans[i][0][2] for lang, spans in result.items() if spans[i]}
        predicted.append(max(scores, key=scores.get))
    accuracy = np.mean([p == d["metadata"]["lang"] for p, d in zip(predicted, docs)])
    assert accuracy >= 0.95, list(zip(predicted, [d["metadata"]["lang"] for d in docs]))


def test_paragraph_language_spans_point_at_each_paragraph():
    de = next(d for d in read_jsonl(FIXTURES / "multilingual.jsonl.gz") if d["metadata"]["lang"] == "de")
    en = sample_docs("postgresql-docs", 1)[0]
    german, english = de["text"].split("\n")[2], en["text"].split("\n\n")[0]
    text = english + "\n\n" + german
    result = tag("ft_lang_id_paragraph_v1", [text])
    ((s, e, p),) = result["de"][0]
    assert text[s:e] == german and p > 0.9
    assert all(text[a:b] in english for a, b, _ in result["en"][0])


def test_heuristic_rules_separate_prose_from_code_and_repetition():
    prose = [d["text"] for d in sample_docs("postgresql-docs") if len(d["text"]) > 3000][:20]
    code = [d["text"] for d in sample_docs("go-src")][:20]
    gq = tag("gopher_quality_v1", prose + code)
    assert gq["pass"][:20].mean() >= 0.6 and gq["pass"][20:].mean() <= 0.2
    assert (gq["alpha_words_ratio"][20:] < gq["alpha_words_ratio"][:20].mean()).all()
    repeated = prose[0] + ("\n\n" + prose[0].split("\n\n")[0]) * 30
    rep = tag("gopher_repetition_v1", [prose[0], repeated])
    assert rep["pass"].tolist() == [1.0, 0.0] and rep["dup_para_frac"][1] > 0.3
    c4 = tag("c4_v1", [prose[0], prose[0] + "\nLorem ipsum dolor sit amet, consectetur adipiscing elit."])
    assert c4["lorem_ipsum"].tolist() == [0.0, 1.0] and c4["pass"][1] == 0.0
    removed = c4["removed_line"][0]
    lines = prose[0].split("\n")  # spans cover whole lines (consecutive removed lines merged)
    assert removed and all(
        prose[0][s:e].strip() and all(part in lines for part in prose[0][s:e].split("\n")) for s, e, _ in removed
    )
    fw = tag("fineweb_v1", prose[:3] + ["short\nlines\nonly\nhere"])
    assert fw["pass"][3] == 0.0 and fw["short_line_ratio"][3] == 1.0


def test_quality_and_domain_classifiers_train_and_report_held_out_precision_recall(tmp_path):
    quality = train_classifier(
        {"hq": [str(FIXTURES / "quality/hq.jsonl.gz")], "lq": [str(FIXTURES / "quality/lq.jsonl.gz")]},
        str(tmp_path / "quality.bin"),
        TrainParams(held_out=0.2),
    )
    by_label = {r.label: r for r in quality.labels}
    assert by_label["hq"].held_out > 10 and by_label["lq"].held_out > 10
    assert min(by_label["hq"].precision, by_label["hq"].recall, by_label["lq"].precision, by_label["lq"].recall) >= 0.9
    assert json.loads((tmp_path / "quality.bin.report.json").read_text())["accuracy"] == quality.accuracy
    # quantised by default: megabytes, not the 800 MB of fastText's default 2M-row n-gram table
    assert quality.model_bytes == (tmp_path / "quality.bin").stat().st_size < 20_000_000
    assert quality.accuracy >= quality.accuracy_unquantised - 0.05
    domain = train_classifier(
        {"law": [str(FIXTURES / "domain/law.jsonl.gz")], "medicine": [str(FIXTURES / "domain/medicine.jsonl.gz")]},
        str(tmp_path / "domain.bin"),
        TrainParams(held_out=0.2),
    )
    assert domain.accuracy >= 0.8 and all(r.recall >= 0.7 for r in domain.labels)
    probs = tag(
        {"name": "fasttext_classifier_v1", "model": str(tmp_path / "quality.bin")},
        [d["text"] for d in read_jsonl(FIXTURES / "quality/hq.jsonl.gz")[:5]],
    )
    assert set(probs) == {"hq", "lq"} and np.allclose(probs["hq"] + probs["lq"], 1, atol=1e-3)


def test_pii_spans_are_exact_and_cards_are_luhn_checked():
    base = sample_docs("postgresql-docs", 1)[0]["text"][:500]
    pii = {
        "email": "jane.doe@example.org",
        "phone": "+1 415-555-2671",
        "ip": "192.168.10.254",
        "card": "4111 1111 1111 1111",
    }
    text = (
        base
        + " Contact "
        + pii["email"]
        + " or "
        + pii["phone"]
        + " from "
        + pii["ip"]
        + " paying with "
        + pii["card"]
        + " not 4111 1111 1111 1112."
    )
    result = tag("pii_v1", [text, base])
    for kind, value in pii.items():
        ((s, e, score),) = result[kind][0]
        assert text[s:e] == value and score == 1.0
    assert all(not result[k][1] for k in result)


def test_card_numbers_and_short_ipv6_on_real_technical_text():
    """Digit runs in documentation and source code (zero-filled constants, powers of two, digits of e) are not
    cards, though one in ten passes a bare Luhn check; planted real-format cards and a compressed IPv6 are found."""
    texts = [
        d["text"]
        for name in ("code_python", "code_go", "perl_pod")
        for d in read_jsonl(SHARED / "text" / f"{name}.jsonl.gz")
    ]
    texts += [d["text"] for d in sample_docs("postgresql-docs") + sample_docs("go-src")]
    hits = sum(len(spans) for spans in tag("pii_v1", texts)["card"])
    assert hits <= 2, f"{hits} card numbers found in {len(texts):,} technical documents"
    base = sample_docs("python-docs", 1)[0]["text"][:300]
    cards = ["4111 1111 1111 1111", "5555-5555-5555-4444", "378282246310005", "6011111111111117"]
    text = (
        base
        + " Paid with "
        + ", then ".join(cards)
        + ". Host fe80::1ff:fe23:4567:890a answered; e = 2.718281828459045."
    )
    result = tag("pii_v1", [text])
    assert [text[s:e] for s, e, _ in result["card"][0]] == cards
    assert [text[s:e] for s, e, _ in result["ip"][0]] == ["fe80::1ff:fe23:4567:890a"]


def test_words_of_giant_texts_split_in_pieces_are_the_words_of_the_whole(monkeypatch):
    """Texts over ``PIECE`` characters are split into words a piece at a time (cut at whitespace) so memory
    stays bounded; the words, their order and their documents must be exactly those of the text split whole,
    a run of non-space characters longer than the search window included."""
    import taggers.words as words

    texts = [d["text"] for d in sample_docs("sympy-docs", 40)]
    giant = "\n\n".join(texts) + " " + "x" * 30_000 + " tail, end."
    batch = pl.Series([texts[0], giant, "", texts[1][:500], giant[:150_000]])
    whole = words.split_words_long(batch)
    monkeypatch.setattr(words, "PIECE", 10_000)
    monkeypatch.setattr(words, "GROUP", 25_000)
    pieces = words.split_words_bounded(batch)
    assert len(whole) > 20_000
    assert pieces.equals(whole)


def _gopher_reference(words: list[str], top: tuple, dup: tuple) -> dict[str, float]:
    """Gopher's repetition measures as its reference code computes them, on one document's words."""
    from collections import Counter

    out = {}
    for n in top:
        grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
        gram, count = Counter(grams).most_common(1)[0] if grams else ("", 0)
        out[f"top_{n}"] = len(gram) * count
    for n in dup:
        seen, chars, i = set(), 0, 0
        while i < len(words) - n + 1:
            gram = "".join(words[i : i + n])
            if gram in seen:
                chars, i = chars + len(gram), i + n
            else:
                seen.add(gram)
                i += 1
        out[f"dup_{n}"] = chars
    return out


def test_repeated_ngram_measures_equal_gophers_reference_code_for_every_k():
    """The k-gram measures look only at rows whose shorter k-gram repeats, and pick each document's top k-gram
    from its repeats: both must give exactly the reference counts, for k asked for by both measures too."""
    texts = [d["text"][:6000] for d in sample_docs("postgresql-docs", 40) + sample_docs("go-src", 20)]
    texts += ["", "one", "a b", "a b a b a b c", "x y z x y z x y z w x y z", ("to be or not " * 40).strip()]
    texts += [texts[0] + "\n\n" + texts[0][:2000] * 3]
    top, dup = (2, 3, 4, 5), (3, 5, 6, 7, 8, 9, 10)
    spec = {
        "name": "gopher_repetition_v1",
        "top_ngram_char_frac": dict.fromkeys(top, 0.2),
        "dup_ngram_char_frac": dict.fromkeys(dup, 0.2),
    }
    batch = TextBatch(pl.Series(texts, dtype=pl.String))
    result = build_tagger(spec).tag(batch)
    words = batch.words.group_by("doc", maintain_order=True).agg("w")
    by_doc = dict(zip(words["doc"].to_list(), words["w"].to_list()))
    for i, text in enumerate(texts):
        expected = _gopher_reference(by_doc.get(i, []), top, dup)
        got = {k: result[f"{k}_gram_char_frac"][i] * len(text) for k in expected}
        assert got == pytest.approx(expected), (i, got, expected)


def test_c4_sentences_take_each_lines_words_from_the_batch_split(monkeypatch):
    """C4 counts sentences over the lines its line filters keep; their words come from the batch's split (by
    whitespace chunk) and only lines that lost a citation mark are split again. The result must equal
    splitting every counted line on its own, giant texts split in pieces included."""
    import taggers.line_rules as line_rules
    import taggers.words as words

    texts = [d["text"] for d in sample_docs("python-docs", 30)]
    texts[3] = texts[3].replace(". ", ".[12] ", 5).replace("\n", " [edit]\n", 3)
    giant = "\n".join(texts) + "\nA closing line. It has two sentences [citation needed]."
    texts += ["", "   \n\n", giant]
    monkeypatch.setattr(words, "PIECE", 10_000)
    monkeypatch.setattr(words, "GROUP", 25_000)
    seen = {}
    real = line_rules._counted_words

    def spy(batch, lines, counted):
        seen["lines"], seen["counted"] = lines, counted
        return real(batch, lines, counted)

    monkeypatch.setattr(line_rules, "_counted_words", spy)
    tag("c4_v1", texts)
    line, got = real(TextBatch(pl.Series(texts, dtype=pl.String)), seen["lines"], seen["counted"])
    rows = np.flatnonzero(seen["counted"])
    assert len(rows) > 200 and (seen["lines"]["cited"] != seen["lines"]["s"]).sum() >= 5
    alone = words.split_words_long(seen["lines"]["cited"].gather(rows))
    assert line.tolist() == rows[alone["doc"].to_numpy()].tolist()
    assert got.to_list() == alone["w"].to_list()


def test_stats_count_characters_lines_and_tokens():
    docs = sample_docs("sympy-docs", 10)
    result = tag("stats_v1", [d["text"] for d in docs])
    tok = load_tokenizer(DEFAULT_TOKENIZER)
    assert result["chars"].tolist() == [len(d["text"]) for d in docs]
    assert result["words"].tolist() == [len(d["text"].split()) for d in docs]
    assert result["tokens"].tolist() == [len(tok.encode(d["text"], add_special_tokens=False).ids) for d in docs]
    assert result["lines"].tolist() == [len(d["text"].splitlines()) for d in docs]


def test_decontamination_finds_evaluation_text_inside_documents(tmp_path):
    docs = sample_docs("python-docs", 30)
    question = max(docs[3]["text"].split("\n\n"), key=len)  # the longest paragraph stands in for an eval item
    assert len(question.split()) > 20
    evals = write_jsonl_gz(tmp_path / "eval.jsonl.gz", [{"id": "q1", "text": question}])
    result = tag({"name": "decontam_v1", "eval_files": [str(evals)]}, [d["text"] for d in docs])
    assert result["overlap_fraction"][3] > 0 and sum(result["overlap_fraction"] > 0) <= 3
    (s, e, _), *_ = result["overlap"][3]
    assert docs[3]["text"][s:e].split()[:5] == question.split()[:5]


def test_evaluation_items_shorter_than_the_ngram_are_matched_whole(tmp_path, capsys):
    docs = sample_docs("python-docs", 30)
    words = docs[5]["text"].split()
    short = " ".join(words[40:48])  # eight words: no 13-gram to share
    evals = write_jsonl_gz(
        tmp_path / "eval.jsonl.gz",
        [{"id": "short", "text": short.upper()}, {"id": "tiny", "text": "the"}, {"id": "none", "text": "zz qq " * 3}],
    )
    result = tag({"name": "decontam_v1", "eval_files": [str(evals)]}, [d["text"] for d in docs])
    assert result["whole_item_matches"][5] >= 1 and result["overlap_fraction"][5] == 0
    assert sum(result["whole_item_matches"] > 0) <= 2  # "the" alone is not checked, or every document would match
    (s, e, _), *_ = result["overlap"][5]
    assert docs[5]["text"][s:e].split()[:3] == words[40:43]
    assert "2 shorter ones matched whole, 1 under 4 words not checked" in capsys.readouterr().err


def test_tag_stage_writes_aligned_attributes_and_loads_custom_taggers(tmp_path):
    module = tmp_path / "my_taggers.py"
    module.write_text(
        "import numpy as np\n"
        "from taggers.registry import Tagger, tagger\n"
        "@tagger\n"
        "class Shouting(Tagger):\n"
        "    name = 'shouting_v1'\n"
        "    description = 'share of upper-case letters'\n"
        "    def tag(self, batch):\n"
        "        t = batch.texts\n"
        "        return {'upper': (t.str.count_matches('[A-Z]') / t.str.len_chars().clip(1)).to_numpy()}\n"
    )
    docs_dir = tmp_path / "data" / "documents"
    write_jsonl_gz(docs_dir / "a.jsonl.gz", sample_docs("go-src", 25))
    assert "shouting_v1" in run_cli("list", "--tagger-modules", str(module)).stdout
    run_cli(
        "tag",
        "--documents",
        str(docs_dir / "*.gz"),
        "--experiment",
        "exp",
        "--taggers",
        "shouting_v1",
        "gopher_quality_v1",
        "pii_v1",
        "--tagger-modules",
        str(module),
        "--workers",
        "1",
    )
    attrs = read_jsonl(tmp_path / "data" / "attributes" / "exp" / "a.jsonl.gz")
    assert [a["id"] for a in attrs] == [d["id"] for d in sample_docs("go-src", 25)]
    first = attrs[0]["attributes"]
    assert "exp__shouting_v1__upper" in first and "exp__gopher_quality_v1__pass" in first
    s, e, v = first["exp__gopher_quality_v1__words"][0]
    assert s == 0 and e == len(sample_docs("go-src", 1)[0]["text"])


def test_tag_output_folder_receives_the_attributes_in_the_documents_layout(tmp_path):
    """--output moves the attribute tree (and its ledger) as a whole: each file's attributes lie at its path
    under documents/, under the output folder, and nothing is written beside the documents."""
    docs_dir = tmp_path / "data" / "documents"
    write_jsonl_gz(docs_dir / "web" / "a.jsonl.gz", sample_docs("go-src", 5))
    out = tmp_path / "elsewhere" / "stats"
    proc = run_cli("tag", "--documents", str(docs_dir / "**" / "*.gz"), "--taggers", "stats_v1", "--output", str(out))
    attrs = read_jsonl(out / "web" / "a.jsonl.gz")
    assert [a["id"] for a in attrs] == [d["id"] for d in sample_docs("go-src", 5)]
    assert not (tmp_path / "data" / "attributes").exists() and (out / "_ledger" / "tag" / "summary.json").exists()
    assert "Traceback" not in proc.stderr


def test_unknown_taggers_and_parameters_are_clear_errors():
    with pytest.raises(UserError, match="unknown tagger 'nope_v1'"):
        build_tagger("nope_v1")
    with pytest.raises(
        UserError, match=r"tagger gopher_quality_v1\.treshold: unknown key; expected one of min_doc_words"
    ):
        build_tagger({"name": "gopher_quality_v1", "treshold": 3})
    assert len(TAGGERS) >= 10


def test_carve_keeps_one_domain_and_reports_all(tmp_path):
    train_classifier(
        {"law": [str(FIXTURES / "domain/law.jsonl.gz")], "medicine": [str(FIXTURES / "domain/medicine.jsonl.gz")]},
        str(tmp_path / "d.bin"),
        TrainParams(),
    )
    law, medicine = read_jsonl(FIXTURES / "domain/law.jsonl.gz"), read_jsonl(FIXTURES / "domain/medicine.jsonl.gz")
    docs_dir = tmp_path / "pool" / "documents"
    write_jsonl_gz(docs_dir / "mixed.jsonl.gz", law[:40] + medicine[:40])
    run_cli(
        "tag",
        "--documents",
        str(docs_dir / "*.gz"),
        "--experiment",
        "domain",
        "--taggers",
        json.dumps({"name": "fasttext_classifier_v1", "model": str(tmp_path / "d.bin")}),
        "--workers",
        "1",
    )
    proc = run_cli(
        "carve",
        "--documents",
        str(docs_dir / "*.gz"),
        "--attributes",
        "domain",
        "--labels",
        "law",
        "--output",
        str(tmp_path / "law"),
        "--workers",
        "1",
    )
    assert "Top label" in proc.stdout and "medicine" in proc.stdout
    kept = {d["id"] for d in read_jsonl(tmp_path / "law" / "mixed.jsonl.zst")}
    law_ids = {d["id"] for d in law[:40]}
    assert len(kept & law_ids) >= 36 and len(kept - law_ids) <= 4
    summary = json.loads((tmp_path / "law/_ledger/carve/summary.json").read_text())
    assert summary["read"] == 80 and summary["kept"] + summary["dropped"]["not_law"] == 80


def test_each_pii_kind_has_measured_recall_and_precision_on_real_text_with_planted_values():
    """Values planted between the words of real documents are found exactly, card numbers beside a number
    of the text included; precision is a lower bound (the documents' own addresses count against it)."""
    from bench.pii import evaluate

    texts = [d["text"] for n in ("python-docs", "postgresql-docs", "sympy-docs", "go-src") for d in sample_docs(n)]
    quality = evaluate(texts, seed=3)
    assert all(q["planted"] >= 2000 and q["recall"] >= 0.99 for q in quality.values()), quality
    assert quality["card"]["precision (lower bound)"] >= 0.99 and quality["phone"]["precision (lower bound)"] >= 0.95
    assert min(q["precision (lower bound)"] for q in quality.values()) >= 0.8, quality


def test_classifier_percentiles_from_a_reference_sample_let_a_rule_keep_the_top_share(tmp_path):
    """With percentiles_from, each label's score is also written as its quantile in the reference sample's
    scores: on the reference itself, "hq_percentile >= 0.7" keeps about the top 30%, in score order."""
    train_classifier(
        {"hq": [str(FIXTURES / "quality/hq.jsonl.gz")], "lq": [str(FIXTURES / "quality/lq.jsonl.gz")]},
        str(tmp_path / "q.bin"),
        TrainParams(held_out=0.2, quantize=False),
    )
    reference = str(FIXTURES / "quality" / "*.jsonl.gz")
    texts = [d["text"] for f in sorted((FIXTURES / "quality").glob("*.jsonl.gz")) for d in read_jsonl(f)]
    spec = {"name": "fasttext_classifier_v1", "model": str(tmp_path / "q.bin"), "percentiles_from": reference}
    out = tag(spec, texts)
    score, percentile = out["hq"], out["hq_percentile"]
    assert percentile.min() > 0 and percentile.max() == 1.0
    order = np.argsort(score, kind="stable")
    assert np.all(np.diff(percentile[order]) >= 0)  # the same order as the scores
    assert abs((percentile >= 0.7).mean() - 0.3) < 0.05
    with pytest.raises(Exception, match="no document files"):
        tag({**spec, "percentiles_from": str(tmp_path / "none" / "*.gz")}, texts[:1])


def test_the_tag_report_keeps_only_the_scores_it_draws_and_reads_a_bounded_sample(tmp_path, monkeypatch):
    import gzip

    from taggers import report

    folder = tmp_path / "attributes" / "q"
    folder.mkdir(parents=True)
    for f in range(2):
        lines = []
        for i in range(10):
            attributes = {
                "q__ft_lang_id_v1__en": [[0, 5, 0.9]],
                "q__ft_lang_id_v1__de": [[0, 5, 0.05 + 0.9 * (i == 3)]],
                "q__gopher_quality_v1__pass": [[0, 5, float(i % 2)]],
                "q__stats_v1__tokens": [[0, 5, 100.0 + i]],
                "q__c4_v1__sentences": [[0, 5, 7.0]],  # drawn nowhere: not kept
                "q__pii_v1__email": [[0, 2, 1.0], [3, 4, 1.0]],  # spans, not a document score
            }
            lines.append(json.dumps({"id": f"{f}-{i}", "attributes": attributes}))
        (folder / f"{f}.jsonl.gz").write_bytes(gzip.compress("\n".join(lines).encode()))

    class Stage:
        output = str(folder)

    scores = report._attribute_scores(Stage())
    assert scores.lines == 20 and scores.languages == {"en": 18, "de": 2}
    assert set(scores.values) == {"q__stats_v1__tokens"} and list(scores.passes) == ["gopher_quality_v1"]
    assert sum(scores.passes["gopher_quality_v1"]) == 10
    (section,) = report.score_sections(Stage())
    assert section.note == "Scores of 20 documents." and len(section.images) == 3
    monkeypatch.setattr(report, "SAMPLE_LINES", 15)
    (section,) = report.score_sections(Stage())
    assert section.note == "Scores of 15 documents (a sample)."
