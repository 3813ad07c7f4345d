"""The mix's part of the HTML report, from its plan and its steps' ledgers."""

from __future__ import annotations

from collections import defaultdict

import msgspec
import numpy as np

from dolma import io
from dolma.runtime.ledger import ShardSummary
from dolma.runtime.report import Section, figure, png
from dolma.runtime.run import read_summary, task_summaries
from dolma.runtime.stage import Stage
from mixers.config import MixParams
from mixers.plan import Plan, share_misses
from mixers.shuffle import MixShuffleStage, realised_tokens
from mixers.stats import MixStatsStage


def _per_stream(step: Stage) -> dict[str, ShardSummary]:
    """A mix step's finished tasks' summaries, summed per stream."""
    totals: dict[str, ShardSummary] = defaultdict(ShardSummary)
    for task, summary in task_summaries(step):
        totals[task.payload.stream].merge(summary)
    return totals


def mix_sections(p: MixParams) -> list[Section]:
    """Tokens per stream (available, planned, realised), shares vs target, repetition curves of one mix."""
    url = io.join(p.work, "plan.json")
    if not io.exists(url):
        return []
    plan = msgspec.convert(io.read_json(url), Plan)
    shuffled = read_summary(MixShuffleStage(p))
    metrics = shuffled.metrics if shuffled else {}
    realised = realised_tokens(metrics)
    streams = sorted({g.source for g in plan.groups})
    available = [sum(g.available_tokens for g in plan.groups if g.source == s) for s in streams]
    target = [sum(g.target_tokens for g in plan.groups if g.source == s) for s in streams]
    planned = [sum(g.planned_tokens for g in plan.groups if g.source == s) for s in streams]
    got = [realised.get(s, 0.0) for s in streams]

    images = _plots(p, plan, streams, available, target, got)
    stats, shuffle = _per_stream(MixStatsStage(p)), _per_stream(MixShuffleStage(p))
    table = [
        ["stream", "documents read", "after filters", "after throwaway", "copies written",
         "tokens available", "target", "planned", "realised", "share"]
    ]  # fmt: skip
    for s, a, t, pl_, r in zip(streams, available, target, planned, got):
        table.append(
            [s, f"{stats[s].read:,}", f"{stats[s].kept:,}", f"{shuffle[s].kept:,}",
             f"{shuffle[s].metrics.get('copies', 0):,.0f}", f"{a:,.0f}", f"{t:,.0f}", f"{pl_:,.0f}", f"{r:,.0f}",
             f"{r / (sum(got) or 1.0):.2%}"]
        )  # fmt: skip
    note = (
        f"Target {plan.target_tokens:,} tokens; realised {sum(got):,.0f} "
        f"({(sum(got) - plan.target_tokens) / plan.target_tokens:+.2%})."
    )
    misses = share_misses(plan, realised)
    if misses:
        note += " Warning: " + "; ".join(f"{s} realised {g:.2%} against a share of {t:.2%}" for s, t, g in misses)
    return [Section(f"Mix {p.name}", note, images, table)]


def _plots(p: MixParams, plan: Plan, streams: list[str], available: list, target: list, got: list) -> list[str]:
    """Tokens per stream, realised against target shares, and the repetition curves."""
    fig, ax = figure()
    x = np.arange(len(streams))
    for i, (label, values) in enumerate(
        (("available (after filters)", available), ("target", target), ("realised", got))
    ):
        ax.bar(x + (i - 1) * 0.27, values, 0.27, label=label)
    ax.set_xticks(x, streams, rotation=20)
    ax.set_ylabel("tokens")
    ax.set_title(f"{p.name}: tokens per stream")
    ax.legend()
    images = [png(fig)]

    fig, ax = figure()
    total = sum(got) or 1.0
    ax.bar(x - 0.2, np.array(target) / plan.target_tokens, 0.4, label="target share")
    ax.bar(x + 0.2, np.array(got) / total, 0.4, label="realised share")
    ax.set_xticks(x, streams, rotation=20)
    ax.set_ylabel("share of the mix")
    ax.set_title(f"{p.name}: realised vs target shares")
    ax.legend()
    images.append(png(fig))

    fig, ax = figure()
    for g in plan.groups:
        q = (np.arange(len(g.factors)) + 0.5) / len(g.factors)
        ax.step(q, g.factors, where="mid", label=g.source + (f"/{g.topic}" if g.topic else ""))
    ax.axhline(plan.max_repetition, color="black", linestyle="--", linewidth=1, label="cap")
    ax.set_xlabel("quality quantile (bucket midpoint)")
    ax.set_ylabel("copies per document")
    ax.set_title(f"{p.name}: repetition factor per quality bucket — {plan.curve}")
    ax.legend(fontsize=8)
    images.append(png(fig))
    return images
