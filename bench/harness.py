"""The one way every contender is timed: a whole command in a fresh process, at two input sizes, round by round.

A task names its contenders (ours through the ``dolma`` CLI exactly as a user runs it, each peer's own command,
and ceilings: the fastest honest way to do the fixed part of the work with the libraries we use), two input
sizes, an equivalence check and its targets. Each round runs every contender on the small and then the large
input, the order of contenders reversed every other round (the machines are shared and noisy). A run is one
process started for it (by a small launcher, see ``LAUNCHER``); its CPU seconds (user + system, the process and
every child it reaped) and peak RSS come from the kernel's accounting of the finished process (``wait4``), its
wall seconds from a monotonic clock.

From each round come, per contender: the marginal rate (the extra amount over the extra CPU seconds from the
small input to the large one, so interpreter start-up and other fixed costs cancel out), the fixed cost (the
small run's CPU seconds less its amount at that rate: start-up as a figure of its own) and the end-to-end rate
on the large input. Ratios are taken round by round (ours over the other in the same round) and printed as
min / median / max; a target is met when its median ratio reaches the bound. Every run's raw numbers become a
row of the CSV.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

NOISE_CPU = 0.1  # CPU seconds the large input must add over the small one for a marginal rate to mean anything
ONE_THREAD = {
    "RAYON_NUM_THREADS": "1",
    "POLARS_MAX_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


@dataclass(frozen=True)
class Size:
    """One input size of a task: its label, the amount of work in the task's unit, and what the commands read."""

    label: str
    amount: float
    inputs: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class Contender:
    """A command line for an input size and a fresh output folder; ``role`` is ours, peer or ceiling.
    ``prepare`` runs untimed in the fresh folder first (e.g. links to the input for a tool that writes its
    attributes beside its documents)."""

    name: str
    role: Literal["ours", "peer", "ceiling"]
    command: Callable[[Size, Path], list[str]]
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[Size, Path], None] | None = None


@dataclass(frozen=True)
class Target:
    """``ours`` over ``other`` (marginal rate, end-to-end rate), or ours' fixed cost under ``bound`` seconds:
    the CPU seconds of its run on the small input, which for that target is a handful of documents."""

    ours: str
    other: str | None
    bound: float
    kind: Literal["marginal", "end_to_end", "fixed_seconds"] = "marginal"

    def describe(self) -> str:
        if self.kind == "fixed_seconds":
            return f"{self.ours}: fixed cost under {self.bound} s"
        what = "marginal" if self.kind == "marginal" else "end to end"
        return f"{self.ours} ≥ {self.bound}× {self.other} ({what})"


@dataclass
class Task:
    name: str
    unit: str  # what ``Size.amount`` counts: "MB", "tokens", "documents", "pages", "records"
    sizes: tuple[Size, Size]
    contenders: list[Contender]
    check: Callable[[dict[str, Path]], dict]  # contender -> its large-size output folder; raises if unequal
    targets: list[Target] = field(default_factory=list)
    about: str = ""


@dataclass(frozen=True)
class Run:
    task: str
    contender: str
    role: str
    size: str
    round: int
    amount: float
    cpu_s: float
    wall_s: float
    peak_rss_mb: float


class ContenderFailed(RuntimeError):
    pass


# Linux gives an exec'd child the peak RSS of the process it was forked from as its own starting peak, so a
# harness grown large would lend every contender its size: a small launcher starts each one and reports it.
LAUNCHER = """
import json, os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
_, status, ru = os.wait4(proc.pid, 0)
wall = time.perf_counter() - start
json.dump([ru.ru_utime + ru.ru_stime, wall, ru.ru_maxrss / 1024], open(sys.argv[1], "w"))
sys.exit(os.waitstatus_to_exitcode(status) & 255)
"""


