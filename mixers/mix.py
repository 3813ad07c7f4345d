"""The mixer: filters, span edits and value-weighted repetition solved to an exact token target.

Four restartable steps (the recipe entry ``stage: mix`` expands into them):

1. ``stats`` (a task per input file): a row per line of the document file, from its attribute sets joined
   line by line: the include/exclude rules (``mixers.rules``) give its drop reason, and the row holds the
   source, topic, quality score, token count and ``hash(seed, id)`` the later steps need. The documents are
   read only when their text is needed (no ``tokens`` attribute, or span edits that change the count).
2. ``plan`` (one task, statistics only): per source and topic, quality quantiles (default 20); the bottom
   ``throwaway`` share is dropped and each kept bucket gets a repetition factor from
   ``f(x) = min(max_repetition, C · x^p · e^{λx})`` (x = the bucket's quantile rank in (0, 1]; p and λ shape
   the curve, C is solved) so that every source hits its share of ``target_tokens``. With ``calibrate`` the
   solve uses the realised copies of every document (see step 3), not their expectation, so the mix hits its
   target to within one document. Writes ``plan.json``, a table and ``plan.png``.
3. ``shuffle`` (a task per input file): the documents are read once, each matched with its stats row by line
   and id; a document with factor f is written ``floor(f) + [u < frac(f)]`` times (``u = hash / 2^64``:
   deterministic stochastic rounding, no coordination between workers), after span edits. Texts that are
   copied unchanged stay raw JSON (never decoded). Every copy gets a random key from (hash, copy number) and
   goes to one of the plan's partitions.
4. ``write`` (a task per partition): copies sorted by key (sources interleave; no two copies of a document
   are adjacent) and written as ``.jsonl.zst`` shards of at most ``max_tokens_per_file`` tokens.

The curve family is Dolma 3's: monotone for p, λ ≥ 0, flat (uniform repetition) at p = λ = 0.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import polars as pl
import pyarrow as pa
import xxhash

from dolma import io
from dolma.document import ENCODER, LazyDocument
from dolma.executor import Task, report_progress
from dolma.io import Rejected
from dolma.ledger import ShardLedger
from mixers.rules import Rule, native, parse


@dataclass
class SpanEdit:
    """Remove (or replace with ``replacement``) spans of ``attribute`` whose score is at least ``threshold``."""

    attribute: str
    threshold: float = 0.5
    replacement: str = ""


@dataclass
class Stream:
    name: str
    documents: list[str]
    attributes: list[str] = field(default_factory=list)
    share: float | None = None  # of the target tokens; streams without one share what is left, by size
    include: list[Any] = field(default_factory=list)  # every rule must match (allenai strings or native dicts)
    exclude: list[Any] = field(default_factory=list)  # any match drops the document
    quality: str | None = None  # attribute key whose score ranks documents (no key: all in one bucket)
    topic: str | None = None  # attribute key prefix; the topic is the key suffix with the highest score
    tokens: str | None = None  # attribute key holding the token count (e.g. tags__stats_v1__tokens)
    spans: list[SpanEdit] = field(default_factory=list)
    misaligned: str = "error"  # an attribute line out of step with its document: error, or quarantine it

    def rules(self) -> tuple[list[Rule], list[Rule]]:
        def build(spec: Any) -> Rule:
            return parse(spec) if isinstance(spec, str) else native(**spec)

        return [build(r) for r in self.include], [build(r) for r in self.exclude]

    def keys(self) -> set[str]:
        """The attribute keys the stream reads (rules, quality, tokens, span edits); ``topic`` is a key prefix."""
        include, exclude = self.rules()
        named = {k for k in (self.quality, self.tokens) if k} | {e.attribute for e in self.spans}
        return {k for r in include + exclude for k in r.keys} | named

    def out_of_step(self, problem: str) -> None:
        """Stop on a line whose attributes are out of step with its document, unless the stream quarantines them."""
        if self.misaligned == "error":
            raise io.UserError(f"{problem} (set misaligned: quarantine to skip such lines)")

    def reads_text(self) -> bool:
        """Whether the stats step reads the documents: token counts need the text when no attribute holds
        them or span edits change them; otherwise the attribute sets alone are read."""
        return not self.tokens or bool(self.spans)


@dataclass
class MixParams:
    streams: list[Stream]
    work: str
    output: str
    target_tokens: int
    quantiles: int = 20
    throwaway: float = 0.4
    max_repetition: float = 7.0
    curve_p: float = 1.5
    curve_lambda: float = 1.0
    calibrate: bool = True
    seed: int = 0
    partition_tokens: int = 500_000_000  # tokens per shuffle partition (bounds the write step's memory)
    max_tokens_per_file: int = 100_000_000
    tokenizer: str = ""
    batch_size: int = 2048
    name: str = "mix"  # prefix of the steps' names; set it when a recipe has several mixes

    def __post_init__(self) -> None:
        names = [s.name for s in self.streams]
        if len(set(names)) != len(names):
            raise io.UserError(f"stream names must be unique: {names}")
        shares = [s.share for s in self.streams if s.share is not None]
        if sum(shares) > 1.001:
            raise io.UserError(f"stream shares add up to {sum(shares):.4f} > 1")
        if sum(shares) > 1:  # published shares are rounded (Dolma 3's add up to 100.05%): rescale them
            for s in self.streams:
                s.share = s.share / sum(shares) if s.share is not None else None
        if not 0 <= self.throwaway < 1:
            raise io.UserError("throwaway must be in [0, 1)")
        for stream in self.streams:
            stream.rules()  # a bad rule fails before any work
            if (stream.keys() or stream.topic) and not stream.attributes:
                raise io.UserError(f"stream {stream.name!r} names attributes but lists no attribute sets")

    def files(self) -> list[tuple[str, str, str]]:
        """(stream, task key, url) for every input file."""
        out = []
        for s in self.streams:
            for pattern in s.documents:
                for url in io.document_files(pattern):
                    out.append((s.name, f"{s.name}/{io.strip_suffix(io.relative_to_root(url, pattern))}", url))
        return out

    def stream(self, name: str) -> Stream:
        return next(s for s in self.streams if s.name == name)


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


# ----------------------------------------------------------------------------------------------- step 1
@dataclass
class MixStatsStage:
    params: MixParams

    @property
    def name(self) -> str:
        return self.params.name + "-stats"

    @property
    def output(self) -> str:
        return io.join(self.params.work, "stats")

    def tasks(self) -> list[Task]:
        return [Task(key, (stream, url)) for stream, key, url in self.params.files()]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        stream = self.params.stream(task.inputs[0])
        url = task.inputs[1]
        frames = []
        with io.gc_paused():
            for batch, frame in _stats_batches(self.params, stream, url):
                ledger.read += len(batch.ids) + len(batch.rejected)
                ledger.quarantined(url, batch.rejected)
                is_kept = pl.col("drop_reason").is_null()
                kept, dropped = frame.filter(is_kept), frame.filter(~is_kept)
                ledger.kept(url, kept["line"].to_list(), kept["id"].to_list())
                ledger.dropped(
                    url, dropped["line"].to_list(), dropped["id"].to_list(), dropped["drop_reason"].to_list()
                )
                ledger.metrics["tokens_kept"] += int(kept["tokens"].sum())
                frames.append(frame)
                if batch.rejected:
                    frames.append(
                        pl.DataFrame(
                            {
                                "line": [r.line for r in batch.rejected],
                                "id": [r.id for r in batch.rejected],
                                "drop_reason": [QUARANTINED_BY_STATS + r.reason for r in batch.rejected],
                            },
                            schema={k: STATS_SCHEMA[k] for k in ("line", "id", "drop_reason")},
                        )
                    )
                report_progress(len(batch.ids) + len(batch.rejected), batch.nbytes)
        table = pl.concat(frames, how="diagonal_relaxed").sort("line") if frames else pl.DataFrame()
        _write_parquet(
            io.join(self.params.work, "stats", task.key + ".parquet"),
            table.select(
                pl.col(k).cast(t) if k in table.columns else pl.lit(None, t).alias(k) for k, t in STATS_SCHEMA.items()
            ),
        )


QUARANTINED_BY_STATS = "quarantined by the stats step: "
STATS_SCHEMA = {  # one row per line of the document file; the plan uses the rows without a drop reason
    "line": pl.Int64,
    "id": pl.String,
    "drop_reason": pl.String,
    "source": pl.String,
    "topic": pl.String,
    "quality": pl.Float64,
    "tokens": pl.Int64,
    "hash": pl.UInt64,
    "cuts": pl.List(pl.List(pl.Int64)),  # span edits to apply: [start, end, index into the stream's spans]
}


def _stats_batches(p: MixParams, stream: Stream, url: str):
    """(batch, frame) per batch: a row per joined line with its drop reason and what the plan needs.

    The documents themselves are read only when their text is needed (tokens counted by the tokenizer, or
    span edits changing the count); otherwise the attribute sets alone give ids, scores and token counts,
    decoded a batch at a time into columns."""
    include, exclude = stream.rules()
    keys = sorted(stream.keys())
    select = io.KeySelection(frozenset(keys), stream.topic or "")
    sources = {name: io.attributes_url(url, name) for name in stream.attributes}
    if stream.reads_text():
        batches = (
            (io.AttributeColumns(b.lines, [d.id for d in b.docs], io.joined_columns(b), b.rejected, b.nbytes), b.docs)
            for b in io.read_aligned(url, sources, p.batch_size, select)
        )
    else:
        batches = ((b, None) for b in io.read_attribute_columns(sources, select, p.batch_size))
    for batch, docs in batches:
        off = next((r for r in batch.rejected if r.reason == "attributes_out_of_step"), None)
        if off is not None:
            stream.out_of_step(f"{url} line {off.line}: {off.error}")
        n = len(batch.ids)
        spans = {k: batch.columns.get(k, [None] * n) for k in keys}
        frame = pl.DataFrame(
            {
                "line": pl.Series(batch.lines, dtype=pl.Int64),
                "id": pl.Series(batch.ids, dtype=pl.String),
                **{k: pl.Series(_first_scores(v), dtype=pl.Float64) for k, v in spans.items()},
            }
        )
        reason = pl.lit(None, pl.String)
        for rule in reversed(include):  # the first failing rule names the reason
            present = pl.all_horizontal([pl.col(k).is_not_null() for k in rule.keys])
            if rule.missing == "error":
                missing = frame.select(~present).to_series()
                if missing.any():
                    i = int(missing.arg_true()[0])
                    raise io.UserError(f"{url} line {batch.lines[i]}: attribute missing for rule '{rule.text}'")
            ok = rule.expr.fill_null(rule.missing == "keep") if rule.missing != "error" else rule.expr
            reason = pl.when(~ok.fill_null(False)).then(pl.lit(f"include: {rule.text}")).otherwise(reason)
        for rule in reversed(exclude):
            hit = rule.expr.fill_null(rule.missing == "drop") if rule.missing != "error" else rule.expr
            reason = pl.when(hit.fill_null(False)).then(pl.lit(f"exclude: {rule.text}")).otherwise(reason)
        cuts = _cuts([spans[e.attribute] for e in stream.spans], stream.spans) if stream.spans else None
        if docs is not None:
            texts = [_edited(d.text, c, stream.spans) for d, c in zip(docs, cuts or [None] * n)]
            tokens = pl.Series(_count_tokens(p.tokenizer, texts), dtype=pl.Int64)
        else:
            tokens = frame[stream.tokens].fill_null(0).cast(pl.Int64)
        out = frame.select(
            "line",
            "id",
            drop_reason=reason,
            source=pl.lit(stream.name),
            topic=pl.Series(_topics(batch.columns, stream.topic, n), dtype=pl.String),
            quality=frame[stream.quality].fill_null(0.0) if stream.quality else pl.lit(0.0),
            tokens=tokens,
            hash=pl.Series(hashes(p.seed, batch.ids), dtype=pl.UInt64),
            cuts=pl.Series(cuts, dtype=STATS_SCHEMA["cuts"]) if cuts else pl.lit(None, STATS_SCHEMA["cuts"]),
        )
        yield batch, out


def _first_scores(spans: list) -> list:
    """The score of each line's first span (None where the line lacks the attribute): what rules compare."""
    return [v[0][2] if v else None for v in spans]


