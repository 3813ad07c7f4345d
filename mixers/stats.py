"""The mix's first two steps: a statistics row per document line, then the plan from those rows alone.

See :mod:`mixers.mix` for the four steps together.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import msgspec
import numpy as np
import polars as pl

from dolma import io
from dolma.core.errors import UserError
from dolma.runtime.ledger import ShardLedger
from dolma.runtime.report import ResultTable, Section
from dolma.runtime.run import read_summary, task_summaries
from dolma.runtime.shards import read_shard
from dolma.runtime.stage import OneFile, Step, Task
from mixers.config import MixParams, SpanEdit, Stream
from mixers.plan import (
    Plan,
    bucket_of,
    draws,
    hashes,
    misses_table,
    plan_from_histograms,
    plan_result,
    realiser,
    share_misses,
    write_plan_plot,
)
from mixers.rules import SPANS_TYPE, jq_keys, spans_column


@dataclass(frozen=True)
class StreamFile(OneFile):
    """A stats or shuffle task: one document file of one stream."""

    stream: str
    url: str


# ----------------------------------------------------------------------------------------------- step 1
@dataclass
class MixStatsStage(Step):
    params: MixParams
    intermediate = True
    step, folder = "stats", "stats"

    def tasks(self) -> list[Task]:
        files = self.params.files()
        for stream, _, url in files:
            io.require_attributes(url, self.params.stream(stream).attributes, f"{self.params.name} stream {stream!r}")
        return [Task(key, StreamFile(stream, url)) for stream, key, url in files]

    def task_basis(self, tasks: list[Task]) -> str:
        rules = [r for s in self.params.streams for side in s.rules() for r in side]
        each = [r for r in rules if not r.vectorised]
        said = f"one per stream's document file; {len(rules) - len(each)} rules vectorised"
        engines = " and ".join(sorted({r.engine for r in each}))
        shown = "; ".join(r.text for r in each[:3]) + ("; …" if len(each) > 3 else "")
        return said + (f", {len(each)} run by {engines} per document ({shown})" if each else "")

    def inputs(self, task: Task) -> list[str]:
        url = task.payload.url
        return [url] + [io.attributes_url(url, n) for n in self.params.stream(task.payload.stream).attributes]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        stream = self.params.stream(task.payload.stream)
        url = task.payload.url
        frames = []
        reader = partial(_stats_reader, self.params, stream)
        rules = stream.rules()  # compiled once per file, not per batch
        with io.gc_paused():
            for batch in read_shard(url, ledger, self.params.batch_size, reader=reader):
                batch, bad = _checked_values(stream, batch)
                ledger.quarantined(url, bad)
                batch.rejected = batch.rejected + bad  # recorded in the stats table with the rest
                frame = _stats_frame(self.params, stream, rules, url, batch)
                is_kept = pl.col("drop_reason").is_null()
                kept, dropped = frame.filter(is_kept), frame.filter(~is_kept)
                ledger.kept(url, kept["line"].to_list(), kept["id"].to_list())
                ledger.dropped(
                    url, dropped["line"].to_list(), dropped["id"].to_list(), dropped["drop_reason"].to_list()
                )
                ledger.metrics["tokens_kept"] += int(kept["tokens"].sum())
                for key in stream.keys():  # how many lines have each key the stream names: a typo has none
                    ledger.metrics[KEY_LINES + key] += sum(v is not None for v in batch.columns.get(key, ()))
                if stream.topic:
                    ledger.metrics[KEY_LINES + stream.topic + "*"] += int((frame["topic"] != "").sum())
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
        table = pl.concat(frames, how="diagonal_relaxed").sort("line") if frames else pl.DataFrame()
        io.write_frame(
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


def _stats_reader(p: MixParams, stream: Stream, url: str, batch_size: int) -> Iterator[io.AttributeColumns]:
    """The stream's attribute columns of one document file, a batch at a time.

    The documents themselves are read only when their text is needed (tokens counted by the tokenizer, or
    span edits changing the count); otherwise the attribute sets alone give ids, scores and token counts,
    decoded a batch at a time into columns."""
    select = io.KeySelection(frozenset(stream.keys()), stream.topic or "")
    sources = {name: io.attributes_url(url, name) for name in stream.attributes}
    if not stream.reads_text():
        yield from io.read_attribute_columns(sources, select, batch_size)
        return
    for b in io.read_aligned(url, sources, batch_size, select):
        ids = [d.id for d in b.docs]
        yield io.AttributeColumns(b.lines, ids, io.joined_columns(b), b.rejected, b.nbytes, docs=b.docs)


def _stats_frame(
    p: MixParams, stream: Stream, rules: tuple[list, list], url: str, batch: io.AttributeColumns
) -> pl.DataFrame:
    """A row per joined line of the batch with its drop reason and what the plan needs."""
    include, exclude = rules
    keys = sorted(stream.keys())
    docs = batch.docs
    off = next((r for r in batch.rejected if r.reason == "attributes_out_of_step"), None)
    if off is not None:
        stream.out_of_step(f"{url} line {off.line}: {off.error}")
    n = len(batch.ids)
    spans = {k: batch.columns.get(k, [None] * n) for k in keys}
    frame = pl.DataFrame(
        {
            "line": pl.Series(batch.lines, dtype=pl.Int64),
            "id": pl.Series(batch.ids, dtype=pl.String),
            **{k: pl.Series(first_scores(v), dtype=pl.Float64) for k, v in spans.items()},
            **{
                spans_column(k): pl.Series(spans[k], dtype=SPANS_TYPE, strict=False)
                for k in jq_keys(rules[0] + rules[1])
            },
        }
    )
    reason = pl.lit(None, pl.String)
    for rule in reversed(include):  # the first failing rule names the reason
        present = pl.all_horizontal([pl.col(k).is_not_null() for k in rule.keys])
        if rule.missing == "error":
            missing = frame.select(~present).to_series()
            if missing.any():
                i = int(missing.arg_true()[0])
                raise UserError(f"{url} line {batch.lines[i]}: attribute missing for rule '{rule.text}'")
        ok = rule.expr.fill_null(rule.missing == "keep") if rule.missing != "error" else rule.expr
        reason = pl.when(~ok.fill_null(False)).then(pl.lit(f"include: {rule.text}")).otherwise(reason)
    for rule in reversed(exclude):
        hit = rule.expr.fill_null(rule.missing == "drop") if rule.missing != "error" else rule.expr
        reason = pl.when(hit.fill_null(False)).then(pl.lit(f"exclude: {rule.text}")).otherwise(reason)
    cuts = span_cuts([spans[e.attribute] for e in stream.spans], stream.spans) if stream.spans else None
    if docs is not None:
        texts = [edited_text(d.text, c, stream.spans) for d, c in zip(docs, cuts or [None] * n)]
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
    return out


MAX_TOKENS = 1 << 40  # a token count above this (a trillion) is not a document's


def _checked_values(stream: Stream, batch: io.AttributeColumns) -> tuple[io.AttributeColumns, list[io.Rejected]]:
    """The batch without its lines whose token count (finite, 0 to MAX_TOKENS) or quality score (finite) is
    not a usable number, and those lines as ``invalid_attribute`` records naming the key and the value."""
    checks = []
    if stream.tokens and not stream.reads_text():
        checks.append((stream.tokens, lambda v: np.isfinite(v) & (v >= 0) & (v <= MAX_TOKENS)))
    if stream.quality:
        checks.append((stream.quality, np.isfinite))
    bad: dict[int, str] = {}
    for key, valid in checks:
        values = np.array(first_scores(batch.columns.get(key, [])), dtype=np.float64)  # None -> nan: missing
        with np.errstate(invalid="ignore"):
            wrong = ~np.isnan(values) & ~valid(values)
        for i in np.flatnonzero(wrong).tolist():
            bad.setdefault(
                i, f"{key} = {values[i]!r} is not a usable {'token count' if key == stream.tokens else 'score'}"
            )
    if not bad:
        return batch, []
    keep = [i for i in range(len(batch.ids)) if i not in bad]
    rejected = [io.Rejected(batch.lines[i], "invalid_attribute", e, id=batch.ids[i]) for i, e in sorted(bad.items())]
    docs = [batch.docs[i] for i in keep] if batch.docs is not None else None
    columns = {k: [v[i] for i in keep] for k, v in batch.columns.items()}
    lines, ids = [batch.lines[i] for i in keep], [batch.ids[i] for i in keep]
    return io.AttributeColumns(lines, ids, columns, batch.rejected, batch.nbytes, docs), rejected


def first_scores(spans: list) -> list:
    """The score of each line's first span (None where the line lacks the attribute): what rules compare."""
    return [v[0][2] if v else None for v in spans]


