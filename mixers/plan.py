"""The repetition math of a mix: value-weighted factors per quality bucket solved to an exact token target.

Per source and topic, documents fall into quality quantile buckets; the bottom ``throwaway`` share gets 0 and
each kept bucket ``f(x) = min(max_repetition, C · x^p · e^{λx})`` (x = the bucket's quantile rank in (0, 1]),
C found by bisection so the group meets its share. A document with factor f is written ``floor(f) + [u <
frac(f)]`` times, ``u`` drawn from a hash of (seed, id), so any worker derives the same copies with no
coordination; with calibration the solve uses those realised copies, not their expectation. Pure functions
over numpy arrays: the steps (:mod:`mixers.steps`) and the offline planner (:mod:`mixers.offline`) share them.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np
import polars as pl
import xxhash

from dolma import io
from dolma.core.errors import UserError
from dolma.runtime.report import ResultTable
from mixers.config import MixParams


def hashes(seed: int, ids: list[str]) -> np.ndarray:
    """A 64-bit hash of (seed, id) per document: its rounding draw ``u = hash / 2^64`` and the seed of its copies'
    shuffle keys, so any worker derives the same values with no coordination."""
    return np.fromiter((xxhash.xxh64_intdigest(i.encode(), seed=seed) for i in ids), np.uint64, len(ids))


def draws(h: np.ndarray) -> np.ndarray:
    return h.astype(np.float64) / 2.0**64


def copies(factor: np.ndarray, u: np.ndarray) -> np.ndarray:
    return (np.floor(factor) + (u < factor - np.floor(factor))).astype(np.int64)


def shuffle_keys(h: np.ndarray, copy: np.ndarray) -> np.ndarray:
    """The sort key of copy ``copy`` of the document hashed ``h`` (splitmix64 of their combination)."""
    with np.errstate(over="ignore"):
        x = h.astype(np.uint64) + (copy.astype(np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


class GroupPlan(msgspec.Struct):
    source: str
    topic: str
    edges: list[float]  # quality quantile edges: bucket b is edges[b] < q <= edges[b+1] (first bucket closed)
    bucket_tokens: list[int]
    factors: list[float]
    available_tokens: int
    target_tokens: float
    planned_tokens: float


class Plan(msgspec.Struct):
    target_tokens: int
    planned_tokens: float
    partitions: int
    max_repetition: float
    curve: str
    groups: list[GroupPlan]
    method: str = "exact"  # or "histograms": how the edges and bucket tokens were found (mixers.planning)


def curve(x: np.ndarray, c: float, p: float, lam: float, cap: float) -> np.ndarray:
    return np.minimum(cap, c * np.power(x, p) * np.exp(lam * x))


def solve_group(tokens: np.ndarray, target: float, params: MixParams, realised=None, flat: bool = False) -> np.ndarray:
    """Factors per bucket hitting ``target`` tokens: buckets below the throwaway quantile get 0, the others
    ``curve(rank)`` with C found by bisection (the total is monotone in C). ``realised(factors)`` gives the
    tokens the factors really produce (stochastic rounding included); by default the expectation. ``flat``
    (a stream without a quality attribute): one factor for every document, nothing thrown away."""
    q = len(tokens)
    x = (np.arange(q) + 1) / q
    kept = np.ones(q, bool) if flat else x > params.throwaway + 1e-12
    p, lam = (0.0, 0.0) if flat else (params.curve_p, params.curve_lambda)
    total = realised or (lambda f: float(np.dot(tokens, f)))

    def factors(c: float) -> np.ndarray:
        return np.where(kept, curve(x, c, p, lam, params.max_repetition), 0.0)

    if target <= 0:
        return np.zeros(q)
    most = total(np.where(kept, params.max_repetition, 0.0))
    if most < target * (1 - 1e-9):
        raise UserError(
            f"cannot reach {target:,.0f} tokens: {int(tokens[kept].sum()):,} tokens above the "
            f"throwaway quantile × max repetition {params.max_repetition} = {most:,.0f}"
        )
    lo, hi = 0.0, params.max_repetition / max(float(np.min(np.power(x[kept], p) * np.exp(lam * x[kept]))), 1e-12)
    for _ in range(200):
        mid = (lo + hi) / 2
        if total(factors(mid)) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(hi, 1):
            break
    # the realised total is a step function of C: take the side of the last step closer to the target
    return min((factors(lo), factors(hi)), key=lambda f: abs(total(f) - target))


def _shares(params: MixParams, by_source: dict[str, float]) -> dict[str, float]:
    """Each source's share of the target: its own, or of what the others leave, in proportion to its tokens."""
    fixed = {s.name: s.share for s in params.streams if s.share is not None}
    rest = [s for s in by_source if s not in fixed]
    left = 1.0 - sum(fixed.values())
    shares = dict(fixed)
    for s in rest:
        shares[s] = left * by_source[s] / max(sum(by_source[r] for r in rest), 1.0)
    return shares