def _topics(columns: dict[str, list], prefix: str | None, n: int) -> list[str]:
    """Per line, the suffix of the ``prefix`` key with the highest score ("" where no such key is present;
    ties go to the first key in sorted order)."""
    topic_keys = sorted(k for k in columns if prefix and k.startswith(prefix))
    if not topic_keys:
        return [""] * n
    scores = np.array([_first_scores(columns[k]) for k in topic_keys], dtype=np.float64)  # None -> nan
    present = ~np.isnan(scores)
    best = np.argmax(np.where(present, scores, -np.inf), axis=0)
    names = np.array([k[len(prefix) :] for k in topic_keys], dtype=object)
    return np.where(present.any(axis=0), names[best], "").tolist()


def _cuts(spans: list[list], edits: list[SpanEdit]) -> list[list[list[int]]]:
    """Per line, the spans to edit, sorted: [start, end, index of the edit] for each span at or over its
    threshold (``spans``: the spans of each edit's attribute, per line)."""
    return [
        sorted(
            [int(s), int(e), i]
            for i, (edit, line_spans) in enumerate(zip(edits, per_line))
            for s, e, score in line_spans or []
            if score >= edit.threshold
        )
        for per_line in zip(*spans)
    ]


def _edited(text: str, cuts: list[list[int]] | None, edits: list[SpanEdit]) -> str:
    if not cuts:
        return text
    out, cursor = [], 0
    for s, e, i in cuts:
        if s < cursor:  # overlapping spans: extend the current one
            if e > cursor:
                cursor = e
            continue
        out += [text[cursor:s], edits[i].replacement]
        cursor = e
    out.append(text[cursor:])
    return "".join(out)


