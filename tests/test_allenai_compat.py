"""Format compatibility with allenai's ``dolma`` (PyPI 1.2.1), run from its own virtual environment:
its ``tag`` and ``mix`` read what we write, and we read what it writes."""

import json
import sys

import pytest
from conftest import ROOT, SAMPLE, read_jsonl, run_cli

sys.path.insert(0, str(ROOT))
from bench.peers import run_allenai_dolma  # noqa: E402
from dolma import io  # noqa: E402
from dolma.core.document import ENCODER, AttributeLine, Document  # noqa: E402
from mixers.rules import parse  # noqa: E402

pytestmark = pytest.mark.peer


def test_allenai_dolma_reads_our_documents_and_attributes_and_we_read_its_output(tmp_path):
    docs_dir = tmp_path / "documents"
    run_cli("import", "--input", str(SAMPLE / "go-src.jsonl.gz"), "--output", str(docs_dir), "--workers", "1")
    run_cli("import", "--input", str(SAMPLE / "sympy-docs.jsonl.gz"), "--output", str(docs_dir), "--workers", "1")
    ours = {}
    for shard in ("go-src", "sympy-docs"):
        docs = read_jsonl(docs_dir / f"{shard}.jsonl.zst")
        ours[shard] = docs
        with io.AtomicWriter(str(tmp_path / "attributes" / "ours" / f"{shard}.jsonl.zst")) as w:
            w.write(
                ENCODER.encode_lines(
                    [
                        AttributeLine(d["id"], {"ours__length__chars": [[0, len(d["text"]), len(d["text"])]]})
                        for d in docs
                    ]
                )
            )

    # allenai tags our documents and mixes them with a filter over our attributes
    run_allenai_dolma(
        "tag",
        "--documents",
        str(docs_dir / "*.jsonl.zst"),
        "--experiment",
        "peer",
        "--taggers",
        "char_length_v1",
        "--processes",
        "1",
    )
    config = {
        "streams": [
            {
                "name": "sample",
                "documents": [str(docs_dir / "*.jsonl.zst")],
                "attributes": ["ours", "peer"],
                "output": {"path": str(tmp_path / "mixed" / "documents"), "max_size_in_bytes": 10**9},
                "filter": {"include": ["$.attributes[?(@.ours__length__chars[0][2] >= 2000)]"]},
            }
        ],
        "processes": 1,
    }
    (tmp_path / "mix.json").write_text(json.dumps(config))
    run_allenai_dolma("-c", str(tmp_path / "mix.json"), "mix")
    mixed = [d for f in io.document_files(str(tmp_path / "mixed" / "documents")) for d in read_jsonl(f)]
    expected = {d["id"]: d for docs in ours.values() for d in docs if len(d["text"]) >= 2000}
    assert 0 < len(expected) < sum(map(len, ours.values()))
    assert {d["id"] for d in mixed} == set(expected)
    assert all(d["text"] == expected[d["id"]]["text"] for d in mixed)

    # we read allenai's mixed documents and its attribute files, aligned, with nothing quarantined
    back = tmp_path / "back"
    run_cli("import", "--input", str(tmp_path / "mixed" / "documents"), "--output", str(back / "mixed"))
    summary = json.loads((back / "mixed/_ledger/import/summary.json").read_text())
    assert summary["read"] == summary["kept"] == len(expected) and not summary["quarantined"]

    run_cli("import", "--input", str(docs_dir), "--output", str(back / "documents"), "--attributes", "peer")
    summary = json.loads((back / "documents/_ledger/import/summary.json").read_text())
    assert summary["kept"] == sum(map(len, ours.values())) and not summary["quarantined"]
    for shard, docs in ours.items():
        peer = read_jsonl(back / "attributes" / "peer" / f"{shard}.jsonl.zst")
        assert [a["attributes"]["peer__char_length_v1__length"][0][2] for a in peer] == [len(d["text"]) for d in docs]


