"""The ``dolma`` command line: one subcommand per stage, plus ``run`` for whole recipes."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dolma.executor import Executor, LocalExecutor, run_stage
from dolma.io import UserError
from dolma.ledger import ShardSummary
from dolma.recipe import build_stage, load_recipe

console = Console(stderr=True)


def run_stages(
    stages: list[Any], workers: int | None, executor: Executor | None = None
) -> list[tuple[str, ShardSummary, float]]:
    """Run stages in order with a progress bar each; return (name, summary, seconds) per stage."""
    executor = executor or LocalExecutor(workers)
    results = []
    for stage in stages:
        tasks_total = len(stage.tasks())
        started = time.perf_counter()
        counts = {"docs": 0, "bytes": 0}
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "shards · {task.fields[docs]:,} docs · {task.fields[dps]:,.0f} docs/s · {task.fields[mbps]:.1f} MB/s"
            ),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            bar = progress.add_task(stage.name, total=tasks_total, docs=0, dps=0.0, mbps=0.0)

            def on_progress(docs: int, nbytes: int) -> None:
                counts["docs"] += docs
                counts["bytes"] += nbytes
                elapsed = max(time.perf_counter() - started, 1e-6)
                progress.update(
                    bar, docs=counts["docs"], dps=counts["docs"] / elapsed, mbps=counts["bytes"] / elapsed / 1e6
                )

            summary = run_stage(stage, executor, on_progress, lambda key, s: progress.advance(bar))
            progress.update(bar, completed=tasks_total)
        results.append((stage.name, summary, time.perf_counter() - started))
    return results


def print_summary(results: list[tuple[str, ShardSummary, float]]) -> None:
    table = Table(title="Summary", show_lines=False)
    for col in ("stage", "read", "kept", "dropped", "quarantined", "seconds"):
        table.add_column(col, justify="right" if col not in ("stage", "dropped", "quarantined") else "left")
    for name, s, seconds in results:
        fmt = lambda d: "\n".join(f"{k if len(k) <= 48 else k[:47] + '…'}: {v:,}" for k, v in d.items()) or "0"  # noqa: E731
        table.add_row(name, f"{s.read:,}", f"{s.kept:,}", fmt(s.dropped), fmt(s.quarantined), f"{seconds:.1f}")
    Console().print(table)


def cmd_run(args: argparse.Namespace) -> None:
    from dolma.report import write_report

    recipe, stages = load_recipe(args.recipe)
    print_summary(run_stages(stages, None, recipe.executor.build(args.workers)))
    for stage in stages:
        if stage.name.endswith("-plan") and hasattr(stage, "params"):
            import msgspec

            from dolma import io
            from mixers.mix import Plan

            print_plan(msgspec.convert(io.read_json(io.join(stage.params.work, "plan.json")), Plan))
    print(
        "outputs: "
        + ", ".join(
            sorted(
                {
                    s.output
                    for s in stages
                    if not s.output.rstrip("/").endswith(
                        ("signatures", "pairs", "clusters", "plan", "shuffle", "stats")
                    )
                }
            )
        )
    )
    print(f"report: {write_report(stages, args.recipe)}")


def cmd_report(args: argparse.Namespace) -> None:
    from dolma.report import write_report

    _, stages = load_recipe(args.recipe)
    print(f"report: {write_report(stages, args.recipe, args.output)}")


def cmd_import(args: argparse.Namespace) -> None:
    params = {
        "input": args.input,
        "output": args.output,
        "compression": args.compression,
        "attributes": args.attributes or [],
        "batch_size": args.batch_size,
    }
    stage = build_stage("import", params, "import")
    print_summary(run_stages([stage], args.workers))


def cmd_web(args: argparse.Namespace) -> None:
    params = {"input": args.input, "output": args.output, "source": args.source, "timeout": args.timeout}
    print_summary(run_stages([build_stage("web", params, "web")], args.workers))


def cmd_pdf(args: argparse.Namespace) -> None:
    keys = ("input", "output", "source", "timeout", "memory_mb", "ocr", "ocr_language", "files_per_shard", "password")
    params = {k: v for k, v in vars(args).items() if k in keys and v is not None}
    print_summary(run_stages([build_stage("pdf", params, "pdf")], args.workers))


def cmd_tokenize(args: argparse.Namespace) -> None:
    params = {
        k: v
        for k, v in vars(args).items()
        if k in ("input", "output", "tokenizer", "bos_token", "eos_token", "max_tokens_per_file", "seed", "batch_size")
        and v is not None
    }
    stage = build_stage("tokenize", params, "tokenize")
    print_summary(run_stages([stage], args.workers))
    cmd_stats(argparse.Namespace(folder=args.output))


def cmd_stats(args: argparse.Namespace) -> None:
    from dolma.tokenize import TokenReader

    try:
        reader = TokenReader(args.folder)
    except FileNotFoundError:
        raise UserError(f"{args.folder!r} has no manifest.json; is it a tokenize output?") from None
    m = reader.manifest
    table = Table(title=f"{args.folder}: {m.tokens:,} tokens, {m.documents:,} documents, {len(m.files)} files")
    for col in ("source", "documents", "tokens", "share"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for source, tokens in m.tokens_per_source.items():
        table.add_row(source, f"{m.documents_per_source[source]:,}", f"{tokens:,}", f"{tokens / max(m.tokens, 1):.1%}")
    Console().print(table)
    for entry in m.files:
        rows = reader.rows(entry)
        ends_csv = [end for _, end, *_ in rows]
        if ends_csv != reader.eos_boundaries(entry).tolist() or (rows and rows[-1][1] != entry.tokens):
            raise UserError(f"{entry.npy}: document boundaries in {entry.csv} do not match its EOS tokens")
    print(
        f"tokenizer {m.tokenizer.name} (sha256 {m.tokenizer.sha256[:12]}…, vocab {m.tokenizer.vocab_size:,}, "
        f"{m.tokenizer.dtype}); every file's CSV boundaries match its EOS positions"
    )


def cmd_tag(args: argparse.Namespace) -> None:
    taggers = [yaml.safe_load(t) if t.lstrip().startswith("{") else t for t in args.taggers]
    params = {
        "input": args.documents,
        "taggers": taggers,
        "experiment": args.experiment,
        "tagger_modules": args.tagger_modules or [],
        "batch_size": args.batch_size,
    }
    print_summary(run_stages([build_stage("tag", params, "tag")], args.workers))


def cmd_list(args: argparse.Namespace) -> None:
    from taggers.registry import TAGGERS, load_builtin, load_modules

    load_builtin()
    load_modules(args.tagger_modules or [])
    table = Table(title="Taggers")
    table.add_column("name")
    table.add_column("description")
    for name in sorted(TAGGERS):
        table.add_row(name, TAGGERS[name].description)
    Console().print(table)


def cmd_train_classifier(args: argparse.Namespace) -> None:
    from taggers.classifier import TrainParams, train_classifier

    labelled: dict[str, list[str]] = {}
    for item in args.label:
        label, sep, pattern = item.partition("=")
        if not sep:
            raise UserError(f"--label takes LABEL=GLOB, got {item!r}")
        labelled.setdefault(label, []).append(pattern)
    params = TrainParams(
        epoch=args.epoch,
        lr=args.lr,
        word_ngrams=args.word_ngrams,
        dim=args.dim,
        held_out=args.held_out,
        balance=not args.no_balance,
        seed=args.seed,
    )
    report = train_classifier(labelled, args.model, params)
    table = Table(title=f"{args.model}: held-out accuracy {report.accuracy:.3f}")
    for col in ("label", "train", "held out", "precision", "recall", "F1"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for r in report.labels:
        table.add_row(r.label, str(r.train), str(r.held_out), f"{r.precision:.3f}", f"{r.recall:.3f}", f"{r.f1:.3f}")
    Console().print(table)


def cmd_carve(args: argparse.Namespace) -> None:
    params = {
        "input": args.documents,
        "output": args.output,
        "attributes": args.attributes,
        "labels": args.labels,
        "threshold": args.threshold,
    }
    results = run_stages([build_stage("carve", params, "carve")], args.workers)
    print_summary(results)
    metrics = results[0][1].metrics
    table = Table(title="Top label of every document read")
    for col in ("label", "documents", "characters"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for key in sorted(k for k in metrics if k.startswith("top_label_documents/")):
        label = key.split("/", 1)[1]
        table.add_row(label or "(none)", f"{metrics[key]:,.0f}", f"{metrics['top_label_chars/' + label]:,.0f}")
    Console().print(table)


def cmd_dedup(args: argparse.Namespace) -> None:
    from dolma.dedup import describe

    params = {
        "input": args.documents,
        "work": args.work,
        "name": args.name,
        "method": args.method,
        "preset": None if args.preset == "none" else args.preset,
        "keeper": args.keeper,
        "pair_partitions": args.pair_partitions,
        "quality_attribute": args.quality_attribute,
    }
    for key in ("ngram", "bands", "rows", "seed", "jaccard_threshold"):
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)
            params["preset"] = None if key != "seed" else params["preset"]
    group = build_stage("dedup", params, "dedup")
    print(describe(group))
    results = run_stages(group.stages(), args.workers)
    print_summary(results)
    metrics = {
        k: v
        for name, summary, _ in results
        for k, v in summary.metrics.items()
        if name.endswith(("-verify", "-clusters"))
    }
    print(
        f"{metrics.get('clusters', 0):,.0f} clusters, {metrics.get('duplicates', 0):,.0f} duplicates "
        f"({metrics.get('candidate_edges', 0):,.0f} candidate pairs, {metrics.get('verified_edges', 0):,.0f} kept "
        f"after verification); attributes: {group.name} set beside the documents"
    )


def cmd_dedup_paragraphs(args: argparse.Namespace) -> None:
    params = {
        k: getattr(args, k)
        for k in (
            "name",
            "ngram",
            "overlap_threshold",
            "expected_ngrams",
            "false_positive_rate",
            "bloom_in",
            "bloom_out",
            "read_only",
        )
    }
    stage = build_stage("paragraph_dedup", {"input": args.documents, **params}, "paragraph_dedup")
    results = run_stages([stage], args.workers)
    print_summary(results)
    m = results[0][1].metrics
    print(
        f"{m.get('duplicate_paragraphs', 0):,.0f} of {m.get('paragraphs', 0):,.0f} paragraphs are duplicates; "
        f"spans in the {args.name!r} attribute set" + (f"; filter saved to {args.bloom_out}" if args.bloom_out else "")
    )


def print_plan(plan) -> None:
    from mixers.mix import plan_table

    table = Table(
        title=f"Mix plan: {plan.planned_tokens:,.0f} tokens planned for a target of {plan.target_tokens:,} "
        f"({(plan.planned_tokens / plan.target_tokens - 1) * 100:+.4f}%); curve {plan.curve}"
    )
    for col in ("source/topic", "available", "planned", "share", "buckets kept", "top factor"):
        table.add_column(col, justify="left" if col == "source/topic" else "right")
    for row in plan_table(plan):
        table.add_row(*row)
    Console().print(table)


def cmd_mix_plan(args: argparse.Namespace) -> None:
    from dolma import io
    from mixers.mix import plan_from_description, write_plan_plot

    started = time.perf_counter()
    plan = plan_from_description(args.pool)
    print_plan(plan)
    if args.output:
        io.write_json(args.output + ".json", plan)
        write_plan_plot(plan, args.output + ".png")
        print(f"plan: {args.output}.json, curves: {args.output}.png")
    print(f"planned in {time.perf_counter() - started:.2f} s")


def add_workers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, help="worker processes (default: all cores)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dolma",
        description="Curate pretraining data in the Dolma format: import, tag, dedup, mix and tokenize shards, "
        "with a ledger that accounts for every document (see README.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "run",
        help="run every stage of a YAML recipe",
        description=(
            "Run a YAML recipe (see configs/). Finished shards are skipped, so rerunning after a crash resumes. "
            "Ends with a summary table, the mix plans, the output folders and an HTML report (see `dolma report`)."
        ),
    )
    p.add_argument("recipe", help="path to the recipe YAML")
    p.add_argument("--workers", type=int, help="worker processes (default: the recipe's, else all cores)")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser(
        "report",
        help="write the HTML report of a recipe's run",
        description=(
            "Write a self-contained HTML report (matplotlib plots inlined, no network needed) of what a recipe's "
            "run left behind: the funnel of every stage with what each filter removed, language and quality score "
            "distributions, duplicate cluster sizes, each mix's repetition curves and realised vs target shares, "
            "and the token lengths of the PDF (long-context) pool. `dolma run` writes it at the end of every run."
        ),
    )
    p.add_argument("recipe", help="path to the recipe YAML that was run")
    p.add_argument("--output", help="where to write it (default: report.html in the common output folder)")
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser(
        "import",
        help="validate documents into a clean tree, quarantining bad lines",
        description=(
            "Read Dolma documents (.jsonl, .jsonl.gz, .jsonl.zst, .parquet; local, s3:// or gs://), check every line, "
            "and write the usable ones to OUTPUT with the same relative paths. Unusable lines go to "
            "OUTPUT/_ledger/import/quarantine with file, line and reason."
        ),
    )
    p.add_argument("--input", required=True, help="glob or directory of document files, e.g. 'data/documents/*.gz'")
    p.add_argument("--output", required=True, help="output directory (a 'documents/' folder if --attributes)")
    p.add_argument(
        "--compression", default="zst", choices=["zst", "gz", "jsonl", "parquet"], help="output format (default: zst)"
    )
    p.add_argument("--attributes", nargs="*", help="attribute sets to carry along, realigned with the kept documents")
    p.add_argument("--batch-size", type=int, default=4096, help="documents per batch (bounds memory)")
    add_workers(p)
    p.set_defaults(fn=cmd_import)

    p = sub.add_parser(
        "web",
        help="WARC files or loose HTML to documents (trafilatura)",
        description=(
            "Extract the main text of HTTP 200 HTML responses in WARC files (and of loose .html files, one task per "
            "folder) with trafilatura, favouring precision. Every other record is counted as dropped with its reason; "
            "malformed records and pages whose extraction exceeds --timeout are quarantined."
        ),
    )
    p.add_argument("--input", required=True, help="glob or folder of .warc(.gz) and/or .html files")
    p.add_argument("--output", required=True, help="output documents folder")
    p.add_argument("--source", default="web", help="the documents' source field (default: web)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds allowed per page (default 10)")
    add_workers(p)
    p.set_defaults(fn=cmd_web)

    p = sub.add_parser(
        "pdf",
        help="PDF files to documents (PyMuPDF, Tesseract OCR for pages without text)",
        description=(
            "Extract PDFs in isolated worker processes with a time and memory limit each: two-column pages read "
            "column by column, running headers/footers and page numbers removed, hyphenation rejoined, pages "
            "without a text layer OCRed with Tesseract. Writes documents (id = SHA-1 of the PDF; metadata: pages, "
            "pages OCRed, tokens, length bucket, language) and per-page quality signals under "
            "attributes/pdf/. Encrypted, broken, hanging or oversized PDFs are quarantined with their reason."
        ),
    )
    p.add_argument("--input", required=True, help="glob or folder of .pdf files")
    p.add_argument("--output", required=True, help="output folder; must be a 'documents/' folder")
    p.add_argument("--source", help="the documents' source field (default: pdf)")
    p.add_argument("--timeout", type=float, help="seconds allowed per PDF, OCR included (default 180)")
    p.add_argument("--memory-mb", type=int, help="memory limit of each extraction process in MiB (default 3072)")
    p.add_argument("--no-ocr", dest="ocr", action="store_false", default=None, help="never OCR pages without text")
    p.add_argument("--ocr-language", help="Tesseract language(s), e.g. eng+deu (default eng)")
    p.add_argument("--files-per-shard", type=int, help="PDFs per output shard (default 64)")
    p.add_argument("--password", help="password tried on encrypted PDFs")
    add_workers(p)
    p.set_defaults(fn=cmd_pdf)

    p = sub.add_parser(
        "tokenize",
        help="documents to token-id shards (.npy + .csv.gz) for training",
        description=(
            "Tokenize documents with a Hugging Face tokenizer into raw memmap .npy files plus .csv.gz document "
            "indexes (start,end,id,src,loc), the format OLMo-core reads. EOS ends every document. Default "
            "tokenizer: allenai dolma2 (cl100k-based, vocab 100,278), bundled."
        ),
    )
    p.add_argument("--input", required=True, help="glob or directory of document files")
    p.add_argument("--output", required=True, help="output directory; gets manifest.json")
    p.add_argument("--tokenizer", help="tokenizer.json path or hub name (default: bundled dolma2)")
    p.add_argument("--eos-token", dest="eos_token", help="EOS token (default <|endoftext|>)")
    p.add_argument("--bos-token", dest="bos_token", help="also start each document with this token")
    p.add_argument("--max-tokens-per-file", dest="max_tokens_per_file", type=int, help="file size limit in tokens")
    p.add_argument("--seed", type=int, help="shuffle seed (default 0)")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="documents per tokenizer batch")
    add_workers(p)
    p.set_defaults(fn=cmd_tokenize)

    p = sub.add_parser(
        "tag",
        help="run taggers over documents into an attribute set",
        description=(
            "Run taggers (see `dolma list`) over documents under a documents/ folder; attributes go to the "
            "parallel attributes/EXPERIMENT/ tree, one line per document, as allenai dolma writes them."
        ),
    )
    p.add_argument("--documents", required=True, help="glob of document files under a 'documents/' folder")
    p.add_argument(
        "--taggers",
        nargs="+",
        required=True,
        help="tagger names, or YAML mappings with parameters: '{name: decontam_v1, eval_files: [x]}'",
    )
    p.add_argument("--experiment", default="tags", help="attribute set name (default: tags)")
    p.add_argument("--tagger-modules", nargs="*", help="modules or .py files that register more taggers")
    p.add_argument("--batch-size", type=int, default=1024, help="documents per batch")
    add_workers(p)
    p.set_defaults(fn=cmd_tag)

    p = sub.add_parser("list", help="list the registered taggers")
    p.add_argument("--tagger-modules", nargs="*", help="modules or .py files that register more taggers")
    p.set_defaults(fn=cmd_list)

    p = sub.add_parser(
        "train-classifier",
        help="train a fastText quality or domain classifier",
        description=(
            "Train a fastText classifier (DCLM-style: lower-cased text, word bigrams) from labelled documents, "
            "report held-out precision and recall per label, and save MODEL (+ MODEL.report.json). Use it with "
            "the fasttext_classifier_v1 tagger."
        ),
    )
    p.add_argument("--label", action="append", required=True, help="LABEL=GLOB of documents (repeat)")
    p.add_argument("--model", required=True, help="where to save the model (.bin)")
    p.add_argument("--epoch", type=int, default=20)
    p.add_argument("--lr", type=float, default=0.5)
    p.add_argument("--word-ngrams", type=int, default=2)
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--held-out", type=float, default=0.1, help="share of documents held out for the report")
    p.add_argument("--no-balance", action="store_true", help="keep every document (default: downsample labels)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_train_classifier)

    p = sub.add_parser("carve", help="a domain subset from classifier attributes, with a domain report")
    p.add_argument("--documents", required=True, help="glob of document files under a 'documents/' folder")
    p.add_argument("--attributes", required=True, help="attribute set with fasttext_classifier_v1 scores")
    p.add_argument("--labels", nargs="+", required=True, help="labels to keep")
    p.add_argument("--threshold", type=float, default=0.5, help="minimum probability (default 0.5)")
    p.add_argument("--output", required=True, help="output folder for the subset")
    add_workers(p)
    p.set_defaults(fn=cmd_carve)

    p = sub.add_parser(
        "dedup",
        help="exact or MinHash-LSH document dedup, as duplicate attributes",
        description=(
            "Find duplicate documents (exact normalised text, or MinHash LSH near-duplicates) in five restartable "
            "steps: signatures per shard, candidate pairs per band, Jaccard verification per pair of shards, clusters "
            "and attributes per shard (<name>__<method>__duplicate / cluster_size / cluster). Prints the S-curve."
        ),
    )
    p.add_argument("--documents", required=True, help="glob of document files under a 'documents/' folder")
    p.add_argument("--work", required=True, help="folder for intermediates (bands, edges, clusters, ledgers)")
    p.add_argument("--name", default="dedup", help="attribute set name (default: dedup)")
    p.add_argument("--method", choices=["minhash", "exact"], default="minhash")
    p.add_argument(
        "--preset",
        choices=["dolma3", "fineweb", "none"],
        default="dolma3",
        help="dolma3: 5-grams, 26x11, Jaccard 0.8 (default); fineweb: 5-grams, 14x8",
    )
    p.add_argument("--ngram", type=int)
    p.add_argument("--bands", type=int)
    p.add_argument("--rows", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--jaccard-threshold",
        dest="jaccard_threshold",
        type=float,
        help="verify candidates by true Jaccard (omit with a custom preset to skip)",
    )
    p.add_argument(
        "--keeper",
        nargs="+",
        default=["quality", "newest", "longest", "lowest_id"],
        help="keeper order within a cluster (default: quality newest longest lowest_id)",
    )
    p.add_argument(
        "--quality-attribute", help="SET/KEY whose score ranks 'quality', e.g. q/q__fasttext_classifier_v1__hq"
    )
    p.add_argument(
        "--pair-partitions",
        dest="pair_partitions",
        type=int,
        default=1,
        help="key ranges per band in the pairs step (memory: 1/N of a band over the corpus; default 1)",
    )
    add_workers(p)
    p.set_defaults(fn=cmd_dedup)

    p = sub.add_parser(
        "dedup-paragraphs",
        help="paragraph-level dedup with a Bloom filter (spans)",
        description=(
            "Mark paragraphs (lines) whose word n-grams were mostly seen before, in this corpus or in a saved Bloom "
            "filter, as allenai dolma's paragraph dedupe does. Save the filter with --bloom-out to dedup a later "
            "dataset against this one; use --bloom-in with --read-only to check against a reference set."
        ),
    )
    p.add_argument("--documents", required=True, help="glob of document files under a 'documents/' folder")
    p.add_argument("--name", default="paragraph_dedup", help="attribute set name")
    p.add_argument("--ngram", type=int, default=13, help="n-gram length in words (default 13)")
    p.add_argument(
        "--overlap-threshold",
        dest="overlap_threshold",
        type=float,
        default=0.5,
        help="share of a paragraph's n-grams already seen that makes it a duplicate (default 0.5)",
    )
    p.add_argument(
        "--expected-ngrams",
        dest="expected_ngrams",
        type=int,
        default=100_000_000,
        help="sizes the filter (with --false-positive-rate)",
    )
    p.add_argument("--false-positive-rate", dest="false_positive_rate", type=float, default=1e-4)
    p.add_argument("--bloom-in", dest="bloom_in", help="start from this saved filter")
    p.add_argument("--bloom-out", dest="bloom_out", help="save the filter here after the run")
    p.add_argument("--read-only", dest="read_only", action="store_true", help="check only; add nothing")
    add_workers(p)
    p.set_defaults(fn=cmd_dedup_paragraphs)

    p = sub.add_parser(
        "mix-plan",
        help="plan a mix from a written description of a pool (no documents)",
        description="Solve the value-weighted repetition plan from statistics only (see "
        "configs/mix/dolma3-300T-to-6T.yaml) and print it.",
    )
    p.add_argument("pool", help="pool description YAML: target_tokens, shares, groups with bucket_tokens")
    p.add_argument("--output", help="write OUTPUT.json and OUTPUT.png")
    p.set_defaults(fn=cmd_mix_plan)

    p = sub.add_parser("stats", help="summarise a tokenize output and check its document boundaries")
    p.add_argument("folder", help="a tokenize output folder (with manifest.json)")
    p.set_defaults(fn=cmd_stats)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume from the finished shards", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
