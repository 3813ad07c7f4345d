"""``dolma estimate``: what a recipe's stages cost on a pool, from the per-core rates this machine measured.

The rates come from ``python -m bench.rates`` (``configs/rates.json``: the date, the machine, and per stage kind
the marginal rate per CPU second, the fixed seconds, and the scratch and output bytes it left per unit). The pool
is a mix-plan description (``configs/mix/dolma3-300T-to-6T.yaml``): tokens per source, and document bytes where
a group gives them, else tokens × the bytes per token measured on the same base. Every stage but ``tokenize``
processes the whole pool (its bytes); ``tokenize`` processes what the mix writes (the pool's ``target_tokens``).

CPU-hours are the amount over the rate, plus the fixed seconds once per task (one task per
``--task-bytes`` of input, by default 1 GB, allenai's common shard size); wall time spreads them over
``--cores``, which assumes the tasks keep every core busy (the mix's plan step, one task per mix over the ids
step's histograms, is seconds and is left out). Scratch is what a stage's work folders hold when it ends; the
peak is the largest.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Annotated

import msgspec
from rich.console import Console
from rich.table import Table

from dolma.app.recipe import STAGE_KINDS, load_yaml
from dolma.core.errors import UserError

RATES = Path(__file__).resolve().parents[2] / "configs" / "rates.json"


class StageRate(msgspec.Struct, forbid_unknown_fields=True):
    unit: str  # "input byte" or "output token"
    per_cpu_second: Annotated[float, msgspec.Meta(gt=0)]
    fixed_cpu_seconds: Annotated[float, msgspec.Meta(ge=0)]
    cpu_seconds: list[float]
    amount: list[float]
    scratch_per_unit: float
    output_per_unit: float


class Rates(msgspec.Struct, forbid_unknown_fields=True):
    measured: str
    machine: str
    command: str
    base: dict
    bytes_per_token: float
    stages: dict[str, StageRate]


class Row(msgspec.Struct):
    name: str
    kind: str
    amount: float
    unit: str
    cpu_hours: float
    wall_hours: float
    scratch_bytes: float
    output_bytes: float


def read_rates(path: str) -> Rates:
    try:
        return msgspec.json.decode(Path(path).read_bytes(), type=Rates)
    except OSError as e:
        raise UserError(f"cannot read the rates file {path}: {e.strerror} (write it: python -m bench.rates)") from None
    except msgspec.ValidationError as e:
        raise UserError(f"{path}: {e} (rewrite it with `python -m bench.rates`)") from None


def recipe_stages(path: str) -> list[tuple[str, str]]:
    """(name, kind) of every stage of a recipe, read without building the stages (their inputs need not exist
    here: a recipe for a cluster's object store is estimated on a laptop)."""
    stages = load_yaml(path).get("stages") or []
    out = []
    for i, entry in enumerate(stages):
        kind = entry.get("stage") if isinstance(entry, dict) else None
        if kind not in STAGE_KINDS:
            raise UserError(
                f"{path}: stages[{i}]: unknown stage kind {kind!r}; known: {', '.join(sorted(STAGE_KINDS))}"
            )
        out.append((str(entry.get("name", kind)), kind))
    return out


def estimate(stages: list[tuple[str, str]], rates: Rates, pool: str, cores: int, task_bytes: float) -> list[Row]:
    from mixers.offline import read_description  # the mixer's package, only when an estimate runs

    desc = read_description(pool)
    pool_bytes = sum(g.bytes or g.total_tokens() * rates.bytes_per_token for g in desc.groups)
    rows = []
    for name, kind in stages:
        rate = rates.stages.get(kind)
        if rate is None:  # shown as not measured, never counted as free
            rows.append(Row(name, kind, 0.0, "", math.nan, math.nan, math.nan, math.nan))
            continue
        amount = desc.target_tokens if rate.unit == "output token" else pool_bytes
        in_bytes = amount * rates.bytes_per_token if rate.unit == "output token" else amount
        tasks = max(1, math.ceil(in_bytes / task_bytes))
        cpu_hours = (amount / rate.per_cpu_second + tasks * rate.fixed_cpu_seconds) / 3600
        rows.append(
            Row(name, kind, amount, rate.unit, cpu_hours, cpu_hours / cores, amount * rate.scratch_per_unit,
                amount * rate.output_per_unit)
        )  # fmt: skip
    return rows


def _size(n: float) -> str:
    for unit, scale in (("EB", 1e18), ("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,.0f} B"


def _hours(h: float) -> str:
    return f"{h / 24:,.1f} d" if h >= 48 else f"{h:,.1f} h"


def print_estimate(rows: list[Row], rates: Rates, cores: int) -> None:
    table = Table(title=f"cost on {cores:,} cores (rates measured {rates.measured} on {rates.machine})")
    for col in ("stage", "processes", "CPU-hours", "share", f"wall on {cores:,} cores", "scratch", "output"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    measured = [r for r in rows if r.unit]
    if not measured:
        raise UserError(f"no stage of the recipe has a measured rate (the rates file has {', '.join(rates.stages)})")
    total = sum(r.cpu_hours for r in measured)
    for r in rows:
        if not r.unit:
            table.add_row(r.name, "not measured", "?", "", "?", "?", "?")
            continue
        amount = f"{r.amount / 1e12:,.1f}T tokens" if r.unit == "output token" else _size(r.amount)
        share = f"{r.cpu_hours / total:.0%}"
        table.add_row(r.name, amount, f"{r.cpu_hours:,.0f}", share, _hours(r.wall_hours), _size(r.scratch_bytes),
                      _size(r.output_bytes))  # fmt: skip
    wall = sum(r.wall_hours for r in measured)
    peak = _size(max(r.scratch_bytes for r in measured)) + " peak"
    table.add_row("total", "", f"{total:,.0f}", "", _hours(wall), peak, _size(sum(r.output_bytes for r in measured)))
    Console(width=140).print(table)
    top = max(measured, key=lambda r: r.cpu_hours)
    print(f"{top.name} dominates: {top.cpu_hours / total:.0%} of the CPU-hours")
    missing = [r.kind for r in rows if not r.unit]
    if missing:
        print(f"not measured, so not in the totals: {', '.join(missing)} (python -m bench.rates measures "
              f"{', '.join(rates.stages)})")  # fmt: skip


def cmd_estimate(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    if args.cores < 1 or args.task_gb <= 0:
        raise UserError("--cores must be at least 1 and --task-gb above 0")
    rates = read_rates(args.rates)
    stages = [stage for recipe in args.recipe for stage in recipe_stages(recipe)]
    rows = estimate(stages, rates, args.pool, args.cores, args.task_gb * 1e9)
    print_estimate(rows, rates, args.cores)
    print(f"estimated in {time.perf_counter() - started:.2f} s from {args.rates} ({rates.command})")


def add_estimate(sub, command) -> None:
    p = command(
        sub, "estimate", "Estimate what a recipe costs on a pool: CPU-hours, wall time, scratch and output.",
        "Per stage of RECIPE, from the per-core rates `python -m bench.rates` measured on this machine "
        "(configs/rates.json) and the pool's size (a mix-plan description: tokens per source, bytes where known). "
        "Assumes the tasks keep every core busy.",
        "dolma estimate configs/curate-pool.yaml configs/pretrain.yaml --pool configs/mix/dolma3-300T-to-6T.yaml",
    )  # fmt: skip
    p.add_argument("recipe", nargs="+", help="the recipes whose stages to cost, in order (inputs need not exist here)")
    p.add_argument("--pool", required=True, help="pool description YAML (as for `dolma mix-plan`)")
    p.add_argument("--cores", type=int, default=1000, help="cores to spread the work over (default 1000)")
    p.add_argument("--task-gb", type=float, default=1.0, help="input GB per task, for the fixed costs (default 1)")
    p.add_argument("--rates", default=str(RATES), help=f"the rates file (default {RATES})")
    p.set_defaults(fn=cmd_estimate)
