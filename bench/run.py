"""Side-by-side benchmarks that time every contender the same way (see ``bench.harness``).

    python -m bench.run                       every task, 3 rounds; rewrites BENCHMARKS.md's generated part
                                              and BENCHMARKS.csv (about 35 minutes on 2 cores)
    python -m bench.run --quick               small inputs, 2 rounds, under 5 minutes; writes only bench/results/
    python -m bench.run --only mix,tokenize   some tasks (results in bench/results/, BENCHMARKS.md untouched)
    python -m bench.run --only scale          how cost grows with the corpus (bench.scale)
    python -m bench.run --only shards         peak memory per stage on one 250 MB and one 1 GB shard (bench.shards)

Each contender is a whole command in a fresh process: ours through the ``dolma`` CLI as a user runs it (ledger
and completion markers included), each peer through its own command line in its own venv (``bench.peers``),
and ceilings through ``bench.ceilings``. One worker and one thread each. Every task checks that the contenders
produced equivalent outputs and stops the run otherwise. Peers install into their own venvs on first use.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench.harness import measure, slug
from bench.paths import CORPORA, ROOT
from bench.report import Outcome, print_outcome, write_benchmarks, write_csv
from bench.tasks import TASKS


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{model}, {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"


def versions() -> str:
    from importlib.metadata import version

    ours = ", ".join(f"{p} {version(p)}" for p in ("polars", "pyarrow", "numpy", "msgspec", "tokenizers", "pymupdf"))
    from bench.peers import peers_dir

    peers = []
    for venv, package in (("allenai-dolma", "dolma"), ("datatrove", "datatrove")):
        pip = peers_dir() / venv / "bin" / "pip"
        if pip.exists():
            show = subprocess.run([str(pip), "show", package], capture_output=True, text=True).stdout
            peers += [f"{venv} {line.split()[1]}" for line in show.splitlines() if line.startswith("Version:")]
    if shutil.which("pdftotext"):
        peers.append(subprocess.run(["pdftotext", "-v"], capture_output=True, text=True).stderr.split("\n")[0])
    return f"ours with {ours}; peers: {', '.join(peers)}"


def _scale() -> None:
    from bench.scale import main

    main()


def _shards() -> None:
    from bench.shards import main

    main()


SEPARATE = {"scale": _scale, "shards": _shards}  # their own commands and result files, not the side-by-side table


def run_task(name: str, corpora: Path, work: Path, rounds: int, quick: bool) -> Outcome:
    print(f"== {name}", flush=True)
    started = time.time()
    folder = work / name
    task = TASKS[name](corpora, folder, quick)
    runs = measure(task, rounds, folder / "runs")
    large = {c.name: folder / "runs" / slug(c.name) / "large" for c in task.contenders}
    check = task.check(large)
    outcome = Outcome(task, runs, check, time.time() - started)
    print_outcome(outcome)
    shutil.rmtree(folder, ignore_errors=True)
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", default=str(CORPORA))
    parser.add_argument("--rounds", type=int, help="rounds of every contender (default 3; --quick: 2)")
    parser.add_argument("--quick", action="store_true", help="small inputs and 2 rounds: a developer's check")
    parser.add_argument("--only", help="comma-separated tasks: " + ",".join([*TASKS, *SEPARATE]))
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(TASKS)
    unknown = [t for t in chosen if t not in TASKS and t not in SEPARATE]
    if unknown:
        parser.error(f"unknown task {unknown[0]!r}; tasks: {', '.join([*TASKS, *SEPARATE])}")
    for name in [t for t in chosen if t in SEPARATE]:
        sys.argv = [sys.argv[0], "--corpora", args.corpora]
        SEPARATE[name]()
        chosen.remove(name)
    rounds = args.rounds or (2 if args.quick else 3)
    compile_bytecode()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H%MZ")
    outcomes: list[Outcome] = []
    full = not args.quick and not args.only and rounds >= 3
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in chosen:
                outcomes.append(run_task(name, Path(args.corpora), Path(tmp), rounds, args.quick))
    except BaseException:  # a failed check or contender: what finished is kept, BENCHMARKS.md is not touched
        if outcomes:
            write_results(outcomes, rounds, f"{stamp}-partial", False, args.quick)
        raise
    if outcomes:
        write_results(outcomes, rounds, stamp, full, args.quick)


def compile_bytecode() -> None:
    """Our packages' bytecode, compiled once before anything is timed, as pip compiles a package it installs
    (and as a first run leaves it): where ``PYTHONDONTWRITEBYTECODE`` is set, an editable checkout would
    otherwise compile every module it imports from source on every command, a cost no installed copy has.
    The peers are installed by pip into their venvs, so theirs is compiled already."""
    packages = [str(ROOT / p) for p in ("dolma", "taggers", "mixers", "pdf_extract")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], check=True, capture_output=True)


def write_results(outcomes: list[Outcome], rounds: int, stamp: str, full: bool, quick: bool) -> None:
    """BENCHMARKS.md's generated part and BENCHMARKS.csv after a full run; otherwise both under bench/results/."""
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    name = f"{stamp}{'-quick' if quick else ''}"
    csv_path = ROOT / "BENCHMARKS.csv" if full else results / f"{name}.csv"
    write_csv(outcomes, csv_path)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    header = [
        f"Run {stamp} (`python -m bench.run{' --quick' if quick else ''}`) of commit {commit.stdout.strip()}, "
        f"{rounds} rounds: {machine()}.",
        f"Versions: {versions()}.",
        f"Total {sum(o.seconds for o in outcomes) / 60:.1f} minutes.",
    ]
    md = ROOT / "BENCHMARKS.md" if full else results / f"{name}.md"
    write_benchmarks(outcomes, header, md, csv_path.name)
    (results / f"{name}.json").write_text(
        json.dumps({"header": header, "checks": {o.task.name: o.check for o in outcomes}}, indent=2, default=str)
    )
    print(f"results: {md} and {csv_path}")


if __name__ == "__main__":
    main()