def test_allenai_mix_filters_on_the_attributes_of_our_taggers(tmp_path):
    docs_dir = tmp_path / "documents"
    run_cli("import", "--input", str(SAMPLE / "postgresql-docs.jsonl.gz"), "--output", str(docs_dir), "--workers", "1")
    run_cli(
        "tag",
        "--documents",
        str(docs_dir / "*.jsonl.zst"),
        "--experiment",
        "ours",
        "--workers",
        "1",
        "--taggers",
        "gopher_quality_v1",
        "gopher_repetition_v1",
        "c4_v1",
        "fineweb_v1",
        "ft_lang_id_v1",
        "ft_lang_id_paragraph_v1",
        "pii_v1",
        "stats_v1",
    )
    attrs = read_jsonl(tmp_path / "attributes" / "ours" / "postgresql-docs.jsonl.zst")
    keep = {
        a["id"]
        for a in attrs
        if a["attributes"]["ours__gopher_quality_v1__pass"][0][2] == 1.0
        and a["attributes"].get("ours__ft_lang_id_v1__en", [[0, 0, 0]])[0][2] >= 0.5
    }
    config = {
        "streams": [
            {
                "name": "pg",
                "documents": [str(docs_dir / "*.jsonl.zst")],
                "attributes": ["ours"],
                "output": {"path": str(tmp_path / "mixed"), "max_size_in_bytes": 10**9},
                "filter": {
                    "include": [
                        "$.attributes[?(@.ours__gopher_quality_v1__pass[0][2] == 1.0 && "
                        "@.ours__ft_lang_id_v1__en && @.ours__ft_lang_id_v1__en[0][2] >= 0.5)]"
                    ]
                },
            }
        ],
        "processes": 1,
    }
    (tmp_path / "mix.json").write_text(json.dumps(config))
    run_allenai_dolma("-c", str(tmp_path / "mix.json"), "mix")
    mixed = [d for f in io.document_files(str(tmp_path / "mixed")) for d in read_jsonl(f)]
    assert 0 < len(keep) < len(attrs) and {d["id"] for d in mixed} == keep


JQ_FILTERS = [
    ".attributes.q__stats_v1__tokens[0][2] >= 500",
    ".attributes.q__stats_v1__tokens[0][2] >= 1000",
    ".attributes.q__fineweb_v1__line_punct_ratio[0][2] > 0.3 and .attributes.q__stats_v1__tokens[0][2] < 3000",
    ".attributes.q__c4_v1__pass[0][2] == 1 or .attributes.q__fineweb_v1__pass[0][2] == 1",
    ".attributes.q__fineweb_v1__short_line_ratio[0][2] <= 0.5 and (.attributes.q__c4_v1__sentences[0][2] < 9)",
    "(.attributes.q__fineweb_v1__list_ratio[0][2] > 0.2) or (.attributes.q__c4_v1__curly_bracket[0][2] > 0)",
    ".attributes.q__c4_v1__sentences[0][2] >= 3 and .attributes.q__c4_v1__lorem_ipsum[0][2] == 0",
    "(.attributes.q__pii_v1__email // [[0, 0, 0]])[0][2] > 0.5",
    ".attributes.q__pii_v1__ip",
    "(.attributes.q__pii_v1__email // [[0, 0, 0]])[0][2]",
    ".attributes.q__c4_v1__removed_line | length > 3",
    "(.attributes.q__c4_v1__removed_line // []) | length == 0",
    "any(.attributes.q__c4_v1__removed_line[]?; .[1] - .[0] > 200)",
    "all((.attributes.q__c4_v1__removed_line // [])[]; .[1] - .[0] < 80)",
    ".attributes.q__stats_v1__words[0][2] / .attributes.q__stats_v1__chars[0][2] > 0.12",
    '.attributes["q__stats_v1__tokens"][0][2] > 800',
    "[.attributes.q__pii_v1__ip[]?] | length >= 2",
    "(.attributes.q__c4_v1__removed_lines[0][2] | floor) < 5",
    ".attributes.q__stats_v1__tokens[0][2] as $t | $t > 200 and $t < 5000",
    ".attributes.q__stats_v1__paragraphs[0][2] > (.attributes.q__stats_v1__lines[0][2] / 4)",
    "(.attributes.q__c4_v1__removed_line // []) | map(.[1] - .[0]) | add // 0 | . > 300",
    ".attributes.q__fineweb_v1__lines[0][1] > 4000",
]