def run_once(argv: list[str], env: dict[str, str], out: Path) -> tuple[float, float, float]:
    """Run ``argv`` as a fresh process (its output in ``out``); (CPU seconds, wall seconds, peak RSS MB)."""
    usage = out / "_usage.json"
    launch = [sys.executable, "-S", "-c", LAUNCHER, str(usage), *argv]
    with open(out / "_stdout.txt", "wb") as stdout, open(out / "_stderr.txt", "wb") as stderr:
        proc = subprocess.run(launch, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=env)
    if proc.returncode != 0:
        tail = (out / "_stderr.txt").read_text(errors="replace")[-3000:]
        raise ContenderFailed(f"{' '.join(argv)[:300]} exited {proc.returncode}:\n{tail}")
    cpu, wall, rss = json.loads(usage.read_text())
    return cpu, wall, rss


def measure(task: Task, rounds: int, work: Path, log: Callable[[str], None] = print) -> list[Run]:
    """Every contender at both sizes, ``rounds`` times, alternating; the large-size outputs of the last round
    stay in ``work/<contender>/large`` for the equivalence check."""
    runs: list[Run] = []
    for r in range(rounds):
        order = task.contenders if r % 2 == 0 else task.contenders[::-1]
        for contender in order:
            env = {**os.environ, **ONE_THREAD, **contender.env}
            for size in task.sizes:
                out = work / slug(contender.name) / ("large" if size is task.sizes[1] else "small")
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir(parents=True)
                if contender.prepare:
                    contender.prepare(size, out)
                cpu, wall, rss = run_once(contender.command(size, out), env, out)
                runs.append(Run(task.name, contender.name, contender.role, size.label, r, size.amount, cpu, wall, rss))
            log(f"    round {r + 1}/{rounds}  {contender.name:48s} {runs[-2].cpu_s:8.2f} s  {runs[-1].cpu_s:8.2f} s")
    return runs


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")[:60]


@dataclass(frozen=True)
class Spread:
    low: float
    median: float
    high: float

    @staticmethod
    def of(values: list[float]) -> Spread:
        return Spread(min(values), statistics.median(values), max(values))

    def show(self, fmt: str = "{:.2f}") -> str:
        return " / ".join(fmt.format(v) for v in (self.low, self.median, self.high))


@dataclass(frozen=True)
class Figures:
    """Per round, for one contender: marginal rate, fixed CPU seconds, end-to-end rate on the large input."""

    marginal: list[float]
    fixed: list[float]
    end_to_end: list[float]
    peak_rss_mb: float
    extra_cpu: list[float]  # large minus small, per round: under NOISE_CPU the marginal rate is noise
    small_cpu: list[float]  # the small run's CPU seconds, per round

    def noisy(self) -> bool:
        return min(self.extra_cpu) < NOISE_CPU


def figures(runs: list[Run], contender: str) -> Figures:
    mine = [r for r in runs if r.contender == contender]
    small = {r.round: r for r in mine if r.size == mine[0].size}
    large = {r.round: r for r in mine if r.size != mine[0].size}
    marginal, fixed, end, extras, smalls = [], [], [], [], []
    for k in sorted(small):
        s, g = small[k], large[k]
        extra = max(g.cpu_s - s.cpu_s, 1e-3)
        rate = (g.amount - s.amount) / extra
        marginal.append(rate)
        fixed.append(s.cpu_s - s.amount / rate)
        end.append(g.amount / g.cpu_s)
        extras.append(g.cpu_s - s.cpu_s)
        smalls.append(s.cpu_s)
    return Figures(marginal, fixed, end, max(r.peak_rss_mb for r in mine), extras, smalls)


def ratios(a: Figures, b: Figures, kind: str) -> Spread:
    """Round by round, ``a`` over ``b``."""
    xs, ys = getattr(a, kind), getattr(b, kind)
    return Spread.of([x / y for x, y in zip(xs, ys)])


def judge(target: Target, figs: dict[str, Figures]) -> tuple[Spread, bool | None]:
    """The target's per-round spread and whether its median meets it (None: the inputs were too small for a
    marginal figure, see ``NOISE_CPU``)."""
    if target.kind == "fixed_seconds":
        spread = Spread.of(figs[target.ours].small_cpu)
        return spread, spread.median < target.bound
    if target.kind == "marginal" and any(figs[n].noisy() for n in (target.ours, target.other)):
        return Spread.of([float("nan")]), None
    spread = ratios(figs[target.ours], figs[target.other], target.kind)
    return spread, spread.median >= target.bound