def _topics(columns: dict[str, list], prefix: str | None, n: int) -> list[str]:
    """Per line, the suffix of the ``prefix`` key with the highest score ("" where no such key is present;
    ties go to the first key in sorted order)."""
    topic_keys = sorted(k for k in columns if prefix and k.startswith(prefix))
    if not topic_keys:
        return [""] * n
    scores = np.array([first_scores(columns[k]) for k in topic_keys], dtype=np.float64)  # None -> nan
    present = ~np.isnan(scores)
    best = np.argmax(np.where(present, scores, -np.inf), axis=0)
    names = np.array([k[len(prefix) :] for k in topic_keys], dtype=object)
    return np.where(present.any(axis=0), names[best], "").tolist()


def span_cuts(spans: list[list], edits: list[SpanEdit]) -> list[list[list[int]]]:
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


def edited_text(text: str, cuts: list[list[int]] | None, edits: list[SpanEdit]) -> str:
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
    from dolma.core.tokenizer import DEFAULT_TOKENIZER, load_tokenizer, token_counts

    return token_counts(load_tokenizer(tokenizer or DEFAULT_TOKENIZER), texts).tolist()


# ----------------------------------------------------------------------------------------------- step 2


@dataclass
class MixPlanStage(Step):
    params: MixParams
    intermediate = True
    step, folder = "plan", "plan"

    def tasks(self) -> list[Task]:
        return [Task("plan")]

    def task_basis(self, tasks: list[Task]) -> str:
        return "one: the plan, from every file's statistics"

    def inputs(self, task: Task) -> list[str]:
        return [io.join(self.params.work, "stats", "**", "*.parquet")]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        p = self.params
        columns = ["source", "topic", "quality", "tokens", "hash"]
        stats = pl.concat(
            [
                io.read_frame(f).filter(pl.col("drop_reason").is_null()).select(columns)
                for f in io.list_files(io.join(p.work, "stats", "**", "*.parquet"))
            ]
        )
        _check_keys(p)
        stats, repeated = _first_of_each_id(stats, [s.name for s in p.streams])
        io.write_frame(io.join(p.work, "repeated_ids.parquet"), repeated)
        ledger.metrics["ids_in_several_streams"] += len(repeated)
        groups, realisers = {}, {}
        for (source, topic), g in stats.group_by("source", "topic", maintain_order=True):
            edges = [float(v) for v in np.quantile(g["quality"].to_numpy(), np.linspace(0, 1, p.quantiles + 1))]
            bucket = bucket_of(g["quality"].to_numpy(), edges)
            tokens = np.bincount(bucket, weights=g["tokens"].to_numpy(), minlength=p.quantiles)
            groups[(source, topic)] = (edges, tokens)
            if p.calibrate:
                realisers[(source, topic)] = realiser(bucket, g["tokens"].to_numpy(), draws(g["hash"].to_numpy()))
        plan = plan_from_histograms(p, groups, realisers)
        ledger.metrics["planned_tokens"] += plan.planned_tokens
        io.write_json(io.join(p.work, "plan.json"), plan)
        write_plan_plot(plan, io.join(p.work, "plan.png"))

    def report(self) -> list[Section]:
        from mixers.report import mix_sections

        return mix_sections(self.params)

    def result_tables(self) -> list[ResultTable]:
        from mixers.shuffle import MixShuffleStage, realised_tokens

        url = io.join(self.params.work, "plan.json")
        if not io.exists(url):
            return []
        plan = msgspec.convert(io.read_json(url), Plan)
        shuffled = read_summary(MixShuffleStage(self.params))
        misses = share_misses(plan, realised_tokens(shuffled.metrics)) if shuffled else []
        return [plan_result(plan)] + ([misses_table(misses)] if misses else [])


