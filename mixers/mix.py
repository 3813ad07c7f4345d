"""The mixer: filters, span edits and value-weighted repetition solved to an exact token target.

Four restartable steps (the recipe entry ``stage: mix`` expands into them):

1. ``stats`` (a task per input file): documents joined with their attribute sets; include/exclude rules
   (``mixers.rules``) decide what is kept, and every kept document's source, topic, quality score, token count
   and rounding draw ``u = hash(seed, id)`` go to ``<work>/stats/``.
2. ``plan`` (one task, statistics only): per source and topic, quality quantiles (default 20); the bottom
   ``throwaway`` share is dropped and each kept bucket gets a repetition factor from
   ``f(x) = min(max_repetition, C · x^p · e^{λx})`` (x = the bucket's quantile rank in (0, 1]; p and λ shape
   the curve, C is solved) so that every source hits its share of ``target_tokens``. With ``calibrate`` the
   solve uses the realised copies of every document (see step 3), not their expectation, so the mix hits its
   target to within one document. Writes ``plan.json``, a table and ``plan.png``.
3. ``shuffle`` (a task per input file): a document with factor f is written ``floor(f) + [u < frac(f)]`` times
   (deterministic stochastic rounding: no coordination between workers), after span edits; every copy gets a
   random key ``hash(seed, id, copy)`` and goes to one of the plan's partitions.
4. ``write`` (a task per partition): copies sorted by key (sources interleave; no two copies of a document
   are adjacent) and written as size-limited ``.jsonl.zst`` shards.

The curve family is Dolma 3's: monotone for p, λ ≥ 0, flat (uniform repetition) at p = λ = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import polars as pl
import xxhash

from dolma import io
from dolma.document import ENCODER, Document
from dolma.executor import Task, report_progress
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


def draw(seed: int, ids: list[str]) -> np.ndarray:
    """The rounding draw u ∈ [0, 1) of each document: a hash of (seed, id), so any worker gets the same."""
    return np.array([xxhash.xxh64_intdigest(i.encode(), seed=seed) for i in ids], np.float64) / 2.0**64


def copies(factor: np.ndarray, u: np.ndarray) -> np.ndarray:
    return (np.floor(factor) + (u < factor - np.floor(factor))).astype(np.int64)


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
        for batch, frame in _batches(self.params, stream, url):
            ledger.read += len(batch.docs) + len(batch.rejected)
            ledger.quarantined(url, batch.rejected)
            reason = frame["drop_reason"].to_list()
            keep = [r is None for r in reason]
            ledger.kept(url, [n for n, k in zip(batch.lines, keep) if k], [d.id for d, k in zip(batch.docs, keep) if k])
            dropped = [(n, d.id, r) for n, d, r in zip(batch.lines, batch.docs, reason) if r is not None]
            ledger.dropped(url, [n for n, _, _ in dropped], [i for _, i, _ in dropped], [r for _, _, r in dropped])
            frames.append(frame.filter(pl.col("drop_reason").is_null()).drop("drop_reason"))
            report_progress(len(batch.docs) + len(batch.rejected), batch.nbytes)
        table = pl.concat(frames) if frames else pl.DataFrame(schema=STATS_SCHEMA)
        ledger.metrics["tokens_kept"] += int(table["tokens"].sum())
        _write_parquet(io.join(self.params.work, "stats", task.key + ".parquet"), table)


STATS_SCHEMA = {
    "line": pl.Int64,
    "id": pl.String,
    "source": pl.String,
    "topic": pl.String,
    "quality": pl.Float64,
    "tokens": pl.Int64,
    "u": pl.Float64,
}


def _batches(p: MixParams, stream: Stream, url: str):
    """(batch, frame) per batch: frame has line, id, source, topic, quality, tokens, u and drop_reason."""
    include, exclude = stream.rules()
    keys = sorted({k for r in include + exclude for k in r.keys} | {k for k in (stream.quality, stream.tokens) if k})
    sources = {name: io.attributes_url(url, name) for name in stream.attributes}
    for batch in io.read_aligned(url, sources, p.batch_size):
        off = next((r for r in batch.rejected if r.reason == "attributes_out_of_step"), None)
        if off is not None and stream.misaligned == "error":
            raise io.UserError(f"{url} line {off.line}: {off.error} (set misaligned: quarantine to skip such lines)")
        merged = [{k: v for a in per_doc.values() for k, v in a.items()} for per_doc in batch.attributes]
        columns = {k: [(m[k][0][2] if m.get(k) else None) for m in merged] for k in keys}
        frame = pl.DataFrame(
            {k: pl.Series(v, dtype=pl.Float64) for k, v in columns.items()}, schema={k: pl.Float64 for k in keys}
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
        texts = [_edited(d.text, m, stream.spans) for d, m in zip(batch.docs, merged)]
        if stream.tokens and not stream.spans:
            tokens = frame[stream.tokens].fill_null(0).cast(pl.Int64)
        else:
            tokens = pl.Series(_count_tokens(p.tokenizer, texts), dtype=pl.Int64)
        topic = [
            (
                max(
                    ((k[len(stream.topic) :], v[0][2]) for k, v in m.items() if k.startswith(stream.topic) and v),
                    key=lambda kv: kv[1],
                    default=("", 0),
                )[0]
            )
            if stream.topic
            else ""
            for m in merged
        ]
        ids = [d.id for d in batch.docs]
        out = frame.select(drop_reason=reason).with_columns(
            line=pl.Series(batch.lines, dtype=pl.Int64),
            id=pl.Series(ids, dtype=pl.String),
            source=pl.lit(stream.name),
            topic=pl.Series(topic, dtype=pl.String),
            quality=frame[stream.quality].fill_null(0.0) if stream.quality else pl.lit(0.0),
            tokens=tokens,
            u=pl.Series(draw(p.seed, ids)),
        )
        batch.texts = texts
        yield batch, out


def _edited(text: str, attrs: dict[str, list], edits: list[SpanEdit]) -> str:
    spans = sorted(
        (int(s), int(e), edit.replacement)
        for edit in edits
        for s, e, score in attrs.get(edit.attribute, [])
        if score >= edit.threshold
    )
    if not spans:
        return text
    out, cursor = [], 0
    for s, e, replacement in spans:
        if s < cursor:  # overlapping spans: extend the current one
            if e > cursor:
                cursor = e
            continue
        out += [text[cursor:s], replacement]
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
    out = []
    for (source, topic), (edges, tokens) in sorted(groups.items()):
        target = (
            params.target_tokens
            * shares.get(source, 0.0)
            * kept_tokens(source, tokens)
            / max(kept_by_source[source], 1.0)
        )
        realised = (realisers or {}).get((source, topic))
        factors = solve_group(tokens, target, params, realised, flat=source in flat)
        planned = realised(factors) if realised else float(np.dot(tokens, factors))
        out.append(
            GroupPlan(
                source,
                topic,
                [float(e) for e in edges],
                [int(t) for t in tokens],
                [round(float(f), 9) for f in factors],
                int(available[(source, topic)]),
                float(target),
                float(planned),
            )
        )
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
        stats = pl.concat([_read_parquet(f) for f in io.list_files(io.join(p.work, "stats", "**", "*.parquet"))])
        groups, realisers = {}, {}
        for (source, topic), g in stats.group_by("source", "topic", maintain_order=True):
            edges = [float(v) for v in np.quantile(g["quality"].to_numpy(), np.linspace(0, 1, p.quantiles + 1))]
            bucket = bucket_of(g["quality"].to_numpy(), edges)
            tokens = np.bincount(bucket, weights=g["tokens"].to_numpy(), minlength=p.quantiles)
            groups[(source, topic)] = (edges, tokens)
            if p.calibrate:
                realisers[(source, topic)] = _realiser(bucket, g["tokens"].to_numpy(), g["u"].to_numpy())
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

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for g in plan.groups:
        q = len(g.factors)
        ax.step((np.arange(q) + 1) / q, g.factors, where="mid", label=f"{g.source}/{g.topic}" if g.topic else g.source)
    ax.axhline(plan.max_repetition, color="grey", linestyle="--", label=f"cap {plan.max_repetition:g}")
    ax.set_xlabel("quality quantile")
    ax.set_ylabel("repetition factor")
    ax.set_title(f"{plan.curve}: {plan.planned_tokens:,.0f} of {plan.target_tokens:,} tokens")
    ax.legend(fontsize=7, ncol=2)
    buf = stdio.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
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
        p = self.params
        plan = msgspec.convert(io.read_json(io.join(p.work, "plan.json")), Plan)
        stream = p.stream(task.inputs[0])
        url = task.inputs[1]
        groups = {(g.source, g.topic): g for g in plan.groups}
        keys, parts, payload = [], [], []
        for batch, frame in _batches(p, stream, url):
            ledger.read += len(batch.docs) + len(batch.rejected)
            ledger.quarantined(url, batch.rejected)
            n = np.zeros(len(batch.docs), np.int64)
            reasons = frame["drop_reason"].to_list()
            token_counts = frame["tokens"].to_list()
            for i, (topic, quality, u, reason) in enumerate(
                zip(frame["topic"].to_list(), frame["quality"].to_list(), frame["u"].to_list(), reasons)
            ):
                if reason is None:
                    g = groups[(stream.name, topic)]
                    f = g.factors[int(bucket_of(np.array([quality]), g.edges)[0])]
                    n[i] = copies(np.array([f]), np.array([u]))[0]
            for i, (doc, line, reason) in enumerate(zip(batch.docs, batch.lines, reasons)):
                if reason is not None:
                    ledger.dropped(url, [line], [doc.id], reason)
                    continue
                if n[i] == 0:
                    ledger.dropped(
                        url,
                        [line],
                        [doc.id],
                        "repetition factor 0 (below the throwaway quantile or a rounded-down fraction)",
                    )
                    continue
                ledger.kept(url, [line], [doc.id])
                ledger.metrics["copies"] += int(n[i])
                ledger.metrics[f"tokens:{stream.name}"] += int(n[i]) * token_counts[i]
                text = batch.texts[i]
                for k in range(int(n[i])):
                    key = xxhash.xxh64_intdigest(f"{doc.id}\x00{k}".encode(), seed=p.seed)
                    copy = Document(
                        doc.id if k == 0 else f"{doc.id}#{k}",
                        text,
                        doc.source or stream.name,
                        doc.added,
                        doc.created,
                        doc.metadata,
                    )
                    keys.append(key)
                    parts.append(key % plan.partitions)
                    payload.append(ENCODER.encode(copy))
            report_progress(len(batch.docs) + len(batch.rejected), batch.nbytes)
        table = pl.DataFrame(
            {
                "key": pl.Series(keys, dtype=pl.UInt64),
                "part": pl.Series(parts, dtype=pl.Int64),
                "doc": pl.Series(payload, dtype=pl.Binary),
            }
        )
        for part in range(plan.partitions):
            _write_parquet(
                io.join(p.work, "shuffle", f"part={part:05d}", task.key + ".parquet"),
                table.filter(pl.col("part") == part).select("key", "doc"),
            )


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
        files = io.list_files(io.join(p.work, "shuffle", f"part={part}", "**", "*.parquet"))
        table = (
            pl.concat([_read_parquet(f) for f in files]).sort("key")
            if files
            else pl.DataFrame(schema={"key": pl.UInt64, "doc": pl.Binary})
        )
        docs = [msgspec.json.decode(b, type=Document) for b in table["doc"].to_list()]
        base = [d.id.split("#", 1)[0] for d in docs]
        for i in range(1, len(docs)):  # copies of one document are never adjacent: swap with a later one
            if base[i] == base[i - 1]:
                j = next((j for j in range(i + 1, len(docs)) if base[j] != base[i - 1]), None)
                if j is not None:
                    docs[i], docs[j] = docs[j], docs[i]
                    base[i], base[j] = base[j], base[i]
        ledger.read += len(docs)
        ledger.kept(f"part={part}", list(range(1, len(docs) + 1)), [d.id for d in docs])
        n_file, used, current = 0, 0, []
        chars_per_token = 4.0
        for doc in docs:
            size = len(doc.text) / chars_per_token
            if current and used + size > p.max_tokens_per_file:
                _write_docs(io.join(p.output, f"{task.key}-{n_file:04d}.jsonl.zst"), current)
                n_file, used, current = n_file + 1, 0, []
            current.append(doc)
            used += size
        if current:
            _write_docs(io.join(p.output, f"{task.key}-{n_file:04d}.jsonl.zst"), current)


def _write_docs(url: str, docs: list[Document]) -> None:
    with io.DocumentWriter(url) as w:
        w.write(docs)


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