JSONPATH_FILTERS = [
    "$.attributes[?(@.q__stats_v1__tokens[0][2] >= 500)]",
    "$.attributes[?(@.q__stats_v1__tokens[0][2] >= 1000)]",
    "$@.attributes[?(@.q__pii_v1__email && @.q__pii_v1__email[0] && @.q__pii_v1__email[0][2] >= 1.0)]",
    "$.attributes[?(@.q__pii_v1__ip)]",
    "$.attributes[?(@.q__c4_v1__removed_line && @.q__c4_v1__removed_line[0])]",
    "$.attributes[?(@.q__fineweb_v1__line_punct_ratio[0][2] > 0.3 && @.q__stats_v1__tokens[0][2] < 3000)]",
    "$.attributes[?(@.q__c4_v1__sentences[0][2] < 3 || @.q__fineweb_v1__list_ratio[0][2] > 0.2)]",
    "$.attributes[?(!(@.q__fineweb_v1__short_line_ratio[0][2] > 0.5))]",
    "$.attributes[?((@.q__stats_v1__tokens[0][2] > 200) && (@.q__c4_v1__curly_bracket[0][2] < 0.5))]",
    "$.attributes[?(@.q__pii_v1__email[0][2] != 1.0)]",
    # outside the vectorised subset: python-jsonpath, per document
    "$.attributes[?(@.q__c4_v1__removed_line[1])]",
    "$.attributes[?(@.q__fineweb_v1__lines[0][1] > 4000)]",
    "$.attributes.q__pii_v1__email[?(@[2] >= 1.0)]",
    "$.attributes[?(@.q__stats_v1__tokens[0][2] >= 500 && @.q__c4_v1__removed_line[2])]",
    "$.attributes[?(@.q__c4_v1__removed_line[0][0] == 0 || @['q__stats_v1__tokens'][0][2] < 300)]",
]


def test_jsonpath_filters_keep_the_documents_allenai_mix_keeps(tmp_path):
    """allenai's JSONPath forms, the existence idiom and the ``$@.`` prefix included, keep what its mixer keeps."""
    compare_with_allenai_mix(tmp_path, JSONPATH_FILTERS, "jsonpath")
    assert sum(parse(t).engine == "JSONPath" for t in JSONPATH_FILTERS) >= 5


def test_jq_filters_keep_the_documents_allenai_mix_keeps(tmp_path):
    """Each filter, vectorised or run by the jq library, keeps exactly the documents allenai's mixer keeps with it."""
    compare_with_allenai_mix(tmp_path, JQ_FILTERS, "jq")
    assert sum(not parse(t).vectorised for t in JQ_FILTERS) >= 10


def compare_with_allenai_mix(tmp_path, filters: list[str], syntax: str) -> None:
    docs_dir = tmp_path / "documents"
    for shard in ("postgresql-docs", "go-src"):
        run_cli("import", "--input", str(SAMPLE / f"{shard}.jsonl.gz"), "--output", str(docs_dir), "--workers", "1")
    taggers = ["stats_v1", "fineweb_v1", "pii_v1", "c4_v1"]
    run_cli("tag", "--documents", str(docs_dir / "*.jsonl.zst"), "--experiment", "q", "--taggers", *taggers)
    documents = [str(docs_dir / "*.jsonl.zst")]
    allenai = {
        "streams": [
            {
                "name": f"f{i}",
                "documents": documents,
                "attributes": ["q"],
                "output": {"path": str(tmp_path / "allenai" / f"f{i}"), "max_size_in_bytes": 10**9},
                "filter": {"include": [text], "syntax": syntax},
            }
            for i, text in enumerate(filters)
        ],
        "processes": 1,
    }
    (tmp_path / "allenai.json").write_text(json.dumps(allenai))
    run_allenai_dolma("-c", str(tmp_path / "allenai.json"), "mix")
    ours = {
        "stages": [
            {
                "stage": "mix",
                "work": str(tmp_path / "ours" / "work"),
                "output": str(tmp_path / "ours" / "mix"),
                "target_tokens": 1000,
                "streams": [
                    {"name": f"f{i}", "documents": documents, "attributes": ["q"], "include": [text]}
                    for i, text in enumerate(filters)
                ],
            }
        ]
    }
    (tmp_path / "ours.json").write_text(json.dumps(ours))
    proc = run_cli("run", str(tmp_path / "ours.json"), "--workers", "1")
    each = sum(not parse(t).vectorised for t in filters)
    said = " ".join(proc.stderr.split())
    engine = "jq" if syntax == "jq" else "JSONPath"
    assert f"{len(filters) - each} rules vectorised" in said and (not each or f"{each} run by {engine}" in said)
    import polars as pl

    for i, text in enumerate(filters):
        theirs = {d["id"] for f in io.document_files(str(tmp_path / "allenai" / f"f{i}")) for d in read_jsonl(f)}
        stats = pl.read_parquet(tmp_path / "ours" / "work" / "stats" / f"f{i}" / "*.parquet")
        kept = set(stats.filter(pl.col("drop_reason").is_null())["id"].to_list())
        assert kept == theirs, f"{text}: ours keeps {len(kept)}, allenai {len(theirs)}"


