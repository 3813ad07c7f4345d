"""What the command line shows while stages run and after: a progress bar per stage, a summary, result tables."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bars
from rich.table import Table

from dolma.runtime.ledger import ShardSummary
from dolma.runtime.report import ResultTable
from dolma.runtime.run import StageResult
from dolma.runtime.stage import Stage
from dolma.runtime.state import StagePlan

console = Console(stderr=True)


class RichProgress:
    """A :class:`dolma.runtime.run.Progress` drawing one bar per stage: shards done, documents, docs/s, MB/s."""

    def __init__(self) -> None:
        self._bars: Bars | None = None

    def start(self, stage: Stage, tasks: int) -> None:
        self._started = time.perf_counter()
        self._docs = self._bytes = 0
        self._total = tasks
        self._bars = Bars(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "shards · {task.fields[docs]:,} docs · {task.fields[dps]:,.0f} docs/s · {task.fields[mbps]:.1f} MB/s"
            ),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._bars.start()
        self._bar = self._bars.add_task(stage.name, total=tasks, docs=0, dps=0.0, mbps=0.0)

    def planned(self, stage: Stage, plan: StagePlan) -> None:
        tasks = plan.skip + [t for t, _ in plan.redo] + plan.new
        basis = stage.task_basis(tasks)
        console.print(
            f"[bold]{stage.name}[/]: {len(tasks):,} task{'s' * (len(tasks) != 1)}" + (f", {basis}" if basis else "")
        )
        if plan.skip or plan.redo or plan.stale:  # a first run needs no explanation
            console.print(plan.describe(stage.name))

    def documents(self, docs: int, nbytes: int) -> None:
        self._docs += docs
        self._bytes += nbytes
        elapsed = max(time.perf_counter() - self._started, 1e-6)
        self._bars.update(self._bar, docs=self._docs, dps=self._docs / elapsed, mbps=self._bytes / elapsed / 1e6)

    def task_done(self, key: str, summary: ShardSummary) -> None:
        self._bars.advance(self._bar)

    def end(self, stage: Stage, summary: ShardSummary) -> None:
        self._bars.update(self._bar, completed=self._total)
        self._bars.stop()


def print_summary(results: list[StageResult]) -> None:
    table = Table(title="Summary", show_lines=False)
    for col in ("stage", "read", "kept", "dropped", "quarantined", "seconds"):
        table.add_column(col, justify="right" if col not in ("stage", "dropped", "quarantined") else "left")
    for r in results:
        s = r.summary
        fmt = lambda d: "\n".join(f"{k if len(k) <= 48 else k[:47] + '…'}: {v:,}" for k, v in d.items()) or "0"  # noqa: E731
        table.add_row(r.name, f"{s.read:,}", f"{s.kept:,}", fmt(s.dropped), fmt(s.quarantined), f"{r.seconds:.1f}")
    Console().print(table)


def print_table(result: ResultTable) -> None:
    table = Table(title=result.title)
    for i, col in enumerate(result.columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in result.rows:
        table.add_row(*row)
    Console().print(table)
