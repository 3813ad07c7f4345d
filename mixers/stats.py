"""The mix's first step: a statistics row per document line, and the kept rows partitioned for the ids step.

See :mod:`mixers.mix` for the five steps together.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np
import polars as pl

from dolma import io
from dolma.core.errors import UserError
from dolma.runtime.ledger import ShardLedger
from dolma.runtime.shards import read_shard
from dolma.runtime.stage import OneFile, Step, Task
from mixers.config import MixParams, SpanEdit, Stream
from mixers.plan import hashes
from mixers.planning import KEY_LINES, PLAN_ROWS, partition_of, plan_partitions
from mixers.rules import SPANS_TYPE, jq_keys, spans_column


@dataclass(frozen=True)
class StreamFile(OneFile):
    """A stats or shuffle task: one document file of one stream."""

    stream: str
    url: str


@dataclass(frozen=True)
class StatsFile(StreamFile):
    """A stats task: its file's place in the order the ids step ranks first occurrences by (its stats file's
    path among all of them), and the number of hash partitions its kept rows are written into."""

    order: int
    partitions: int


# ----------------------------------------------------------------------------------------------- step 1
@dataclass
class MixStatsStage(Step):
    params: MixParams
    intermediate = True
    step, folder = "stats", "stats"

    def tasks(self) -> list[Task]:
        p = self.params
        files = p.files()
        for stream, _, url in files:
            io.require_attributes(url, p.stream(stream).attributes, f"{p.name} stream {stream!r}")
        order = {k: i for i, k in enumerate(sorted((key for _, key, _ in files), key=self._stats_url))}
        parts = plan_partitions(p)
        return [Task(key, StatsFile(stream, url, order[key], parts)) for stream, key, url in files]

    def _stats_url(self, key: str) -> str:
        return io.join(self.params.work, "stats", key + ".parquet")

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
        """A row per line of the file, written a batch at a time (the task holds a batch): to the stats table,
        and the kept rows into the ids step's partition of their hash (every partition gets a file)."""
        stream = self.params.stream(task.payload.stream)
        url = task.payload.url
        reader = partial(_stats_reader, self.params, stream)
        rules = stream.rules()  # compiled once per file, not per batch
        parts = range(task.payload.partitions)
        part_urls = [io.join(self.params.work, "plan_rows", f"part={k:05d}", task.key + ".parquet") for k in parts]
        with io.gc_paused(), contextlib.ExitStack() as streams:
            table = streams.enter_context(io.FrameStream(self._stats_url(task.key), STATS_SCHEMA))
            plan_rows = [streams.enter_context(io.FrameStream(u, PLAN_ROWS)) for u in part_urls]
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
                rows = _typed(pl.concat([frame, _rejected_rows(batch)], how="diagonal_relaxed").sort("line"))
                table.write(rows)
                self._write_plan_rows(task, rows, plan_rows)

    def _write_plan_rows(self, task: Task, rows: pl.DataFrame, plan_rows: list[io.FrameStream]) -> None:
        """The batch's kept rows, each into the ids step's partition of its hash."""
        kept = rows.filter(pl.col("drop_reason").is_null()).select(
            *(c for c in PLAN_ROWS if c != "file"), file=pl.lit(task.payload.order, pl.Int64)
        )
        parts = kept.with_columns(part=partition_of(pl.col("hash"), task.payload.partitions)).partition_by(
            "part", as_dict=True, include_key=False
        )  # one pass over the rows, not one filter per partition
        for (k,), frame in parts.items():
            plan_rows[k].write(frame.select(PLAN_ROWS.keys()))


def _rejected_rows(batch: io.AttributeColumns) -> pl.DataFrame:
    """The batch's rejected lines as stats rows: their drop reason says who rejected them."""
    return pl.DataFrame(
        {
            "line": [r.line for r in batch.rejected],
            "id": [r.id for r in batch.rejected],
            "drop_reason": [QUARANTINED_BY_STATS + r.reason for r in batch.rejected],
        },
        schema={k: STATS_SCHEMA[k] for k in ("line", "id", "drop_reason")},
    )


def _typed(rows: pl.DataFrame) -> pl.DataFrame:
    """The stats schema's columns in order, each of its type (a column no rule produced is null)."""
    return rows.select(
        pl.col(k).cast(t) if k in rows.columns else pl.lit(None, t).alias(k) for k, t in STATS_SCHEMA.items()
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
    yield from io.read_aligned_columns(url, sources, select, batch_size)


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