@pytest.mark.parametrize("syntax", ["jq", "jsonpath"])
def test_an_allenai_mixer_config_runs_unchanged_and_keeps_what_allenai_keeps(tmp_path, syntax):
    """The same mixer config (two include filters, an exclude, a PII span replacement, a size limit) through
    allenai's `dolma -c F mix` and ours: the same documents, with the same edited texts. The jq config also
    discards the joined attributes (so ours decodes only the keys its filters and edits read)."""
    docs_dir = tmp_path / "documents"
    for shard in ("postgresql-docs", "python-docs"):
        run_cli("import", "--input", str(SAMPLE / f"{shard}.jsonl.gz"), "--output", str(docs_dir), "--workers", "1")
    run_cli("tag", "--documents", str(docs_dir / "*.jsonl.zst"), "--experiment", "q", "--taggers", "stats_v1", "pii_v1")
    if syntax == "jq":
        include = [".attributes.q__stats_v1__tokens[0][2] >= 2000", ".attributes.q__pii_v1__email | length > 0"]
        exclude = [".attributes.q__stats_v1__tokens[0][2] > 6000"]
    else:
        include = ["$.attributes[?(@.q__stats_v1__tokens[0][2] >= 2000)]", "$.attributes[?(@.q__pii_v1__email)]"]
        exclude = ["$.attributes[?(@.q__stats_v1__tokens[0][2] > 6000)]"]

    discard = ["attributes"] if syntax == "jq" else []

    def config(out):
        return {
            "streams": [
                {
                    "name": "docs",
                    "documents": [str(docs_dir / "*.jsonl.zst")],
                    "attributes": ["q"],
                    "output": {"path": str(out), "max_size_in_bytes": 200_000, "discard_fields": discard},
                    "filter": {"include": include, "exclude": exclude, "syntax": syntax},
                    "span_replacement": [
                        {"span": "$.attributes.q__pii_v1__email", "min_score": 0.5, "replacement": "|||EMAIL|||"}
                    ],
                }
            ],
            "processes": 1,
        }

    (tmp_path / "allenai.json").write_text(json.dumps(config(tmp_path / "allenai")))
    run_allenai_dolma("-c", str(tmp_path / "allenai.json"), "mix")
    (tmp_path / "ours.yaml").write_text(json.dumps(config(tmp_path / "ours")))  # JSON is YAML
    proc = run_cli("-c", str(tmp_path / "ours.yaml"), "mix")
    assert "mix-docs:" in proc.stderr

    def mixed(folder):
        return {d["id"]: d["text"] for f in sorted(folder.glob("*.json*.gz")) for d in read_jsonl(f)}

    theirs, ours = mixed(tmp_path / "allenai"), mixed(tmp_path / "ours")
    assert 0 < len(theirs) and set(ours) == set(theirs)
    for folder in ("allenai", "ours"):
        first = read_jsonl(sorted((tmp_path / folder).glob("*.json*.gz"))[0])[0]
        assert ("attributes" in first) == (not discard), folder
    assert ours == theirs
    assert any("|||EMAIL|||" in t for t in ours.values())
    assert len(list((tmp_path / "ours").glob("*.json.gz"))) > 2  # max_size_in_bytes splits the output
    summary = json.loads((tmp_path / "ours/_ledger/mix-docs/summary.json").read_text())
    documents = sum(len(read_jsonl(f)) for f in docs_dir.glob("*.jsonl.zst"))
    assert summary["read"] == documents and summary["kept"] == len(ours)
    assert summary["read"] == summary["kept"] + sum(summary["dropped"].values())
    assert any(r.startswith("exclude: ") for r in summary["dropped"]) and any(
        r.startswith("include: ") for r in summary["dropped"]
    )


