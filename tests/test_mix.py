"""The mixer: rules, span edits, value-weighted repetition to an exact target, deterministic output."""

import collections
import json
import time

import msgspec
import numpy as np
import polars as pl
import pytest
from conftest import ROOT, SHARED, read_jsonl, run_cli, sample_docs, tree_bytes, write_jsonl_gz

from dolma.core.errors import UserError
from mixers import rules
from mixers.offline import plan_from_description
from mixers.plan import Plan
from mixers.rules import native, parse


def test_allenai_jsonpath_and_jq_filters_and_native_rules():
    df = pl.DataFrame({"a__b__c": [0.2, 0.7, None], "x__y__z": [1.0, None, 0.0]})

    def run(rule):
        return df.select(rule.expr).to_series().to_list()

    assert run(parse("$.attributes[?(@.a__b__c[0][2] >= 0.5)]")) == [False, True, False]
    assert run(parse("$.attributes[?(@.a__b__c && @.a__b__c[0][2] < 0.5 || @.x__y__z[0][2] == 0)]")) == [
        True,
        False,
        True,
    ]
    assert run(parse(".attributes.a__b__c[0][2] >= 0.5 and .attributes.x__y__z[0][2] > 0")) == [False, False, False]
    assert run(parse("(.attributes.a__b__c // [[0,0,1.0]])[0][2] > 0.5")) == [False, True, True]
    assert run(parse("$.attributes[?(!(@.a__b__c[0][2] > 0.5))]")) == [True, False, True]
    assert run(native("a__b__c", ">=", 0.5)) == [False, True, None]  # null: the rule's missing policy decides
    with pytest.raises(UserError, match="is not valid JSONPath"):
        parse("$.attributes[?(@.a__b__c[0][2] >= )]")
    with pytest.raises(UserError, match="missing must be"):
        native("a", ">", 1, missing="maybe")


def build_pool(tmp_path):
    root = tmp_path / "pool"
    prose = sample_docs("python-docs") + sample_docs("postgresql-docs")
    prose[5] = {**prose[5], "text": prose[5]["text"] + "\nWrite to jane.doe@example.org for details."}
    write_jsonl_gz(root / "documents" / "prose.jsonl.gz", prose)
    write_jsonl_gz(root / "documents" / "code.jsonl.gz", sample_docs("go-src"))
    run_cli(
        "tag",
        "--documents",
        str(root / "documents" / "*.gz"),
        "--experiment",
        "q",
        "--taggers",
        "stats_v1",
        "fineweb_v1",
        "pii_v1",
        "--workers",
        "2",
    )
    return root


def mix_recipe(tmp_path, root, name, target):
    recipe = {
        "stages": [
            {
                "stage": "mix",
                "work": str(tmp_path / name / "work"),
                "output": str(tmp_path / name / "mix"),
                "target_tokens": target,
                "max_repetition": 3,
                "partition_tokens": 600_000,
                "max_tokens_per_file": 200_000,
                "streams": [
                    {
                        "name": "prose",
                        "documents": [str(root / "documents" / "prose.jsonl.gz")],
                        "attributes": ["q"],
                        "share": 0.8,
                        "quality": "q__fineweb_v1__line_punct_ratio",
                        "tokens": "q__stats_v1__tokens",
                        "exclude": [{"attribute": "q__stats_v1__tokens", "op": "<", "value": 30}],
                        "spans": [{"attribute": "q__pii_v1__email", "replacement": "<EMAIL>"}],
                    },
                    {
                        "name": "code",
                        "documents": [str(root / "documents" / "code.jsonl.gz")],
                        "attributes": ["q"],
                        "share": 0.2,
                        "tokens": "q__stats_v1__tokens",
                        "include": ["$.attributes[?(@.q__stats_v1__tokens[0][2] >= 100)]"],
                    },
                ],
            }
        ]
    }
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(recipe))  # JSON is YAML
    return path


