"""The ``dolma`` command line: one subcommand per stage, plus ``run`` for whole recipes."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dolma.executor import LocalExecutor, run_stage
from dolma.io import UserError
from dolma.ledger import ShardSummary
from dolma.recipe import build_stage, load_recipe

console = Console(stderr=True)


def run_stages(stages: list[Any], workers: int | None) -> list[tuple[str, ShardSummary, float]]:
    """Run stages in order with a progress bar each; return (name, summary, seconds) per stage."""
    executor = LocalExecutor(workers)
    results = []
    for stage in stages:
        tasks_total = len(stage.tasks())
        started = time.perf_counter()
        counts = {"docs": 0, "bytes": 0}
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("shards · {task.fields[docs]:,} docs · {task.fields[dps]:,.0f} docs/s · {task.fields[mbps]:.1f} MB/s"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            bar = progress.add_task(stage.name, total=tasks_total, docs=0, dps=0.0, mbps=0.0)

            def on_progress(docs: int, nbytes: int) -> None:
                counts["docs"] += docs
                counts["bytes"] += nbytes
                elapsed = max(time.perf_counter() - started, 1e-6)
                progress.update(bar, docs=counts["docs"], dps=counts["docs"] / elapsed,
                                mbps=counts["bytes"] / elapsed / 1e6)

            summary = run_stage(stage, executor, on_progress, lambda key, s: progress.advance(bar))
            progress.update(bar, completed=tasks_total)
        results.append((stage.name, summary, time.perf_counter() - started))
    return results


def print_summary(results: list[tuple[str, ShardSummary, float]]) -> None:
    table = Table(title="Summary", show_lines=False)
    for col in ("stage", "read", "kept", "dropped", "quarantined", "seconds"):
        table.add_column(col, justify="right" if col not in ("stage", "dropped", "quarantined") else "left")
    for name, s, seconds in results:
        fmt = lambda d: "\n".join(f"{k}: {v:,}" for k, v in d.items()) or "0"  # noqa: E731
        table.add_row(name, f"{s.read:,}", f"{s.kept:,}", fmt(s.dropped), fmt(s.quarantined), f"{seconds:.1f}")
    Console().print(table)


def cmd_run(args: argparse.Namespace) -> None:
    recipe, stages = load_recipe(args.recipe)
    workers = args.workers or recipe.executor.workers
    print_summary(run_stages(stages, workers))


def cmd_import(args: argparse.Namespace) -> None:
    params = {"input": args.input, "output": args.output, "compression": args.compression,
              "attributes": args.attributes or [], "batch_size": args.batch_size}
    stage = build_stage("import", params, "import")
    print_summary(run_stages([stage], args.workers))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dolma",
        description="Curate pretraining data in the Dolma format: import, tag, dedup, mix and tokenize shards, "
        "with a ledger that accounts for every document (see README.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run every stage of a YAML recipe", description=(
        "Run a YAML recipe (see configs/). Finished shards are skipped, so rerunning after a crash resumes."))
    p.add_argument("recipe", help="path to the recipe YAML")
    p.add_argument("--workers", type=int, help="worker processes (default: the recipe's, else all cores)")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("import", help="validate documents into a clean tree, quarantining bad lines", description=(
        "Read Dolma documents (.jsonl, .jsonl.gz, .jsonl.zst, .parquet; local, s3:// or gs://), check every line, "
        "and write the usable ones to OUTPUT with the same relative paths. Unusable lines go to "
        "OUTPUT/_ledger/import/quarantine with file, line and reason."))
    p.add_argument("--input", required=True, help="glob or directory of document files, e.g. 'data/documents/*.gz'")
    p.add_argument("--output", required=True, help="output directory (a 'documents/' folder if --attributes)")
    p.add_argument("--compression", default="zst", choices=["zst", "gz", "jsonl", "parquet"],
                   help="output format (default: zst)")
    p.add_argument("--attributes", nargs="*", help="attribute sets to carry along, realigned with the kept documents")
    p.add_argument("--batch-size", type=int, default=4096, help="documents per batch (bounds memory)")
    p.add_argument("--workers", type=int, help="worker processes (default: all cores)")
    p.set_defaults(fn=cmd_import)
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