def _count_tokens(tokenizer: str, texts: list[str]) -> list[int]:
    from dolma.tokenize import DEFAULT_TOKENIZER, load_tokenizer

    tok = load_tokenizer(tokenizer or DEFAULT_TOKENIZER)
    return [len(e) for e in tok.encode_batch_fast(texts, add_special_tokens=False)]


# ----------------------------------------------------------------------------------------------- step 2
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
        raise io.UserError(
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


def plan_from_histograms(
    params: MixParams, groups: dict[tuple[str, str], tuple[list[float], np.ndarray]], realisers: dict | None = None
) -> Plan:
    """Targets per source from the shares, split over topics by their kept tokens, then solved per group."""
    available = {k: float(v[1].sum()) for k, v in groups.items()}
    by_source: dict[str, float] = {}
    kept_by_source: dict[str, float] = {}
    flat = {s.name for s in params.streams if not s.quality and s.documents}

    def kept_tokens(source: str, tokens: np.ndarray) -> float:
        x = (np.arange(len(tokens)) + 1) / len(tokens)
        return float(tokens.sum()) if source in flat else float(tokens[x > params.throwaway + 1e-12].sum())

    for (source, _), (_, tokens) in groups.items():
        by_source[source] = by_source.get(source, 0.0) + float(tokens.sum())
        kept_by_source[source] = kept_by_source.get(source, 0.0) + kept_tokens(source, tokens)
    fixed = {s.name: s.share for s in params.streams if s.share is not None}
    rest = [s for s in by_source if s not in fixed]
    left = 1.0 - sum(fixed.values())
    shares = dict(fixed)
    for s in rest:
        shares[s] = left * by_source[s] / max(sum(by_source[r] for r in rest), 1.0)

    def solve(source: str, topic: str, target: float) -> tuple[list[float], float]:
        tokens, realised = groups[(source, topic)][1], (realisers or {}).get((source, topic))
        factors = solve_group(tokens, target, params, realised, flat=source in flat)
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
    # a group lands within about one of its documents of its target (the realised total moves in whole
    # documents); the group with the most tokens, whose steps are the finest, absorbs the sum of those misses
    residual = params.target_tokens - sum(g.planned_tokens for g in out)
    largest = max(out, key=lambda g: g.planned_tokens, default=None)
    if largest is not None and abs(residual) >= 1:
        try:
            factors, planned = solve(largest.source, largest.topic, largest.target_tokens + residual)
        except io.UserError:  # that group cannot take more: leave the plan as solved
            pass
        else:
            largest.target_tokens += residual
            largest.factors, largest.planned_tokens = factors, planned
    planned = float(sum(g.planned_tokens for g in out))
    return Plan(
        params.target_tokens,
        planned,
        max(1, math.ceil(planned / params.partition_tokens)),
        params.max_repetition,
        f"min({params.max_repetition}, C·x^{params.curve_p}·e^({params.curve_lambda}x))",
        out,
    )


@dataclass
class MixPlanStage:
    params: MixParams

    @property
    def name(self) -> str:
        return self.params.name + "-plan"

    @property
    def output(self) -> str:
        return io.join(self.params.work, "plan")

    def tasks(self) -> list[Task]:
        return [Task("plan")]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        p = self.params
        columns = ["source", "topic", "quality", "tokens", "hash"]
        stats = pl.concat(
            [
                _read_parquet(f).filter(pl.col("drop_reason").is_null()).select(columns)
                for f in io.list_files(io.join(p.work, "stats", "**", "*.parquet"))
            ]
        )
        groups, realisers = {}, {}
        for (source, topic), g in stats.group_by("source", "topic", maintain_order=True):
            edges = [float(v) for v in np.quantile(g["quality"].to_numpy(), np.linspace(0, 1, p.quantiles + 1))]
            bucket = bucket_of(g["quality"].to_numpy(), edges)
            tokens = np.bincount(bucket, weights=g["tokens"].to_numpy(), minlength=p.quantiles)
            groups[(source, topic)] = (edges, tokens)
            if p.calibrate:
                realisers[(source, topic)] = _realiser(bucket, g["tokens"].to_numpy(), draws(g["hash"].to_numpy()))
        plan = plan_from_histograms(p, groups, realisers)
        ledger.metrics["planned_tokens"] += plan.planned_tokens
        io.write_json(io.join(p.work, "plan.json"), plan)
        write_plan_plot(plan, io.join(p.work, "plan.png"))


def bucket_of(quality: np.ndarray, edges: list[float]) -> np.ndarray:
    q = len(edges) - 1
    return np.clip(np.searchsorted(np.asarray(edges[1:-1]), quality, side="left"), 0, q - 1)


def _realiser(bucket: np.ndarray, tokens: np.ndarray, u: np.ndarray):
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


# ----------------------------------------------------------------------------------------------- step 3
@dataclass
class MixShuffleStage:
    params: MixParams

    @property
    def name(self) -> str:
        return self.params.name + "-shuffle"

    @property
    def output(self) -> str:
        return io.join(self.params.work, "shuffle")

    def tasks(self) -> list[Task]:
        return [Task(key, (stream, url)) for stream, key, url in self.params.files()]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        """Each document line is matched with its stats row by line number; only the lines the plan copies are
        parsed (their id checked against the row's) and re-encoded, their text left raw JSON unless a span edit
        applies. A line the plan drops is accounted for with the stats step's reason, unparsed."""
        p = self.params
        plan = msgspec.convert(io.read_json(io.join(p.work, "plan.json")), Plan)
        stream = p.stream(task.inputs[0])
        url = task.inputs[1]
        stats = _read_parquet(io.join(p.work, "stats", task.key + ".parquet"))
        n = planned_copies(stats, plan, stream.name)
        lines, ids, h, tokens = (stats[c].to_numpy() for c in ("line", "id", "hash", "tokens"))
        reasons = stats["drop_reason"]
        has_reason = reasons.is_not_null().to_numpy()
        cuts = stats["cuts"].to_list() if stream.spans else [None] * len(stats)
        by_stats = reasons.str.starts_with(QUARANTINED_BY_STATS).fill_null(False).to_numpy()
        lead = io.attributes_url(url, stream.attributes[0]) if stream.attributes else url
        seen = np.zeros(len(stats), bool)
        rows_out, payload = [], []
        with io.gc_paused():  # a batch's parsed documents are acyclic, freed by reference counting
            for batch in io.read_lines(url, p.batch_size):
                ledger.read += len(batch.lines) + len(batch.rejected)
                ledger.quarantined(url, batch.rejected)
                found, rows = _rows_of(lines, [r.line for r in batch.rejected])
                seen[rows[found]] = True
                numbers = np.asarray(batch.numbers, np.int64)
                found, rows = _rows_of(lines, batch.numbers)
                if not found.all():
                    problem = f"{lead} ends before line {numbers[~found][0]}"
                    stream.out_of_step(problem)
                    ledger.quarantined(
                        url, [Rejected(int(k), "attributes_out_of_step", problem) for k in numbers[~found]]
                    )
                at = np.flatnonzero(found)
                checked = at[(n[rows[at]] == 0) & ~by_stats[rows[at]]]  # lines not copied: only their id is checked
                checked = checked[~io.starts_with_id([batch.lines[i] for i in checked], ids[rows[checked]])]
                line_ids = np.array([io.line_id(batch.lines[i]) for i in checked], object)  # failed the byte check
                off = line_ids != ids[rows[checked]]
                for i, line_id in zip(checked[off], line_ids[off]):
                    number = batch.numbers[i]
                    if line_id is None:
                        bad = Rejected(
                            number, "invalid_json", "no JSON object with a string id", raw=batch.lines[i][:4096]
                        )
                    else:
                        problem = f"{lead} line {number} has id {ids[rows[i]]!r}, the document has {line_id!r}"
                        stream.out_of_step(problem)
                        bad = Rejected(number, "attributes_out_of_step", problem, id=line_id)
                    ledger.quarantined(url, [bad])
                seen[rows[checked[off]]] = True
                at = np.setdiff1d(at, checked[off])
                r = rows[at]
                seen[r] = True
                dropped = has_reason[r]
                zero = ~dropped & (n[r] == 0)
                why = reasons.gather(r[dropped]).to_list()
                ledger.dropped(url, numbers[at[dropped]].tolist(), ids[r[dropped]].tolist(), why)
                ledger.dropped(url, numbers[at[zero]].tolist(), ids[r[zero]].tolist(), ZERO_COPIES)
                kept_numbers, kept_ids = [], []
                for i in at[n[r] > 0]:  # only the lines the plan copies are parsed
                    row, number = int(rows[i]), batch.numbers[i]
                    try:
                        doc = io.parse_line(number, batch.lines[i], lazy=True)
                    except io.RejectedLine as e:
                        ledger.quarantined(url, [e.rejected])
                        continue
                    if doc.id != ids[row]:
                        problem = f"{lead} line {number} has id {ids[row]!r}, the document has {doc.id!r}"
                        stream.out_of_step(problem)
                        ledger.quarantined(url, [Rejected(number, "attributes_out_of_step", problem, id=doc.id)])
                        continue
                    kept_numbers.append(number)
                    kept_ids.append(doc.id)
                    payload += _encoded_copies(doc, int(n[row]), stream, cuts[row])
                    rows_out.append(row)
                ledger.kept(url, kept_numbers, kept_ids)
                report_progress(len(batch.lines) + len(batch.rejected), batch.nbytes)
        missing = np.flatnonzero(~seen & ~by_stats)
        if len(missing):
            problem = f"{url} ends before line {lines[missing[0]]}, which {lead} describes"
            stream.out_of_step(problem)
            ledger.read += len(missing)  # the stats step's rows stand in for the lines the file lacks
            ledger.quarantined(url, [Rejected(int(lines[i]), "documents_missing", problem, id=ids[i]) for i in missing])
        row = np.repeat(np.asarray(rows_out, np.int64), n[rows_out])
        copy = np.arange(len(row)) - np.repeat(np.cumsum(n[rows_out]) - n[rows_out], n[rows_out])
        ledger.metrics["copies"] += len(row)
        ledger.metrics[f"tokens:{stream.name}"] += int(tokens[row].sum())
        key = shuffle_keys(h[row], copy)
        part = key % np.uint64(plan.partitions)
        order = np.argsort(part, kind="stable")  # the columns are built in this order: no copy to reorder them
        row, copy, key = row[order], copy[order], key[order]
        table = pa.table(
            {
                "key": pa.array(key, pa.uint64()),
                "origin": pa.array(h[row], pa.uint64()),  # the same for every copy of a document
                "tokens": pa.array(tokens[row], pa.int64()),
                "id": pa.array(_copy_ids(ids[row], copy), pa.string()),
                "doc": pa.array([payload[i] for i in order.tolist()], pa.large_binary()),  # lines, newline-ended
            }
        )
        bounds = np.searchsorted(part[order], np.arange(plan.partitions + 1, dtype=np.uint64))
        for k in range(plan.partitions):
            io.write_arrow(
                io.join(p.work, "shuffle", f"part={k:05d}", task.key + ".arrow"),
                table.slice(bounds[k], bounds[k + 1] - bounds[k]),
            )


ZERO_COPIES = "repetition factor 0 (below the throwaway quantile or a rounded-down fraction)"
ID_HEAD = b'{"id":'  # how every encoded document line starts (the id is the first field)


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


def _rows_of(lines: np.ndarray, wanted: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(found, row) of each wanted line number in the sorted ``lines``."""
    rows = np.minimum(np.searchsorted(lines, np.asarray(wanted, np.int64)), max(len(lines) - 1, 0))
    if not len(lines):
        return np.zeros(len(wanted), bool), rows
    return lines[rows] == np.asarray(wanted, np.int64), rows


def _encoded_copies(doc: LazyDocument, n: int, stream: Stream, cuts: list[list[int]] | None) -> list[bytes]:
    """``n`` JSON lines, each with its newline: the document (span edits applied, the stream's name as a missing
    source), then copies whose id gets ``#k``; the rest of the line is shared bytes, encoded once."""
    if not doc.source:
        doc = msgspec.structs.replace(doc, source=stream.name)
    if cuts:
        text = _edited(msgspec.json.decode(doc.text, type=str), cuts, stream.spans)
        doc = msgspec.structs.replace(doc, text=msgspec.Raw(ENCODER.encode(text)))
    line = ENCODER.encode(doc) + b"\n"
    rest = line[len(ID_HEAD) + len(ENCODER.encode(doc.id)) :]
    return [line] + [ID_HEAD + ENCODER.encode(f"{doc.id}#{k}") + rest for k in range(1, n)]


def _copy_ids(ids: np.ndarray, copy: np.ndarray) -> list[str]:
    return [i if k == 0 else f"{i}#{k}" for i, k in zip(ids.tolist(), copy.tolist())]


# ----------------------------------------------------------------------------------------------- step 4
@dataclass
class MixWriteStage:
    params: MixParams

    @property
    def name(self) -> str:
        return self.params.name + "-write"

    @property
    def output(self) -> str:
        return self.params.output

    def tasks(self) -> list[Task]:
        plan = msgspec.convert(io.read_json(io.join(self.params.work, "plan.json")), Plan)
        return [Task(f"part-{k:05d}") for k in range(plan.partitions)]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        p = self.params
        part = task.key.removeprefix("part-")
        files = io.list_files(io.join(p.work, "shuffle", f"part={part}", "**", "*.arrow"))
        if not files:
            return
        table = pa.concat_tables([io.read_arrow(f) for f in files]).combine_chunks()
        order = np.argsort(table["key"].to_numpy(), kind="stable")
        order = order[spread(table["origin"].to_numpy()[order])]
        ledger.read += len(order)
        if not len(order):
            return
        ledger.kept(f"part={part}", np.arange(1, len(order) + 1), table["id"].take(order).to_pylist())
        docs = table["doc"].chunk(0).take(order)  # one buffer of newline-ended lines, in their final order
        ends = np.frombuffer(docs.buffers()[1], np.int64)[: len(docs) + 1]
        lines = memoryview(docs.buffers()[2])
        bound = np.r_[0, np.cumsum(table["tokens"].to_numpy()[order])]
        start, n_file = 0, 0
        while start < len(docs):  # greedy: a file takes documents while it stays within max_tokens_per_file
            end = max(int(np.searchsorted(bound, bound[start] + p.max_tokens_per_file, side="right")) - 1, start + 1)
            with io.AtomicWriter(io.join(p.output, f"{task.key}-{n_file:04d}.jsonl.zst")) as w:
                w.write(lines[ends[start] : ends[end]])
            start, n_file = end, n_file + 1


def spread(origin: np.ndarray) -> np.ndarray:
    """An order of the rows in which no two neighbours are copies of one document, wherever the rows allow it.

    Scanning left to right, a row that repeats its predecessor's origin swaps with the nearest later row that
    does not (at the end, where none is left, it moves back into a gap between two other documents); only the
    positions a move touched are looked at again, so the cost follows the collisions (rare after the random
    sort), not the rows."""
    order, o = np.arange(len(origin)), origin.copy()
    todo = (np.flatnonzero(o[1:] == o[:-1]) + 1).tolist()  # ascending: already a heap
    while todo:
        i = heapq.heappop(todo)
        if i >= len(o) or o[i] != o[i - 1]:
            continue
        j = _next_other(o, i + 1, o[i - 1])
        if j >= 0:
            o[[i, j]], order[[i, j]] = o[[j, i]], order[[j, i]]
            for k in (i + 1, j, j + 1):
                heapq.heappush(todo, k)
            continue
        # every later row is a copy of the same document: move this one back between two other documents
        gaps = np.flatnonzero((o[: i - 1] != o[i]) & (o[1:i] != o[i])) + 1
        if len(gaps):
            g = int(gaps[-1])
            o[g : i + 1], order[g : i + 1] = np.roll(o[g : i + 1], 1), np.roll(order[g : i + 1], 1)
            heapq.heappush(todo, i + 1)
    return order


def _next_other(o: np.ndarray, start: int, value) -> int:
    """The first index >= start whose value differs from ``value`` (-1 if none), in growing windows."""
    width = 64
    while start < len(o):
        hit = np.flatnonzero(o[start : start + width] != value)
        if len(hit):
            return start + int(hit[0])
        start, width = start + width, width * 2
    return -1


def _write_parquet(url: str, df: pl.DataFrame) -> None:
    io.write_parquet(url, df.to_arrow())


def _read_parquet(url: str) -> pl.DataFrame:
    return pl.from_arrow(io.read_parquet(url))


class PoolGroup(msgspec.Struct):
    source: str
    topic: str = ""
    bucket_tokens: list[float] = []  # tokens per quality quantile bucket, lowest first
    tokens: float = 0.0  # or a total, spread evenly over the buckets


class PoolDescription(msgspec.Struct):
    """A pool described by statistics only: plan a mix from it without any documents."""

    target_tokens: int
    shares: dict[str, float]
    groups: list[PoolGroup]
    quantiles: int = 20
    throwaway: float = 0.4
    max_repetition: float = 7.0
    curve_p: float = 1.5
    curve_lambda: float = 1.0


def plan_from_description(path: str) -> Plan:
    import yaml

    with open(path) as f:
        try:
            desc = msgspec.convert(yaml.safe_load(f), PoolDescription, strict=False)  # YAML reads 1.0e12 as text
        except msgspec.ValidationError as e:
            raise io.UserError(f"{path}: {e}") from None
    params = MixParams(
        streams=[Stream(name, [], share=share) for name, share in desc.shares.items()],
        work="",
        output="",
        target_tokens=desc.target_tokens,
        quantiles=desc.quantiles,
        throwaway=desc.throwaway,
        max_repetition=desc.max_repetition,
        curve_p=desc.curve_p,
        curve_lambda=desc.curve_lambda,
        calibrate=False,
    )
    groups = {}
    for g in desc.groups:
        if g.source not in desc.shares:
            raise io.UserError(f"{path}: group source {g.source!r} has no share")
        tokens = np.asarray(g.bucket_tokens or [g.tokens / desc.quantiles] * desc.quantiles, np.float64)
        if len(tokens) != desc.quantiles:
            raise io.UserError(f"{path}: {g.source}/{g.topic} has {len(tokens)} buckets, not {desc.quantiles}")
        groups[(g.source, g.topic)] = (list(np.linspace(0, 1, desc.quantiles + 1)), tokens)
    return plan_from_histograms(params, groups)


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


@dataclass
class MixStage(MixParams):
    """The recipe entry ``stage: mix``: the four steps above."""

    def stages(self) -> list:
        return [MixStatsStage(self), MixPlanStage(self), MixShuffleStage(self), MixWriteStage(self)]