def test_mix_hits_the_target_and_shares_with_capped_spread_copies(tmp_path):
    root = build_pool(tmp_path)
    target = 1_600_000
    run_cli("run", str(mix_recipe(tmp_path, root, "one", target)), "--workers", "1")
    plan = msgspec.json.decode((tmp_path / "one/work/plan.json").read_bytes(), type=Plan)
    assert abs(plan.planned_tokens - target) / target < 0.005
    docs = [d for f in sorted((tmp_path / "one/mix").glob("*.jsonl.zst")) for d in read_jsonl(f)]
    stats = pl.concat(
        [pl.read_parquet(p) for p in (tmp_path / "one/work/stats").rglob("*.parquet") if "_ledger" not in str(p)]
    )
    tokens = dict(zip(stats["id"].to_list(), stats["tokens"].to_list()))  # counted after span edits
    base = [d["id"].split("#")[0] for d in docs]
    assert sum(tokens[b] for b in base) == plan.planned_tokens  # the plan is what gets written, exactly
    by_source = collections.Counter()
    for b, d in zip(base, docs):
        by_source[d["source"] if d["source"] == "golang-1.19-src" else "prose"] += tokens[b]
    share = by_source["golang-1.19-src"] / sum(by_source.values())
    assert abs(share - 0.2) < 0.005
    counts = collections.Counter(base)
    assert max(counts.values()) <= 3 and max(counts.values()) >= 2  # value-weighted: repeated, never over the cap
    assert all(base[i] != base[i + 1] for i in range(len(base) - 1))  # copies are never adjacent
    assert any("<EMAIL>" in d["text"] for d in docs) and not any("jane.doe@example.org" in d["text"] for d in docs)
    sources = [d["source"] for d in docs[:200]]
    assert len(set(sources)) == 3  # sources are interleaved
    summary = json.loads((tmp_path / "one/work/stats/_ledger/mix-stats/summary.json").read_text())
    assert summary["dropped"] and summary["read"] == summary["kept"] + sum(summary["dropped"].values())


def test_mix_output_is_identical_with_one_and_two_workers(tmp_path):
    root = build_pool(tmp_path)
    run_cli("run", str(mix_recipe(tmp_path, root, "w1", 900_000)), "--workers", "1")
    run_cli("run", str(mix_recipe(tmp_path, root, "w2", 900_000)), "--workers", "2")
    one = {k: v for k, v in tree_bytes(tmp_path / "w1" / "mix").items() if not k.startswith("_")}
    two = {k: v for k, v in tree_bytes(tmp_path / "w2" / "mix").items() if not k.startswith("_")}
    assert one and one == two


def test_an_unreachable_target_is_a_clear_error(tmp_path):
    root = build_pool(tmp_path)
    proc = run_cli("run", str(mix_recipe(tmp_path, root, "big", 50_000_000)), check=False)
    assert proc.returncode == 2 and "cannot reach" in proc.stderr


def test_planning_6T_from_a_300T_pool_description_takes_seconds():
    started = time.perf_counter()
    plan = plan_from_description(str(ROOT / "configs" / "mix" / "dolma3-300T-to-6T.yaml"))
    assert time.perf_counter() - started < 60
    assert abs(plan.planned_tokens - 6e12) / 6e12 < 1e-6
    shares = collections.Counter()
    for g in plan.groups:
        shares[g.source] += g.planned_tokens / plan.planned_tokens
    assert abs(shares["common_crawl"] - 0.761 / 1.0005) < 1e-4 and abs(shares["finemath"] - 0.0256 / 1.0005) < 1e-4
    assert all(max(g.factors) <= 7 for g in plan.groups)
    proc = run_cli("mix-plan", str(ROOT / "configs" / "mix" / "dolma3-300T-to-6T.yaml"))
    assert "6,000,000,000,000" in proc.stdout


def test_a_source_without_quality_buckets_is_not_thrown_away_planned_either_way():
    """From a description (no bucket_tokens) and from documents (a stream without a quality attribute) the
    same rule holds: no quality signal, nothing thrown away, one factor for every document."""
    import numpy as np

    from mixers.config import MixParams, Stream
    from mixers.plan import plan_from_histograms

    plan = plan_from_description(str(ROOT / "configs" / "mix" / "dolma3-300T-to-6T.yaml"))
    flat = {g.source: g.factors for g in plan.groups if g.source in ("wikipedia", "arxiv", "stack_edu", "finemath")}
    assert len(flat) == 4 and all(min(f) > 0 and max(f) - min(f) < 1e-9 for f in flat.values())
    graded = [g for g in plan.groups if g.source == "common_crawl"]
    assert all(g.factors[0] == 0 for g in graded)  # web text has buckets: its bottom 40% is left out
    tokens = {("wiki", ""): np.full(20, 1e9), ("web", ""): np.linspace(5e10, 1e10, 20)}
    edges = list(np.linspace(0, 1, 21))
    streams = [
        Stream("wiki", ["w/documents/*.gz"], share=0.3),
        Stream("web", ["c/documents/*.gz"], attributes=["q"], share=0.7, quality="q__x__y"),
    ]
    params = MixParams(streams=streams, work="w", output="o", target_tokens=10**11)
    from_docs = plan_from_histograms(params, {k: (edges, v) for k, v in tokens.items()})
    by_docs = {g.source: g.factors for g in from_docs.groups}
    assert min(by_docs["wiki"]) > 0 and by_docs["web"][0] == 0