def plan_from_histograms(
    params: MixParams,
    groups: dict[tuple[str, str], tuple[list[float], np.ndarray]],
    realisers: dict | None = None,
    flat: set[str] | None = None,
) -> Plan:
    """Targets per source from the shares, split over topics by their kept tokens, then solved per group.
    ``flat``: the sources without a quality signal, repeated uniformly with nothing thrown away (by default the
    streams without a ``quality`` attribute); planning from documents and from a description use one rule."""
    available = {k: float(v[1].sum()) for k, v in groups.items()}
    by_source: dict[str, float] = {}
    kept_by_source: dict[str, float] = {}
    flat = {s.name for s in params.streams if not s.quality} if flat is None else flat

    def kept_tokens(source: str, tokens: np.ndarray) -> float:
        x = (np.arange(len(tokens)) + 1) / len(tokens)
        return float(tokens.sum()) if source in flat else float(tokens[x > params.throwaway + 1e-12].sum())

    for (source, _), (_, tokens) in groups.items():
        by_source[source] = by_source.get(source, 0.0) + float(tokens.sum())
        kept_by_source[source] = kept_by_source.get(source, 0.0) + kept_tokens(source, tokens)
    shares = _shares(params, by_source)

    def solve(source: str, topic: str, target: float) -> tuple[list[float], float]:
        tokens, realised = groups[(source, topic)][1], (realisers or {}).get((source, topic))
        try:
            factors = solve_group(tokens, target, params, realised, flat=source in flat)
        except UserError as e:
            group = f"{source}/{topic}" if topic else source
            need = target / max(params.max_repetition, 1e-12)
            raise UserError(
                f"{group}: {e}; it would need {need:,.0f} tokens above the throwaway quantile at the cap "
                f"(raise max_repetition, lower its share or the target, or add documents)"
            ) from None
        return [float(f) for f in factors], float(realised(factors) if realised else np.dot(tokens, factors))

    out = []
    for (source, topic), (edges, tokens) in sorted(groups.items()):
        target = (
            params.target_tokens
            * shares.get(source, 0.0)
            * kept_tokens(source, tokens)
            / max(kept_by_source[source], 1.0)
        )
        factors, planned = solve(source, topic, target)
        edges = [float(e) for e in edges]
        out.append(
            GroupPlan(source, topic, edges, [int(t) for t in tokens], factors, int(available[(source, topic)]),
                      float(target), planned)
        )  # fmt: skip
    _absorb_residual(params.target_tokens, out, solve)
    planned = float(sum(g.planned_tokens for g in out))
    return Plan(
        params.target_tokens,
        planned,
        max(1, math.ceil(planned / params.partition_tokens)),
        params.max_repetition,
        f"min({params.max_repetition}, C·x^{params.curve_p}·e^({params.curve_lambda}x))",
        out,
    )


def _absorb_residual(target: int, out: list[GroupPlan], solve) -> None:
    """A group lands within about one of its documents of its target (the realised total moves in whole
    documents); the group with the most tokens, whose steps are the finest, absorbs the sum of those misses."""
    residual = target - sum(g.planned_tokens for g in out)
    largest = max(out, key=lambda g: g.planned_tokens, default=None)
    if largest is None or abs(residual) < 1:
        return
    try:
        factors, planned = solve(largest.source, largest.topic, largest.target_tokens + residual)
    except UserError:  # that group cannot take more: leave the plan as solved
        return
    largest.target_tokens += residual
    largest.factors, largest.planned_tokens = factors, planned


def bucket_of(quality: np.ndarray, edges: list[float]) -> np.ndarray:
    q = len(edges) - 1
    return np.clip(np.searchsorted(np.asarray(edges[1:-1]), quality, side="left"), 0, q - 1)