REPEATED_ID = "duplicate_id_across_streams"


def _first_of_each_id(stats: pl.DataFrame, streams: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the rows of each document id's first occurrence, in recipe order of the streams and then file order;
    the other rows as (source, hash, winner)). Ids are compared by their 64-bit hash, the column every step
    already has (two different ids collide with probability 2^-64 per pair)."""
    ranked = stats.with_row_index("row").with_columns(
        rank=pl.col("source").replace_strict({s: i for i, s in enumerate(streams)}, return_dtype=pl.Int64)
    )
    first = ranked.sort("rank", "row").unique("hash", keep="first", maintain_order=True)
    repeated = (
        ranked.join(first.select("hash", winner="source", first_row="row"), on="hash")
        .filter(pl.col("row") != pl.col("first_row"))
        .select("source", "hash", "winner")
    )
    return first.sort("row").drop("row", "rank"), repeated


KEY_LINES = "lines_with:"  # stats metric: lines that have an attribute key (a topic prefix ends with *)


def _check_keys(p: MixParams) -> None:
    """Every key a stream names must occur in some line of its attribute files, unless it allows absent keys:
    a misspelled rule, span edit, quality or topic key would otherwise filter or mask nothing, silently."""
    seen: dict[str, dict[str, float]] = {s.name: {} for s in p.streams}
    for task, summary in task_summaries(MixStatsStage(p)):
        counts = seen[task.payload.stream]
        for k, v in summary.metrics.items():
            if k.startswith(KEY_LINES):
                counts[k[len(KEY_LINES) :]] = counts.get(k[len(KEY_LINES) :], 0.0) + v
    for stream in p.streams:
        if stream.absent_keys == "allow" or not stream.attributes:
            continue
        wanted = sorted(stream.keys()) + ([stream.topic + "*"] if stream.topic else [])
        absent = [k for k in wanted if not seen[stream.name].get(k)]
        if absent:
            raise UserError(
                f"{p.name} stream {stream.name!r}: attribute key {absent[0]!r} is in no line of its attribute sets "
                f"({', '.join(stream.attributes)}); keys there: {', '.join(_keys_there(stream)) or 'none'} "
                "(set absent_keys: allow if it may be absent everywhere)"
            )


def _keys_there(stream: Stream) -> list[str]:
    """The keys of the first line of each attribute set of the stream's first document file."""
    files = [url for pattern in stream.documents for url in io.document_files(pattern)][:1]
    keys: set[str] = set()
    for url in files:
        for name in stream.attributes:
            first = next(iter(io.read_attributes(io.attributes_url(url, name))), None)
            if first is not None and not isinstance(first[1], io.Rejected):
                keys |= set(first[1].attributes)
    return sorted(keys)