def test_an_attribute_file_out_of_step_is_an_error_naming_file_and_line(tmp_path):
    root = build_pool(tmp_path)
    attr = root / "attributes" / "q" / "code.jsonl.gz"
    lines = read_jsonl(attr)
    lines[3]["id"] = "someone-else"
    write_jsonl_gz(attr, lines)
    proc = run_cli("run", str(mix_recipe(tmp_path, root, "bad", 900_000)), check=False)
    assert proc.returncode == 2 and "code.jsonl.gz line 4" in proc.stderr and "someone-else" in proc.stderr


def test_document_lines_broken_or_missing_after_tagging_are_quarantined_not_copied(tmp_path):
    """The code stream's stats come from its attributes alone: a document line broken after tagging, and lines
    the document file lost, are caught when the documents are read, quarantined, and never written."""
    import gzip

    root = build_pool(tmp_path)
    path = root / "documents" / "code.jsonl.gz"
    lines = gzip.decompress(path.read_bytes()).splitlines()
    broken = json.loads(lines[2])["id"]
    lost = [json.loads(line)["id"] for line in lines[-2:]]
    lines[2] = lines[2][: len(lines[2]) // 2]  # a line cut short: not JSON any more
    path.write_bytes(gzip.compress(b"\n".join(lines[:-2]) + b"\n"))
    recipe = mix_recipe(tmp_path, root, "q", 900_000)
    config = json.loads(recipe.read_text())
    config["stages"][0]["streams"][1]["misaligned"] = "quarantine"
    recipe.write_text(json.dumps(config))
    run_cli("run", str(recipe), "--workers", "1")
    stats = pl.read_parquet(tmp_path / "q/work/stats/code/code.parquet")
    planned_lost = stats.filter(pl.col("id").is_in(lost) & pl.col("drop_reason").is_null()).height
    summary = json.loads((tmp_path / "q/work/shuffle/_ledger/mix-shuffle/summary.json").read_text())
    assert summary["quarantined"].get("invalid_json") == 1
    assert summary["quarantined"].get("documents_missing", 0) == planned_lost > 0
    assert summary["read"] == summary["kept"] + sum(summary["dropped"].values()) + sum(summary["quarantined"].values())
    written = {d["id"].split("#")[0] for f in (tmp_path / "q/mix").glob("*.jsonl.zst") for d in read_jsonl(f)}
    assert written and broken not in written and not written & set(lost)


def test_copies_of_one_document_are_spread_apart():
    from mixers.write import spread

    rng = np.random.default_rng(0)
    origin = np.sort(rng.integers(0, 40, 400))  # sorted: every copy next to its siblings
    order = spread(origin)
    assert sorted(order) == list(range(400))
    assert not (origin[order][1:] == origin[order][:-1]).any()
    assert sorted(spread(np.zeros(5, np.uint64))) == list(range(5))  # nothing to spread: still every row once


@pytest.mark.skipif(not SHARED.exists(), reason="needs ../shared/corpora")
def test_the_dolma3_mix_recipe_on_a_real_tagged_pool_hits_its_target_and_shares(tmp_path):
    """configs/dolma3-mix.yaml unchanged, on a pool of real documents tagged the way its header says (token
    counts, a trained quality classifier, a trained topic classifier, MinHash dedup): the written mix, counted
    with the tagger's token counts, is within 0.1% of the target, each source within 0.5 points of its share,
    no document over the cap of 7 and no duplicate written."""
    import shutil

    pool = tmp_path / "pool"
    sources = {
        "common_crawl": ["docs/shard-00000", "docs/shard-00001", "text/web_main_text", "text/web_news_articles_aeb"],
        "science_pdfs": ["text/science_docs_en"],
        "stack_edu": ["text/code_python"],
        "finemath": ["text/sciq_support"],
        "arxiv": ["text/tech_docs_en"],
        "wikipedia": ["text/wikipedia_boolq_passages"],
    }
    for source, files in sources.items():
        (pool / source / "documents").mkdir(parents=True)
        for f in files:
            shutil.copy(SHARED / f"{f}.jsonl.gz", pool / source / "documents" / f"{f.split('/')[1]}.jsonl.gz")
    everything = str(pool / "*" / "documents" / "*.gz")
    common_crawl = str(pool / "common_crawl" / "documents" / "*.gz")
    run_cli("tag", "--documents", everything, "--experiment", "tags", "--taggers", "stats_v1", "--workers", "2")
    quality, topic = tmp_path / "quality.bin", tmp_path / "topic.bin"
    run_cli("train-classifier", "--model", str(quality), "--label", f"hq={SHARED}/quality/hq.jsonl.gz",
            "--label", f"lq={SHARED}/quality/lq.jsonl.gz")  # fmt: skip
    run_cli("train-classifier", "--model", str(topic), "--label", f"legal={SHARED}/domain/legal/*.jsonl.gz",
            "--label", f"medical={SHARED}/domain/medical/*.jsonl.gz",
            "--label", f"general={SHARED}/domain/mmlu_all_subjects.jsonl.gz")  # fmt: skip
    for glob, name, model in ((everything, "quality", quality), (common_crawl, "topic", topic)):
        tagger = json.dumps({"name": "fasttext_classifier_v1", "model": str(model)})
        run_cli("tag", "--documents", glob, "--experiment", name, "--taggers", tagger, "--workers", "2")
    run_cli("dedup", "--documents", common_crawl, "--work", str(tmp_path / "dedup"), "--name", "dedup",
            "--workers", "2")  # fmt: skip
    target = 20_000_000
    run_cli("run", str(ROOT / "configs" / "dolma3-mix.yaml"), "--workers", "2",
            env={"POOL": str(pool), "TARGET": str(target)})  # fmt: skip

    tokens, duplicate = {}, set()
    for source in sources:
        for f in (pool / source / "attributes" / "tags").glob("*.jsonl.gz"):
            for a in read_jsonl(f):
                counted = (source, a["attributes"]["tags__stats_v1__tokens"][0][2])
                assert tokens.setdefault(a["id"], counted) == counted  # a repeated id is a repeated document
    for f in (pool / "common_crawl" / "attributes" / "dedup").glob("*.jsonl.gz"):
        duplicate |= {a["id"] for a in read_jsonl(f) if a["attributes"]["dedup__minhash__duplicate"][0][2] == 1}
    assert len(duplicate) > 100  # the pool has real duplicates for the exclude rule to remove
    written = collections.Counter(
        d["id"].split("#")[0]
        for f in (pool / "mix" / "dolma3" / "documents").glob("*.jsonl.zst")
        for d in read_jsonl(f)
    )
    per_source = collections.Counter()
    for doc_id, n in written.items():
        per_source[tokens[doc_id][0]] += n * tokens[doc_id][1]
    total = sum(per_source.values())
    assert abs(total - target) / target < 0.001, total
    shares = {"common_crawl": 0.761, "science_pdfs": 0.136, "stack_edu": 0.0689, "finemath": 0.0256,
              "arxiv": 0.0086, "wikipedia": 0.0004}  # fmt: skip
    for source, share in shares.items():
        assert abs(per_source[source] / total - share / 1.0005) < 0.005, (source, per_source[source] / total)
    assert max(written.values()) <= 7 and max(written.values()) > 1
    assert not duplicate & set(written)


def test_topic_is_the_best_scoring_key_of_the_prefix_per_line():
    from mixers.stats import _topics

    columns = {
        "t__topic__code": [[[0, 9, 0.7]], None, [[0, 9, 0.2]], None],
        "t__topic__math": [[[0, 9, 0.1]], [[0, 9, 0.3]], [[0, 9, 0.2]], None],
        "t__quality__score": [[[0, 9, 0.99]]] * 4,  # not a topic: other prefix
    }
    assert _topics(columns, "t__topic__", 4) == ["code", "math", "code", ""]  # a tie: the first key in order
    assert _topics(columns, None, 4) == [""] * 4


def test_jq_programs_outside_the_vectorised_subset_run_with_the_jq_library():
    """Any jq program over named attributes is accepted: other indexes, length, any/all, arithmetic, variables;
    it sees every span of the keys it names, and matches when every output is true in allenai's sense."""
    spans = pl.List(pl.List(pl.Float64))
    df = pl.DataFrame(
        {
            "a__b__c": [0.2, 0.7, None],
            "a__b__c\x00spans": pl.Series([[[0, 10, 0.2]], [[0, 5, 0.7], [5, 90, 1.0]], None], dtype=spans),
            "x__y__z": [1.0, None, 0.0],
            "x__y__z\x00spans": pl.Series([[[0, 3, 1.0]], None, [[0, 3, 0.0]]], dtype=spans),
        }
    )

    def run(text):
        rule = parse(text)
        assert not rule.vectorised
        return df.select(rule.expr).to_series().to_list()

    assert run(".attributes.a__b__c | length > 1") == [False, True, False]
    assert run("any(.attributes.a__b__c[]?; .[1] - .[0] > 50)") == [False, True, False]
    assert run('.attributes["x__y__z"][0][1] == 3') == [True, False, True]
    assert run("(.attributes.x__y__z // [[0, 0, 0]])[0][2]") == [True, False, False]  # 0 is false, as in allenai
    assert run(".attributes.a__b__c[0][2] as $s | $s > 0.1 and $s < 0.5") == [True, False, False]
    assert parse(".attributes.a__b__c[0][2] >= 0.5").vectorised
    with pytest.raises(UserError, match="neither in the vectorised subset nor valid jq"):
        parse(".attributes.a__b__c[0][2] >=")
    with pytest.raises(UserError, match="reads the document's 'text': mix rules see the attributes only"):
        parse("(.attributes.a__b__c | length) / (.text | length) > 0.1")
    with pytest.raises(UserError, match="names no attribute"):
        parse("length > 10")


@pytest.mark.parametrize("op", ["<", "<=", ">", ">=", "==", "!="])
def test_a_vectorised_rule_gives_the_verdict_of_its_library_on_missing_and_present_attributes(op):
    """Vectorised comparisons agree with the jq library and with python-jsonpath, missing keys included."""
    spans = pl.List(pl.List(pl.Float64))
    df = pl.DataFrame(
        {
            "a__b__c": [0.2, 0.5, None, 0.9, None],
            "a__b__c\x00spans": pl.Series([[[0, 1, 0.2]], [[0, 1, 0.5]], None, [[0, 1, 0.9]], None], dtype=spans),
            "x__y__z": [0.5, None, 0.5, 0.1, None],
            "x__y__z\x00spans": pl.Series([[[0, 1, 0.5]], None, [[0, 1, 0.5]], [[0, 1, 0.1]], None], dtype=spans),
        }
    )
    forms = {
        "jq": [f".attributes.a__b__c[0][2] {op} 0.5", f".attributes.a__b__c[0][2] {op} .attributes.x__y__z[0][2]"],
        "JSONPath": [
            f"$.attributes[?(@.a__b__c[0][2] {op} 0.5)]",
            f"$.attributes[?(@.a__b__c[0][2] {op} @.x__y__z[0][2])]",
        ],
    }
    for engine, texts in forms.items():
        for text in texts:
            fast = parse(text)
            slow = rules._jq_rule(text) if engine == "jq" else rules._jsonpath_rule(text, rules._jsonpath(text))
            assert fast.vectorised and slow.engine == engine
            assert df.select(fast.expr).to_series().to_list() == df.select(slow.expr).to_series().to_list(), text


def test_jsonpath_outside_the_vectorised_subset_runs_with_python_jsonpath():
    spans = pl.List(pl.List(pl.Float64))
    df = pl.DataFrame({"a__b__c\x00spans": pl.Series([[[0, 10, 0.2]], [[0, 5, 0.7], [5, 90, 1.0]], None], dtype=spans)})

    def run(text):
        rule = parse(text)
        assert rule.engine == "JSONPath"
        return df.select(rule.expr).to_series().to_list()

    assert run("$.attributes[?(@.a__b__c[1])]") == [False, True, False]
    assert run("$.attributes.a__b__c[?(@[2] >= 0.9)]") == [False, True, False]
    assert run("$.attributes[?(@['a__b__c'][-1][1] > 50)]") == [False, True, False]
    with pytest.raises(UserError, match="is not valid JSONPath"):
        parse("$.attributes[?(@.a__b__c[0][2] >")
    with pytest.raises(UserError, match="name each attribute key"):
        parse("$.attributes[?(@.*)]")


def test_an_allenai_mixer_config_with_a_typo_is_an_error_naming_the_key(tmp_path):
    config = {"streams": [{"name": "s", "documents": ["x/*.gz"], "output": {"path": "o"}, "filtr": {}}]}
    (tmp_path / "m.json").write_text(json.dumps(config))
    proc = run_cli("mix", "-c", str(tmp_path / "m.json"), check=False)
    assert proc.returncode == 2 and "streams[0]: unknown key 'filtr'" in proc.stderr and "Traceback" not in proc.stderr
    config["streams"][0] = {**config["streams"][0], "filter": {"include": [".attributes.a[0][2] >"], "syntax": "jq"}}
    del config["streams"][0]["filtr"]
    (tmp_path / "m.json").write_text(json.dumps(config))
    proc = run_cli("-c", str(tmp_path / "m.json"), "mix", check=False)
    assert proc.returncode == 2 and "neither in the vectorised subset nor valid jq" in proc.stderr
    config["streams"][0]["filter"] = {}
    config["streams"][0]["output"]["min_text_length"] = -1
    (tmp_path / "m.json").write_text(json.dumps(config))
    proc = run_cli("mix", "-c", str(tmp_path / "m.json"), check=False)
    assert proc.returncode == 2 and "output.min_text_length: a whole number of bytes, 0 or more, not -1" in proc.stderr
    config["streams"][0]["output"]["min_text_length"] = 10
    config["streams"][0]["compression"] = {"output": "lz4"}
    (tmp_path / "m.json").write_text(json.dumps(config))
    proc = run_cli("mix", "-c", str(tmp_path / "m.json"), check=False)
    assert proc.returncode == 2 and "streams[0].compression.output: gz, zst or '' (none), not 'lz4'" in proc.stderr
    config["streams"][0]["compression"] = {"inptu": "gz"}
    (tmp_path / "m.json").write_text(json.dumps(config))
    proc = run_cli("mix", "-c", str(tmp_path / "m.json"), check=False)
    assert proc.returncode == 2 and "streams[0].compression: unknown key 'inptu'" in proc.stderr
    config["streams"][0]["debug"] = True
    (tmp_path / "m.json").write_text(json.dumps(config))
    proc = run_cli("mix", "-c", str(tmp_path / "m.json"), check=False)
    assert proc.returncode == 2 and "'debug' is an allenai mixer key this toolkit does not run" in proc.stderr


@pytest.mark.parametrize(
    "change, message",
    [
        ({"documents": "docs/*.jsonl.gz"}, "streams[0].documents: expected `array`, got `str`"),
        ({"attributes": "t"}, "streams[0].attributes: expected `array | null`, got `str`"),
        ({"output": {"path": "o", "max_size_in_bytes": "big"}}, "streams[0].output.max_size_in_bytes: expected `int`"),
        ({"filter": {"include": "$.attributes[?(@.a__b__c)]"}}, "streams[0].filter.include: expected `array | null`"),
        ({"span_replacement": [{"span": "$.attributes.a__b__c", "min_score": "high"}]}, ".min_score: expected `float`"),
        ({"name": 5}, "streams[0].name: expected `str`, got `int`"),
    ],
)
def test_an_allenai_mixer_config_value_of_the_wrong_type_is_an_error_naming_its_key(tmp_path, change, message):
    """A string where allenai wants a list is not read as a list of its characters (a documents glob of '/'),
    and no value reaches a stage in the wrong type: the error names the key and what was expected."""
    stream = {"name": "s", "documents": [str(tmp_path / "docs/*.jsonl.gz")], "output": {"path": str(tmp_path / "o")}}
    (tmp_path / "m.json").write_text(json.dumps({"streams": [{**stream, **change}]}))
    proc = run_cli("mix", "-c", str(tmp_path / "m.json"), check=False)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    (tmp_path / "m.json").write_text(json.dumps({"streams": [stream], "processes": "two"}))
    proc = run_cli("mix", "-c", str(tmp_path / "m.json"), check=False)
    assert proc.returncode == 2 and "processes: a whole number, 1 or more, not 'two'" in proc.stderr


def test_the_plan_is_the_same_from_any_number_of_id_partitions_and_within_a_bin_from_histograms(tmp_path):
    """The ids step runs as one task per hash partition; the plan it leads to is the same for 1 and 3 of them.
    Above plan_exact_rows the plan reads only the merged histograms: each edge is then the upper bound of the
    bin holding its quantile's rank, the groups' tokens are unchanged and the mix still meets its target."""
    from mixers.planning import bin_bounds, bin_of

    root = build_pool(tmp_path)
    plans = {}
    for name, extra in (("p1", {"plan_partitions": 1}), ("p3", {"plan_partitions": 3}), ("h", {"plan_exact_rows": 0})):
        path = mix_recipe(tmp_path, root, name, 900_000)
        recipe = json.loads(path.read_text())
        recipe["stages"][0].update(extra)
        path.write_text(json.dumps(recipe))
        run_cli("run", str(path), "--workers", "2")
        plans[name] = msgspec.json.decode((tmp_path / name / "work/plan.json").read_bytes(), type=Plan)
        done = tmp_path / name / "work" / "ids" / "_ledger" / "mix-ids" / "done"
        assert len(list(done.glob("*.json"))) == {"p1": 1, "p3": 3, "h": 2}[name]  # h: one per input file
    assert plans["p1"] == plans["p3"] and plans["p1"].method == "exact"
    path = tmp_path / "p3.json"  # fewer partitions in the same work folder: the files of the old ones are not read
    path.write_text(path.read_text().replace('"plan_partitions": 3', '"plan_partitions": 1'))
    run_cli("run", str(path), "--workers", "2")
    assert msgspec.json.decode((tmp_path / "p3/work/plan.json").read_bytes(), type=Plan) == plans["p1"]
    exact, histogram = plans["p1"], plans["h"]
    assert histogram.method == "histograms"
    stats = pl.concat(
        [pl.read_parquet(p) for p in (tmp_path / "p1/work/stats").rglob("*.parquet") if "_ledger" not in str(p)]
    )
    kept = stats.filter(pl.col("drop_reason").is_null())
    for x, h in zip(exact.groups, histogram.groups, strict=True):
        assert (x.source, x.topic, x.available_tokens) == (h.source, h.topic, h.available_tokens)
        assert sum(x.bucket_tokens) == sum(h.bucket_tokens)
        quality = np.sort(kept.filter(pl.col("source") == x.source)["quality"].to_numpy())
        ranks = np.floor((len(quality) - 1) * np.linspace(0, 1, len(x.edges))).astype(int)
        low, high = bin_bounds(bin_of(quality[ranks]))
        assert h.edges == [low[0], *high[1:]]
    assert abs(histogram.planned_tokens - 900_000) / 900_000 < 0.005
    written = [d for f in (tmp_path / "h/mix").glob("*.jsonl.zst") for d in read_jsonl(f)]
    tokens = dict(zip(kept["id"].to_list(), kept["tokens"].to_list()))
    assert abs(sum(tokens[d["id"].split("#")[0]] for d in written) - 900_000) / 900_000 < 0.02


def test_the_write_step_gathers_documents_from_their_shuffle_files_in_the_shuffled_order():
    """The write step takes each document from its own shuffle file's chunk (no concatenated copy of the
    partition): the lines come out exactly as a take over the whole column gives them, for chunks of any size,
    empty ones and ones that are views into a larger buffer included."""
    import pyarrow as pa

    from mixers.write import _Chunks

    docs = [(json.dumps(d) + "\n").encode() for d in sample_docs("postgresql-docs", 120)]
    rng = np.random.default_rng(3)
    cuts = np.sort(rng.choice(np.arange(1, len(docs)), 9, replace=False))
    chunks = [pa.array(part, pa.large_binary()) for part in np.split(np.array(docs, object), cuts)]
    chunks += [pa.array([], pa.large_binary()), pa.array(docs, pa.large_binary()).slice(17, 40)]
    column = pa.chunked_array(chunks, pa.large_binary())
    gathered = _Chunks(column)
    for rows in (rng.permutation(len(column)), rng.permutation(len(column))[:50], np.array([len(column) - 1, 0])):
        assert bytes(gathered.take(rows)) == b"".join(column.take(rows).to_pylist())