def realiser(bucket: np.ndarray, tokens: np.ndarray, u: np.ndarray):
    """tokens written for given bucket factors, with each document's own rounding draw."""
    order = np.lexsort((u, bucket))
    b, t, uu = bucket[order], tokens[order].astype(np.float64), u[order]
    starts = np.searchsorted(b, np.arange(bucket.max() + 2 if len(bucket) else 1))
    cum = np.r_[0.0, np.cumsum(t)]

    def realised(factors: np.ndarray) -> float:
        total = 0.0
        for k, f in enumerate(factors):
            if k + 1 >= len(starts) or f <= 0:
                continue
            s, e = starts[k], starts[k + 1]
            whole, frac = math.floor(f), f - math.floor(f)
            extra = s + int(np.searchsorted(uu[s:e], frac, side="left"))
            total += whole * (cum[e] - cum[s]) + (cum[extra] - cum[s])
        return total

    return realised


def write_plan_plot(plan: Plan, url: str) -> None:
    import io as stdio

    from matplotlib.figure import Figure  # the object API: no pyplot state, and fixed margins (no layout solve)

    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    for g in plan.groups:
        q = len(g.factors)
        ax.step((np.arange(q) + 1) / q, g.factors, where="mid", label=f"{g.source}/{g.topic}" if g.topic else g.source)
    ax.axhline(plan.max_repetition, color="grey", linestyle="--", label=f"cap {plan.max_repetition:g}")
    ax.set_xlabel("quality quantile")
    ax.set_ylabel("repetition factor")
    ax.set_title(f"{plan.curve}: {plan.planned_tokens:,.0f} of {plan.target_tokens:,} tokens", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.92, bottom=0.12)
    buf = stdio.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    with io.AtomicWriter(url) as w:
        w.write(buf.getvalue())


def planned_copies(stats: pl.DataFrame, plan: Plan, source: str) -> np.ndarray:
    """Copies per stats row from the plan: the factor of the row's quality bucket, stochastically rounded with
    the row's own draw; 0 for dropped rows."""
    n = np.zeros(len(stats), np.int64)
    kept = stats["drop_reason"].is_null().to_numpy()
    topics = stats["topic"].to_numpy()
    quality, u = stats["quality"].to_numpy(), draws(stats["hash"].to_numpy())
    for g in plan.groups:
        if g.source != source:
            continue
        rows = np.flatnonzero(kept & (topics == g.topic))
        factor = np.asarray(g.factors)[bucket_of(quality[rows], g.edges)]
        n[rows] = copies(factor, u[rows])
    return n


def human(tokens: float) -> str:
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(tokens) >= size:
            return f"{tokens / size:,.3f}{unit}"
    return f"{tokens:,.0f}"


def plan_table(plan: Plan) -> list[tuple[str, ...]]:
    rows = []
    for g in plan.groups:
        kept = sum(1 for f in g.factors if f > 0)
        rows.append(
            (
                f"{g.source}/{g.topic}" if g.topic else g.source,
                human(g.available_tokens),
                human(g.planned_tokens),
                f"{g.planned_tokens / plan.planned_tokens:.2%}",
                f"{kept}/{len(g.factors)}",
                f"{max(g.factors, default=0):.2f}",
            )
        )
    return rows


def plan_result(plan: Plan) -> ResultTable:
    """The plan as the table printed after a run (and by ``dolma mix-plan``)."""
    title = (
        f"Mix plan: {plan.planned_tokens:,.0f} tokens planned for a target of {plan.target_tokens:,} "
        f"({(plan.planned_tokens / plan.target_tokens - 1) * 100:+.4f}%); curve {plan.curve}"
    )
    columns = ["source/topic", "available", "planned", "share", "buckets kept", "top factor"]
    return ResultTable(title, columns, [list(row) for row in plan_table(plan)])


SHARE_TOLERANCE = 0.005  # half a point of the mix


def share_misses(plan: Plan, realised: dict[str, float]) -> list[tuple[str, float, float]]:
    """(stream, target share, realised share) of every stream more than half a point from its target."""
    total = sum(realised.values()) or 1.0
    out = []
    for source in sorted({g.source for g in plan.groups}):
        target = sum(g.target_tokens for g in plan.groups if g.source == source) / max(plan.target_tokens, 1)
        got = realised.get(source, 0.0) / total
        if abs(got - target) > SHARE_TOLERANCE:
            out.append((source, target, got))
    return out


def misses_table(misses: list[tuple[str, float, float]]) -> ResultTable:
    rows = [[s, f"{t:.2%}", f"{g:.2%}", f"{(g - t) * 100:+.2f}"] for s, t, g in misses]
    title = "Warning: streams more than 0.5 points from their share (set strict_shares: true to make it an error)"
    return ResultTable(title, ["stream", "target share", "realised share", "points"], rows)
