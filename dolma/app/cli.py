"""The ``dolma`` command line: a subcommand per stage (generated from the stage's dataclass), ``run`` for
whole recipes, and the commands that look at or plan data without running a stage.

Every error a user can cause is a :class:`UserError`: one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time

from rich.console import Console
from rich.table import Table

from dolma import io
from dolma.app.commands import STAGE_COMMANDS, StageCommand, add_allenai_dedupe, add_allenai_mix, allenai_tag_args
from dolma.app.estimate import add_estimate
from dolma.app.options import VersionAction, add_options, given
from dolma.app.progress import RichProgress, print_summary, print_table
from dolma.app.recipe import build_stage, load_recipe, stage_class
from dolma.core.errors import UserError
from dolma.runtime.executors import LocalExecutor
from dolma.runtime.run import dry_run, run_stages
from dolma.runtime.stage import expand


def _force(args: argparse.Namespace) -> bool | list[str]:
    return True if args.force == [] else (args.force or False)


def cmd_run(args: argparse.Namespace) -> None:
    from dolma.app.report import write_report

    recipe, stages = load_recipe(args.recipe)
    unknown = sorted(set(args.force or []) - {s.name for s in stages})
    if unknown:
        raise UserError(f"--force: no stage named {unknown[0]!r}; stages: {', '.join(s.name for s in stages)}")
    if args.dry_run:
        print("\n".join(dry_run(stages, _force(args))))
        return
    print_summary(run_stages(stages, recipe.executor.build(args.workers), RichProgress(), _force(args)))
    for stage in stages:
        for table in stage.result_tables():
            print_table(table)
    print("outputs: " + ", ".join(sorted({s.output for s in stages if not s.intermediate})))
    print(f"report: {write_report(stages, args.recipe)}")


def cmd_plan(args: argparse.Namespace) -> None:
    _, stages = load_recipe(args.recipe)
    print("\n".join(dry_run(stages)))


def cmd_report(args: argparse.Namespace) -> None:
    from dolma.app.report import write_report

    _, stages = load_recipe(args.recipe)
    print(f"report: {write_report(stages, args.recipe, args.output)}")


def cmd_stage(command: StageCommand, args: argparse.Namespace) -> None:
    stage = build_stage(command.kind, given(args, stage_class(command.kind)), command.kind)
    if command.before:
        command.before(stage)
    results = run_stages(expand([stage]), LocalExecutor(args.workers), RichProgress(), bool(args.force))
    print_summary(results)
    if command.after:
        command.after(stage, results)


def cmd_stats(args: argparse.Namespace) -> None:
    import numpy as np

    from dolma.tokenize.reader import TokenReader

    if not io.exists(io.join(args.folder, "manifest.json")):
        raise UserError(f"{args.folder!r} has no manifest.json; is it a tokenize output?")
    reader = TokenReader(args.folder)
    m = reader.manifest
    table = Table(title=f"{args.folder}: {m.tokens:,} tokens, {m.documents:,} documents, {len(m.files)} files")
    for col in ("source", "documents", "tokens", "share"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for source, tokens in m.tokens_per_source.items():
        table.add_row(source, f"{m.documents_per_source[source]:,}", f"{tokens:,}", f"{tokens / max(m.tokens, 1):.1%}")
    Console().print(table)
    for entry in m.files:  # one file at a time, and its tokens a chunk at a time: memory is not the file's size
        ends = reader.ends(entry)
        if not np.array_equal(ends, reader.eos_boundaries(entry)) or (len(ends) and ends[-1] != entry.tokens):
            raise UserError(f"{entry.npy}: document boundaries in {entry.csv} do not match its EOS tokens")
    print(
        f"tokenizer {m.tokenizer.name} (sha256 {m.tokenizer.sha256[:12]}…, vocab {m.tokenizer.vocab_size:,}, "
        f"{m.tokenizer.dtype}); every file's CSV boundaries match its EOS positions"
    )


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
    keys = ("epoch", "lr", "word_ngrams", "dim", "bucket", "held_out", "seed")
    params = TrainParams(
        **{k: getattr(args, k) for k in keys}, balance=not args.no_balance, quantize=not args.no_quantize
    )
    report = train_classifier(labelled, args.model, params)
    size = f"{report.model_bytes / 1e6:.1f} MB"
    before = f" ({report.accuracy_unquantised:.3f} before quantisation)" if params.quantize else ""
    table = Table(title=f"{args.model} ({size}): held-out accuracy {report.accuracy:.3f}{before}")
    for col in ("label", "train", "held out", "precision", "recall", "F1"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for r in report.labels:
        table.add_row(r.label, str(r.train), str(r.held_out), f"{r.precision:.3f}", f"{r.recall:.3f}", f"{r.f1:.3f}")
    Console().print(table)


def cmd_mix_plan(args: argparse.Namespace) -> None:
    from dolma import io
    from mixers.offline import plan_from_description
    from mixers.plan import plan_result, write_plan_plot

    started = time.perf_counter()
    plan = plan_from_description(args.pool)
    print_table(plan_result(plan))
    if args.output:
        io.write_json(args.output + ".json", plan)
        write_plan_plot(plan, args.output + ".png")
        print(f"plan: {args.output}.json, curves: {args.output}.png")
    print(f"planned in {time.perf_counter() - started:.2f} s")


def _recipe_stages(path: str | None, what: str) -> list:
    if not path:
        raise UserError(f"{what} needs --recipe: the recipe whose run's ledgers to read")
    return expand(load_recipe(path)[1])


def cmd_show(args: argparse.Namespace) -> None:
    from dolma.app import inspect

    where = inspect.parse_location(args.where)
    if where is None:
        rows = inspect.ledger_rows(_recipe_stages(args.recipe, "show ID"), id=args.where)
        rows = rows.filter(rows["outcome"] == "kept")
        if not rows.height:
            raise UserError(f"no stage of the recipe kept a document with id {args.where!r} (see `dolma trace`)")
        where = (rows["file"][-1], int(rows["line"][-1]))  # the last stage that read it: the newest copy
    doc = inspect.document_at(*where)
    console = Console()
    console.print(f"[bold]{doc.id}[/bold]  {where[0]}:{where[1]}  source={doc.source!r} created={doc.created!r}")
    console.print(f"metadata: {bytes(doc.metadata).decode()[:1000]}", markup=False)
    text = doc.text if len(doc.text) <= args.chars else doc.text[: args.chars] + f"… ({len(doc.text):,} characters)"
    console.print(text, markup=False, highlight=False)
    table = Table(title="attributes")
    for col in ("set", "key", "spans", "first [start, end, score]"):
        table.add_column(col, overflow="fold")
    for name, attrs in inspect.attributes_at(*where).items():
        for key, spans in sorted(attrs.items()):
            table.add_row(name, key, str(len(spans)), ", ".join(str(list(x)) for x in spans[:3]))
    console.print(table)


def cmd_trace(args: argparse.Namespace) -> None:
    from dolma.app import inspect

    stages = _recipe_stages(args.recipe, "trace")
    by_name = {s.name: s for s in stages}
    rows = inspect.ledger_rows(stages, id=args.id)
    if not rows.height:
        raise UserError(f"no stage of the recipe read a document with id {args.id!r}")
    table = Table(title=f"{args.id}: {rows.height} ledger rows")
    for col in ("stage", "file:line", "outcome", "reason", "detail"):
        table.add_column(col, overflow="fold")
    for r in rows.iter_rows(named=True):
        places = inspect.token_places(by_name[r["stage"]], r["file"], args.id) if r["outcome"] == "kept" else []
        detail = r["detail"] or ("tokens: " + ", ".join(places) if places else "")
        table.add_row(r["stage"], f"{r['file']}:{r['line']}", r["outcome"], r["reason"] or "", detail)
    Console().print(table)


def cmd_sample(args: argparse.Namespace) -> None:
    from dolma.app import inspect

    stages = _recipe_stages(args.recipe, "sample")
    console = Console()
    for r in inspect.sample_removed(stages, args.stage, args.reason, args.n, args.seed).iter_rows(named=True):
        console.rule(f"{r['id']}  {r['outcome']}: {r['reason']}  {r['file']}:{r['line']}")
        if r["outcome"] == "quarantined":
            raw = inspect.quarantined_line(stages, args.stage, r["file"], r["line"]) or "(no raw line)"
            console.print(raw[: args.chars], markup=False, highlight=False)
        elif not r["file"].endswith(io.DOC_SUFFIXES):  # a WARC record, a PDF: its input is not a document line
            console.print(f"record {r['line']} of {r['file']} (not a document file); detail: {r['detail'] or '-'}")
        else:
            text = inspect.document_at(r["file"], r["line"]).text
            console.print(text[: args.chars] + ("…" if len(text) > args.chars else ""), markup=False, highlight=False)


def _inspect_commands(sub) -> None:
    p = _command(
        sub, "show", "Print a document with all its attributes.",
        "FILE:LINE reads that line; an ID is looked up in the ledgers of --recipe (the newest kept copy).",
        "dolma show out/quickstart/documents/go-src.jsonl.zst:80",
    )  # fmt: skip
    p.add_argument("where", help="FILE:LINE (1-based) or a document id (with --recipe)")
    p.add_argument("--recipe", help="the recipe whose run to look in (for an id)")
    p.add_argument("--chars", type=int, default=2000, help="characters of text to print (default 2000)")
    p.set_defaults(fn=cmd_show)

    p = _command(
        sub, "trace", "Print a document's path through every stage of a recipe's run.",
        "One row per stage that read it: file and line, kept, dropped (why) or quarantined (why), and the detail "
        "(a duplicate's keeper, a rule's value).",
        "dolma trace d4d235124befc8664268 --recipe configs/quickstart.yaml",
    )  # fmt: skip
    p.add_argument("id", help="the document id")
    p.add_argument("--recipe", required=True, help="the recipe that was run")
    p.set_defaults(fn=cmd_trace)

    p = _command(
        sub, "sample", "Print random documents a stage removed, to judge a rule by its victims.",
        "Seeded: the same command prints the same documents. --reason matches part of the reason.",
        "dolma sample --recipe configs/quickstart.yaml --stage mix-pretrain-stats --reason ft_lang_id -n 5",
    )  # fmt: skip
    p.add_argument("--recipe", required=True, help="the recipe that was run")
    p.add_argument("--stage", required=True, help="a stage name (see the run's summary table)")
    p.add_argument("--reason", default="", help="only removals whose reason contains this")
    p.add_argument("-n", type=int, default=10, help="how many (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draw (default 0)")
    p.add_argument("--chars", type=int, default=600, help="characters of each text to print (default 600)")
    p.set_defaults(fn=cmd_sample)


def _command(sub, name: str, summary: str, detail: str, example: str) -> argparse.ArgumentParser:
    """A subcommand whose help starts with what it does and ends with an example."""
    return sub.add_parser(
        name,
        help=summary[0].lower() + summary[1:].rstrip("."),
        description=f"{summary} {detail}".strip(),
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _add_workers(parser: argparse.ArgumentParser, default: str = "all cores") -> None:
    parser.add_argument("--workers", type=int, help=f"worker processes (default: {default})")


def _tool_commands(sub) -> None:
    """The commands that are not one stage: run, plan, report, then those of :func:`_data_commands`."""
    p = _command(
        sub, "run", "Run every stage of a YAML recipe, in order.",
        "Finished shards are skipped, so rerunning after a crash resumes. Ends with a summary table, the mix "
        "plans, the output folders and an HTML report (see `dolma report`).",
        "dolma run configs/quickstart.yaml --workers 2",
    )  # fmt: skip
    p.add_argument("recipe", help="path to the recipe YAML")
    _add_workers(p, "the recipe's, else all cores")
    p.add_argument("--force", nargs="*", metavar="STAGE", help="redo every task (of the named stages only, if given)")
    p.add_argument("--dry-run", action="store_true", help="print what would be skipped and redone, and why")
    p.set_defaults(fn=cmd_run)

    p = _command(
        sub, "plan", "Print what `dolma run` would skip, redo and why, without running anything.",
        "A task is skipped when its fingerprint (parameters, inputs' identities, format version) matches its "
        "last run's; stages after one with work to do are redone where their inputs change.",
        "dolma plan configs/quickstart.yaml",
    )  # fmt: skip
    p.add_argument("recipe", help="path to the recipe YAML")
    p.set_defaults(fn=cmd_plan)

    p = _command(
        sub, "report", "Write the HTML report of a recipe's run.",
        "A self-contained page (plots inlined, no network needed) of what the run left behind: the funnel of "
        "every stage with what each filter removed, language and quality score distributions, duplicate cluster "
        "sizes, each mix's repetition curves and realised vs target shares, and the token lengths of the PDF "
        "(long-context) pool. `dolma run` writes it at the end of every run.",
        "dolma report configs/quickstart.yaml --output /tmp/report.html",
    )  # fmt: skip
    p.add_argument("recipe", help="path to the recipe YAML that was run")
    p.add_argument("--output", help="where to write it (default: report.html in the common output folder)")
    p.set_defaults(fn=cmd_report)

    _data_commands(sub)
    _inspect_commands(sub)


def _data_commands(sub) -> None:
    p = _command(sub, "list", "List the registered taggers.", "", "dolma list --tagger-modules my_taggers.py")
    p.add_argument("--tagger-modules", nargs="*", help="modules or .py files that register more taggers")
    p.set_defaults(fn=cmd_list)

    p = _command(
        sub, "train-classifier", "Train a fastText quality or domain classifier from labelled documents.",
        "DCLM-style (lower-cased text, word bigrams); reports held-out precision and recall per label and saves "
        "MODEL (+ MODEL.report.json). Use it with the fasttext_classifier_v1 tagger.",
        "dolma train-classifier --label hq='wiki/*.gz' --label lq='crawl/*.gz' --model quality.bin",
    )  # fmt: skip
    p.add_argument("--label", action="append", required=True, help="LABEL=GLOB of documents (repeat)")
    p.add_argument("--model", required=True, help="where to save the model (.bin)")
    p.add_argument("--epoch", type=int, default=20, help="training epochs (default 20)")
    p.add_argument("--lr", type=float, default=0.5, help="learning rate (default 0.5)")
    p.add_argument("--word-ngrams", type=int, default=2, help="word n-grams (default 2)")
    p.add_argument("--dim", type=int, default=100, help="vector size (default 100)")
    p.add_argument("--bucket", type=int, default=200_000, help="hashed word n-gram rows (default 200000)")
    p.add_argument("--no-quantize", action="store_true", help="save the full model (default: quantised, .ftz-sized)")
    p.add_argument("--held-out", type=float, default=0.1, help="share of documents held out for the report")
    p.add_argument("--no-balance", action="store_true", help="keep every document (default: downsample labels)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the downsampling")
    p.set_defaults(fn=cmd_train_classifier)

    p = _command(
        sub, "mix-plan", "Plan a mix from a written description of a pool, with no documents.",
        "Solves the value-weighted repetition plan from statistics only (see configs/mix/dolma3-300T-to-6T.yaml) "
        "and prints it.",
        "dolma mix-plan configs/mix/dolma3-300T-to-6T.yaml --output /tmp/plan",
    )  # fmt: skip
    p.add_argument("pool", help="pool description YAML: target_tokens, shares, groups with bucket_tokens")
    p.add_argument("--output", help="write OUTPUT.json and OUTPUT.png")
    p.set_defaults(fn=cmd_mix_plan)

    p = _command(
        sub, "stats", "Summarise a tokenize output and check its document boundaries.",
        "Prints tokens and documents per source and checks that every file's CSV boundaries match its EOS tokens.",
        "dolma stats out/quickstart/tokens/pretrain",
    )  # fmt: skip
    p.add_argument("folder", help="a tokenize output folder (with manifest.json)")
    p.set_defaults(fn=cmd_stats)


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """Every subcommand; a stage command's options are generated from its stage class, which means importing
    the stage's package, so with ``chosen`` (the command being run) only that one gets them: the others are
    listed with their summaries, which is all ``dolma --help`` shows."""
    parser = argparse.ArgumentParser(
        prog="dolma",
        description="Curate pretraining data in the Dolma format: import, tag, dedup, mix and tokenize shards, "
        "with a ledger that accounts for every document (see README.md).",
        epilog="example:\n  dolma run configs/quickstart.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=VersionAction)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    parser.add_argument("-c", "--config", dest="top_config", help="a config for the command (`dolma -c F mix`)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _tool_commands(sub)
    add_allenai_mix(sub, _command)
    add_allenai_dedupe(sub, _command)
    add_estimate(sub, _command)
    for command in STAGE_COMMANDS:
        p = _command(sub, command.command, command.summary, command.detail, command.example)
        if chosen is not None and command.command != chosen:
            continue
        add_options(p, stage_class(command.kind), command.names)
        _add_workers(p)
        p.add_argument("--force", action="store_true", help="redo every task, even those whose inputs did not change")
        p.set_defaults(fn=lambda args, command=command: cmd_stage(command, args))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    stages = {c.command for c in STAGE_COMMANDS}
    chosen = next((a for a in argv if a in stages), "")  # "": no stage command, so no stage's options are built
    args = allenai_tag_args(argv) or build_parser(chosen).parse_args(argv)
    try:
        args.fn(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume from the finished shards", file=sys.stderr)
        return 130
    except Exception as e:  # anything unforeseen: one line for the user, the traceback with --debug
        if args.debug:
            raise
        print(f"error: {type(e).__name__}: {e} (rerun with `dolma --debug ...` for the traceback)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
