"""The stage subcommands of ``dolma``: one entry each, its options generated from the stage's dataclass.

An entry says which stage kind it runs, what it does (one sentence, then detail), an example, how its options
are named where that differs from the recipe key (``--documents`` for ``input``), and what it prints after
the run besides the summary.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from dolma.runtime.run import StageResult

if TYPE_CHECKING:
    from dolma.dedup.clusters import DedupStage
    from dolma.dedup.paragraphs import ParagraphDedupStage
    from dolma.tokenize.stage import TokenizeStage
    from mixers.carve import CarveStage


def after_dedup(stage: DedupStage, results: list[StageResult]) -> None:
    metrics = {k: v for r in results for k, v in r.summary.metrics.items()}
    print(
        f"{metrics.get('clusters', 0):,.0f} clusters, {metrics.get('duplicates', 0):,.0f} duplicates "
        f"({metrics.get('candidate_edges', 0):,.0f} candidate pairs, {metrics.get('verified_edges', 0):,.0f} kept "
        f"after verification; {metrics.get('moved_from_keeper', 0):,.0f} of {metrics.get('keeper_checks', 0):,.0f} "
        f"removals checked against their keeper were unlike it and re-clustered); "
        f"attributes: {stage.name} set beside the documents"
    )


def after_paragraphs(stage: ParagraphDedupStage, results: list[StageResult]) -> None:
    m = {k: v for r in results for k, v in r.summary.metrics.items() if k in ("paragraphs", "duplicate_paragraphs")}
    print(
        f"{m.get('duplicate_paragraphs', 0):,.0f} of {m.get('paragraphs', 0):,.0f} paragraphs are duplicates "
        f"(method: {stage.chosen}); spans in the {stage.name!r} attribute set"
        + (f"; filter saved to {stage.bloom_out}" if stage.bloom_out else "")
    )


def after_carve(stage: CarveStage, results: list[StageResult]) -> None:
    metrics = results[0].summary.metrics
    table = Table(title="Top label of every document read")
    for col in ("label", "documents", "characters"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for key in sorted(k for k in metrics if k.startswith("top_label_documents/")):
        label = key.split("/", 1)[1]
        table.add_row(label or "(none)", f"{metrics[key]:,.0f}", f"{metrics['top_label_chars/' + label]:,.0f}")
    Console().print(table)


def after_tokenize(stage: TokenizeStage, results: list[StageResult]) -> None:
    from dolma.app.cli import cmd_stats

    cmd_stats(argparse.Namespace(folder=stage.output))


@dataclass(frozen=True)
class StageCommand:
    command: str
    kind: str
    summary: str  # one sentence: what it does
    detail: str
    example: str
    names: dict[str, str] = field(default_factory=dict)  # field -> option name
    before: Callable[[Any], None] | None = None  # given the built stage, before it runs
    after: Callable[[Any, list[StageResult]], None] | None = None  # given the stage and its results


def describe_dedup(stage: DedupStage) -> None:
    from dolma.dedup.minhash import describe

    print(describe(stage))


STAGE_COMMANDS = [
    StageCommand(
        "import", "import", "Validate documents into a clean tree, quarantining bad lines.",
        "Read Dolma documents (.jsonl, .jsonl.gz, .jsonl.zst, .parquet; local, s3:// or gs://), check every line, "
        "and write the usable ones to OUTPUT with the same relative paths. Unusable lines go to "
        "OUTPUT/_ledger/import/quarantine with file, line and reason.",
        "dolma import --input 'data/documents/*.jsonl.gz' --output out/documents --compression zst",
    ),
    StageCommand(
        "web", "web", "Turn WARC files or loose HTML pages into documents with trafilatura.",
        "Extract the main text of HTTP 200 HTML responses in WARC files (and of loose .html files) with "
        "trafilatura (its balanced setting: comments out, tables in). Every other record is counted as dropped "
        "with its reason; malformed records and pages whose extraction exceeds --timeout are quarantined.",
        "dolma web --input dolma/sample/web --output out/web/documents --source crawl",
    ),
    StageCommand(
        "pdf", "pdf", "Turn PDF files into documents (PyMuPDF, Tesseract OCR for pages without text).",
        "Extract PDFs in isolated worker processes with a time and memory limit each: two-column pages read "
        "column by column, running headers/footers and page numbers removed, hyphenation rejoined, pages "
        "without a text layer OCRed with Tesseract. Writes documents (id = SHA-1 of the PDF; metadata: pages, "
        "pages OCRed, tokens, length bucket, language) and per-page quality signals under attributes/pdf/. "
        "Encrypted, broken, hanging or oversized PDFs are quarantined with their reason.",
        "dolma pdf --input dolma/sample/pdf --output out/pdf/documents --ocr-language eng+deu",
    ),
    StageCommand(
        "tokenize", "tokenize", "Tokenize documents into token-id shards (.npy + .csv.gz) for training.",
        "Tokenize documents with a Hugging Face tokenizer into raw memmap .npy files plus .csv.gz document "
        "indexes (start,end,id,src,loc), the format OLMo-core reads. EOS ends every document. Default "
        "tokenizer: allenai dolma2 (cl100k-based, vocab 100,278), bundled. Ends with `dolma stats` of the output.",
        "dolma tokenize --input 'out/mix/*.jsonl.zst' --output out/tokens",
        after=after_tokenize,
    ),
    StageCommand(
        "tag", "tag", "Run taggers over documents into an attribute set.",
        "Run taggers (see `dolma list`) over documents under a documents/ folder; attributes go to the "
        "parallel attributes/EXPERIMENT/ tree, one line per document, as allenai dolma writes them. An allenai "
        "tagger config runs unchanged with `dolma tag -c tagger.json` (our tagger names).",
        "dolma tag --documents 'out/documents/*.jsonl.zst' --taggers gopher_quality_v1 c4_v1 --experiment quality",
        names={"input": "documents"},
    ),
    StageCommand(
        "carve", "carve", "Carve a domain subset from classifier attributes, with a table of every domain.",
        "Keep the documents whose probability for one of --labels reaches --threshold (the rest are dropped "
        "with reason not_<labels>), and print how many documents and characters had each label on top.",
        "dolma carve --documents 'out/documents/*.zst' --attributes domain --labels law --output out/law",
        names={"input": "documents"},
        after=after_carve,
    ),
    StageCommand(
        "dedup", "dedup", "Find exact or MinHash-LSH duplicate documents and write duplicate attributes.",
        "Find duplicate documents (exact normalised text, or MinHash LSH near-duplicates) in restartable steps "
        "of many tasks: signatures per shard, candidate pairs per band, Jaccard verification per pair of shards, "
        "connected components in rounds over edge partitions (--cluster-partitions), keepers per component "
        "partition and attributes per shard (<name>__<method>__duplicate / cluster_size / cluster). Prints the "
        "S-curve. A preset fills only the options you leave out.",
        "dolma dedup --documents 'out/documents/*.jsonl.zst' --work out/dedup --bands 20 --rows 5",
        names={"input": "documents"},
        after=after_dedup,
        before=describe_dedup,
    ),
    StageCommand(
        "dedup-paragraphs", "paragraph_dedup", "Mark duplicate paragraphs (lines seen before in the corpus) as spans.",
        "Mark paragraphs (lines) whose word n-grams were mostly seen before, in this corpus or in a saved Bloom "
        "filter, as allenai dolma's paragraph dedupe does. The exact method (default) runs as many tasks: n-grams "
        "per file, first occurrences per key partition, attributes per file. With --bloom-out (save the filter "
        "to dedup a later dataset against this one) or --bloom-in with --read-only (check against a reference "
        "set) one task reads every file in order through a Bloom filter (--method bloom).",
        "dolma dedup-paragraphs --documents 'out/documents/*.jsonl.zst' --bloom-out out/paragraphs.bloom",
        names={"input": "documents"},
        after=after_paragraphs,
    ),
    StageCommand(
        "hf-import", "hf_import", "Read a Hugging Face dataset (save_to_disk folder or hub layout) as documents.",
        "Read a folder written by datasets' save_to_disk, or a repository in the hub's layout (Parquet or JSON "
        "Lines data files, splits from its README configs or file names), into Dolma documents under "
        "OUTPUT/<split>/, one task per data file. --fields maps our fields to its columns; other columns go to "
        "metadata. Rows without id or text, and repeated ids, are quarantined. No network is used.",
        "dolma hf-import --input ./fineweb-sample --output out/documents --fields text=content id=doc_id",
    ),
    StageCommand(
        "export", "hf_export", "Export documents (a mix) as a Hugging Face hub dataset with a dataset card.",
        "Write data/<split>-NNNNN-of-NNNNN.parquet (one per input file; metadata as JSON text) and a README.md "
        "dataset card with the YAML header the hub reads (licence, configs, features, sizes), so "
        "datasets.load_dataset(OUTPUT) loads it and the folder can be uploaded as is.",
        "dolma export --format hf --input out/mix --output out/hf-dataset --license odc-by",
    ),
]  # fmt: skip


def add_allenai_mix(sub, command: Callable[..., argparse.ArgumentParser]) -> None:
    """``dolma mix -c mixer.json``: an allenai dolma mixer config, run unchanged (also ``dolma -c F mix``)."""
    p = command(
        sub, "mix", "Run an allenai dolma mixer config (JSON or YAML) unchanged.",
        "Streams, documents, attributes, filter include/exclude (JSONPath or jq syntax), span_replacement and "
        "output max_size_in_bytes, as allenai's `dolma mix` reads them; every document read is kept or dropped "
        "with the filter that decided, in the ledger under each stream's output. For a token target with "
        "value-weighted repetition, use a recipe's `stage: mix`.",
        "dolma mix -c mixer.json --workers 2    (or, as allenai writes it: dolma -c mixer.json mix)",
    )  # fmt: skip
    p.add_argument("-c", "--config", dest="mixer_config", help="the allenai mixer config")
    p.add_argument("--workers", type=int, help="worker processes (default: the config's processes, else all cores)")
    p.add_argument("--force", action="store_true", help="redo every task, even those whose inputs did not change")
    p.set_defaults(fn=cmd_allenai_mix)


def cmd_allenai_mix(args: argparse.Namespace) -> None:
    from dolma.app.progress import RichProgress, print_summary
    from dolma.app.recipe import load_yaml
    from dolma.core.errors import UserError
    from dolma.runtime.executors import LocalExecutor
    from dolma.runtime.run import run_stages
    from dolma.runtime.stage import expand
    from mixers.allenai import allenai_mixer

    path = args.mixer_config or args.top_config
    if not path:
        raise UserError("dolma mix needs an allenai mixer config: dolma mix -c mixer.json")
    config = load_yaml(path, "mixer config")
    mix = allenai_mixer(path, config)
    workers = args.workers or config.get("processes")
    print_summary(run_stages(expand([mix]), LocalExecutor(workers), RichProgress(), bool(args.force)))
    print("outputs: " + ", ".join(sorted({s.output for s in mix.stages()})))


def run_allenai_tag(path: str, workers: int | None, force: bool) -> None:
    """``dolma tag -c tagger.json`` (or ``dolma -c tagger.json tag``): an allenai tagger config, run unchanged."""
    from dolma.app.progress import RichProgress, print_summary
    from dolma.app.recipe import load_yaml
    from dolma.runtime.executors import LocalExecutor
    from dolma.runtime.run import run_stages
    from dolma.runtime.stage import expand
    from taggers.allenai import allenai_tagger

    stages, processes, redo = allenai_tagger(load_yaml(path, "tagger config"))
    print_summary(run_stages(expand(stages), LocalExecutor(workers or processes), RichProgress(), force or redo))
    print("attributes: " + ", ".join(sorted({s.output for s in stages})))


def allenai_tag_args(argv: list[str]) -> argparse.Namespace | None:
    """``dolma tag -c F`` or ``dolma -c F tag`` (allenai's forms): parsed on their own, since the generated
    ``tag`` options (``--documents``, ``--taggers``) come from the config instead."""
    if "tag" not in argv or not {"-c", "--config"} & set(argv):
        return None
    p = argparse.ArgumentParser(prog="dolma tag", description="Run an allenai tagger config unchanged.")
    p.add_argument("-c", "--config", required=True, help="the allenai tagger config (JSON or YAML)")
    p.add_argument("--workers", type=int, help="worker processes (default: the config's processes)")
    p.add_argument("--force", action="store_true", help="redo every task")
    p.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    args = p.parse_args([a for a in argv if a != "tag"])
    args.fn = lambda a: run_allenai_tag(a.config, a.workers, a.force)
    return args


DEDUPE_WHY = (
    "allenai dedupe configs are not run here: our paragraph dedup writes <name>__paragraph_bloom__duplicate_paragraph "
    "spans and its own Bloom filter file, and our exact document dedup normalises the text, so neither an allenai "
    "attribute name nor a saved allenai filter would carry over; use `dolma dedup-paragraphs` (bloom_in/bloom_out/"
    "read_only, min_words) or `dolma dedup --method exact`"
)


def add_allenai_dedupe(sub, command: Callable[..., argparse.ArgumentParser]) -> None:
    """``dolma dedupe -c F``: says, in one line, why allenai dedupe configs are not run and what to use."""
    p = command(
        sub, "dedupe", "Explain what to use instead of an allenai dedupe config (not run here).",
        DEDUPE_WHY + ".",
        "dolma dedup-paragraphs --documents 'out/documents/*.jsonl.zst' --bloom-out out/paragraphs.bloom",
    )  # fmt: skip
    p.add_argument("-c", "--config", dest="dedupe_config", help="the allenai dedupe config")
    p.set_defaults(fn=cmd_allenai_dedupe)


def cmd_allenai_dedupe(args: argparse.Namespace) -> None:
    from dolma.core.errors import UserError

    raise UserError(DEDUPE_WHY)