def test_min_text_length_and_zstd_output_keep_what_allenai_keeps_and_write_what_it_writes(tmp_path):
    """``output.min_text_length`` counts UTF-8 bytes of the text trimmed of Unicode White_Space (U+3000 is
    trimmed, U+001C is not) after the span edits; ``compression`` reads zstd and writes ``.json.zst``. Both
    tools keep the same documents with the same texts, and ours says why each other one was dropped."""
    texts = {
        "short": "short",
        "bytes39": "x" * 39,
        "bytes40": "x" * 40,
        "accents40": "\u00e9" * 20,
        "accents39": "\u00e9" * 19 + "a",
        "ideographic-space": "  " + "y" * 38 + "\u3000" * 5,
        "separator": "y" * 38 + "\x1c\x1c",
        "email": "write to someone@example.com for a copy of the full report, please",
        "email-short": "mail a@example.org",
    }
    docs = tmp_path / "documents"
    with io.DocumentWriter(str(docs / "d.jsonl.zst")) as w:
        w.write([Document(id=k, text=v, source="t") for k, v in texts.items()])
    run_cli("tag", "--documents", str(docs / "*.jsonl.zst"), "--experiment", "p", "--taggers", "pii_v1")

    def config(out):
        stream = {
            "name": "docs",
            "documents": [str(docs / "*.jsonl.zst")],
            "attributes": ["p"],
            "output": {"path": str(out), "max_size_in_bytes": 10**9, "min_text_length": 40},
            "span_replacement": [{"span": "$.attributes.p__pii_v1__email", "min_score": 0.5, "replacement": "@"}],
            "compression": {"input": "zst", "output": "zst"},
        }
        return {"streams": [stream], "processes": 1}

    (tmp_path / "allenai.json").write_text(json.dumps(config(tmp_path / "allenai")))
    run_allenai_dolma("-c", str(tmp_path / "allenai.json"), "mix")
    (tmp_path / "ours.json").write_text(json.dumps(config(tmp_path / "ours")))
    run_cli("mix", "-c", str(tmp_path / "ours.json"))

    def mixed(folder):
        files = sorted(folder.glob("*.json.zst"))
        assert files and not list(folder.glob("*.gz")), folder
        return {d["id"]: d["text"] for f in files for d in read_jsonl(f)}

    theirs, ours = mixed(tmp_path / "allenai"), mixed(tmp_path / "ours")
    assert ours == theirs
    assert set(ours) == {"bytes40", "accents40", "separator", "email"} and "@" in ours["email"]
    summary = json.loads((tmp_path / "ours/_ledger/mix-docs/summary.json").read_text())
    assert summary["dropped"] == {"min_text_length: under 40 bytes": 5}
    again = config(tmp_path / "again")
    again["streams"][0]["compression"]["input"] = "gz"
    (tmp_path / "ours.json").write_text(json.dumps(again))
    proc = run_cli("mix", "-c", str(tmp_path / "ours.json"), check=False)
    assert proc.returncode == 2 and "compression.input is 'gz', but" in proc.stderr and "as zst" in proc.stderr


def test_an_allenai_tagger_config_runs_unchanged_and_writes_where_allenai_writes(tmp_path):
    """The same tagger config file runs in both tools (only the tagger names are each tool's own): attributes
    land in the same files, aligned line by line with the documents, and allenai's mixer reads ours."""
    docs_dir = tmp_path / "documents"
    for shard in ("go-src", "sympy-docs"):
        run_cli("import", "--input", str(SAMPLE / f"{shard}.jsonl.gz"), "--output", str(docs_dir / "sub"))
    config = {"documents": [str(docs_dir / "sub" / "*.jsonl.zst")], "processes": 1, "work_dir": {}}

    def written(experiment):
        root = tmp_path / "attributes" / experiment
        return sorted(str(p.relative_to(root)) for p in root.rglob("*.jsonl*") if "_ledger" not in p.parts)

    (tmp_path / "theirs.json").write_text(json.dumps({**config, "experiment": "peer", "taggers": ["char_length_v1"]}))
    run_allenai_dolma("-c", str(tmp_path / "theirs.json"), "tag")
    (tmp_path / "ours.yaml").write_text(json.dumps({**config, "experiment": "ours", "taggers": ["stats_v1"]}))
    run_cli("tag", "-c", str(tmp_path / "ours.yaml"))
    assert written("ours") == written("peer") == ["sub/go-src.jsonl.zst", "sub/sympy-docs.jsonl.zst"]
    for name in written("ours"):
        ids = [d["id"] for d in read_jsonl(docs_dir / name)]
        assert [a["id"] for a in read_jsonl(tmp_path / "attributes" / "ours" / name)] == ids

    mixer = {
        "streams": [
            {
                "name": "long",
                "documents": config["documents"],
                "attributes": ["ours", "peer"],
                "output": {"path": str(tmp_path / "mixed"), "max_size_in_bytes": 10**9},
                "filter": {"include": ["$.attributes[?(@.ours__stats_v1__chars[0][2] >= 3000)]"]},
            }
        ],
        "processes": 1,
    }
    (tmp_path / "mixer.json").write_text(json.dumps(mixer))
    run_allenai_dolma("-c", str(tmp_path / "mixer.json"), "mix")
    kept = {d["id"] for f in io.document_files(str(tmp_path / "mixed")) for d in read_jsonl(f)}
    long = {d["id"] for n in written("ours") for d in read_jsonl(docs_dir / n) if len(d["text"]) >= 3000}
    assert kept == long and 0 < len(kept)

    unknown = run_cli("-c", str(tmp_path / "theirs.json"), "tag", check=False)
    assert unknown.returncode == 2 and "unknown tagger 'char_length_v1'" in unknown.stderr
