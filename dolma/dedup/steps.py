"""Document deduplication as separate, restartable steps: exact (normalised-text hash) and MinHash LSH.

1. ``signatures`` (one task per shard): normalise text (lower case, punctuation to spaces, digits to 0,
   whitespace collapsed), hash word n-grams, compute MinHash signatures in numpy, and write one key per band to
   ``<work>/bands/band=<b>/<shard>.parquet`` (exact mode: one "band" whose key is the 128-bit xxhash of the
   normalised text), plus ``<work>/docs/<shard>.parquet`` (id, length, created, quality) for the keeper rule.
2. ``pairs`` (one task per band and key range): a polars group-by on the band key; each group of two or more
   documents becomes edges from its smallest member to the others (``<work>/edges/band=<b>[-keys=<k>].parquet``).
   With ``pair_partitions`` P, a task reads only the keys with ``key mod P == k``, so its memory is 1/P of a
   band over the corpus.
3. ``verify`` (one task per shard): optional verification of every edge by the true Jaccard similarity of
   the two documents' n-gram sets. The sets of its shard's documents in edges, and of one partner shard's at a
   time, are spilled to a local temporary file as a batch is hashed and read back two at a time, so a task
   holds its edges, a batch and where each set is, not the sets (``<work>/verified/<shard>.parquet``).
4. ``graph``, ``components-NNN``, ``labels`` and ``route`` (tasks per shard or per edge partition, see
   :mod:`dolma.dedup.component_steps`): connected components of the verified edges by rounds of large-star and
   small-star, each round a task per partition, then every clustered document and edge sent to the partition
   of its component. ``clusters`` (one task per component partition): a keeper per component by a
   configurable order, checked against its removed members (``<work>/clusters/part=<k>.parquet``).
5. ``attributes`` (one task per shard): ``<name>__<method>__{duplicate,cluster_size,cluster}`` for every
   document, aligned with the documents, so the mixer can drop duplicates. The ledger records each duplicate
   as dropped with "duplicate of <keeper id>".

A document is referred to by ``shard number << 32 | line``, so every step is independent of the worker count.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
import polars as pl
import xxhash

from dolma import io
from dolma.core.document import AttributeLine
from dolma.dedup.minhash import minhash, normalise, shingle_hashes
from dolma.dedup.params import DedupParams
from dolma.runtime.ledger import ShardLedger
from dolma.runtime.shards import read_shard
from dolma.runtime.stage import Step, Task, shard_tasks

DOCS = {"doc": pl.UInt64, "id": pl.String, "length": pl.Int64, "created": pl.String, "quality": pl.Float64}
BANDS = {"key": pl.UInt64, "key2": pl.UInt64, "doc": pl.UInt64}


@dataclass
class SignatureStage(Step):
    params: DedupParams
    intermediate = True
    step, folder = "signatures", "signatures"

    def tasks(self) -> list[Task]:
        return shard_tasks(self.params.input)

    def inputs(self, task: Task) -> list[str]:
        p = self.params
        name = p.quality_attribute.partition("/")[0] if p.quality_attribute else ""
        return [task.payload.url] + ([io.attributes_url(task.payload.url, name)] if name else [])

    def run(self, task: Task, ledger: ShardLedger) -> None:
        """Each batch's documents and band keys go out as a row group of each file: the task holds a batch."""
        p = self.params
        url, number = task.payload.url, task.payload.number
        quality = _quality_reader(p, url)
        with ExitStack() as streams:
            docs = streams.enter_context(io.FrameStream(io.join(p.work, "docs", task.key + ".parquet"), DOCS))
            bands = [
                streams.enter_context(
                    io.FrameStream(io.join(p.work, "bands", f"band={band:03d}", task.key + ".parquet"), BANDS)
                )
                for band in range(p.n_bands)
            ]
            for batch in read_shard(url, ledger, p.batch_size, keep_all=True):
                texts = pl.Series([d.text for d in batch.docs], dtype=pl.String)
                ref = (np.uint64(number) << np.uint64(32)) | np.asarray(batch.lines, np.uint64)
                scores = [quality(line) for line in batch.lines] if quality else [0.0] * len(batch.docs)
                frame = {"doc": ref, "id": [d.id for d in batch.docs], "length": texts.str.len_chars()}
                frame |= {"created": [d.created or "" for d in batch.docs], "quality": scores}
                docs.write(pl.DataFrame(frame, schema=DOCS))
                keys = self._band_keys(texts, ref)
                for band, stream in enumerate(bands):
                    key = keys[:, 2 * band : 2 * band + 2] if p.method == "exact" else keys[:, band : band + 1]
                    key2 = key[:, 1] if key.shape[1] > 1 else np.zeros(len(ref), np.uint64)
                    stream.write(pl.DataFrame({"key": key[:, 0], "key2": key2, "doc": ref}, schema=BANDS))

    def _band_keys(self, texts: pl.Series, refs: np.ndarray) -> np.ndarray:
        p = self.params
        if p.method == "exact":  # the 128-bit hash as two 64-bit columns
            digests = b"".join(xxhash.xxh3_128_digest(t.encode()) for t in normalise(texts).to_list())
            return np.frombuffer(digests, np.uint64).reshape(-1, 2)
        doc, shingles = shingle_hashes(texts, p.ngram)
        sig = minhash(doc, shingles, len(texts), p.bands * p.rows, p.seed)
        # a band's key folds its rows into 64 bits (equal rows give equal keys; unequal ones collide ~2^-64)
        keys = np.zeros((len(texts), p.bands), np.uint64)
        with np.errstate(over="ignore"):
            for r in range(p.rows):
                keys = keys * np.uint64(0x9E3779B97F4A7C15) + sig[:, r :: p.rows][:, : p.bands].astype(np.uint64)
        # documents without any word share no band with anything: their keys come from their unique refs
        empty = np.bincount(doc, minlength=len(texts)) == 0
        keys[empty] = refs[empty][:, None] ^ np.uint64(0xA5A5A5A5A5A5A5A5)
        return keys


EDGE_GROUP_ROWS = 1 << 16  # candidate edges per row group of a band's file


@dataclass(frozen=True)
class KeyRange:
    """A pairs task: one band, and the keys with ``key mod pair_partitions == part``."""

    band: int
    part: int


@dataclass
class PairsStage(Step):
    params: DedupParams
    intermediate = True
    step, folder = "pairs", "pairs"

    def tasks(self) -> list[Task]:
        parts = self.params.pair_partitions
        return [
            Task(f"band={b:03d}" + (f"-keys={k:03d}" if parts > 1 else ""), KeyRange(b, k))
            for b in range(self.params.n_bands)
            for k in range(parts)
        ]

    def task_basis(self, tasks: list[Task]) -> str:
        return f"{self.params.n_bands} bands × {self.params.pair_partitions} key partitions (pair_partitions)"

    def inputs(self, task: Task) -> list[str]:
        return [io.join(self.params.work, "bands", f"band={task.payload.band:03d}", "**", "*.parquet")]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        """The band's keys in this task's key range (key mod pair_partitions), from every shard's band file."""
        p = self.params
        band, part = task.payload.band, task.payload.part
        files = io.list_files(io.join(p.work, "bands", f"band={band:03d}", "**", "*.parquet"))
        in_range = (pl.col("key") % p.pair_partitions) == part
        bands = (
            pl.concat([io.read_frame(f).filter(in_range) for f in files])
            if files
            else pl.DataFrame(schema={"key": pl.UInt64, "key2": pl.UInt64, "doc": pl.UInt64})
        )
        groups = bands.group_by("key", "key2").agg(pl.col("doc").sort()).filter(pl.col("doc").list.len() > 1)
        edges = (
            groups.select(a=pl.col("doc").list.first(), b=pl.col("doc").list.slice(1))
            .explode("b")
            .unique()
            .sort("a", "b")
        )
        ledger.metrics["edges"] += len(edges)
        # sorted by the first document, in row groups: a verify task reads only the groups of its shard's range
        io.write_frame(io.join(self.params.work, "edges", task.key + ".parquet"), edges, EDGE_GROUP_ROWS)


@dataclass
class VerifyStage(Step):
    """Candidate edges checked by true Jaccard similarity, one task per shard holding the edges' smaller
    documents. A task holds the n-gram sets of its own shard's documents in edges and of one partner shard at a
    time, so memory follows the shard size, not the corpus. Each kept edge carries the share of each side's
    n-grams the other holds, for the ``contained`` keeper rule. Without a Jaccard threshold every candidate edge
    passes (the sets are still read when the keeper order uses ``contained``); exact dedup reads none."""

    params: DedupParams
    intermediate = True
    step, folder = "verify", "verified"

    def _edges(self, shard: int) -> pl.DataFrame:
        """The candidate edges of every band whose first document is in ``shard``: only those rows of each band's
        file are kept (the files are sorted by that document), so a task holds its shard's edges, not all."""
        between = [("a", ">=", shard << 32), ("a", "<", (shard + 1) << 32)]
        frames = [io.read_frame(f, between) for f in io.list_files(io.join(self.params.work, "edges", "*.parquet"))]
        return pl.concat(frames).unique() if frames else pl.DataFrame(schema={"a": pl.UInt64, "b": pl.UInt64})

    def tasks(self) -> list[Task]:
        return [Task(f"{t.payload.number:05d}", t.payload.number) for t in shard_tasks(self.params.input)]

    def task_basis(self, tasks: list[Task]) -> str:
        return "one per input file (the candidate pairs its documents lead)"

    def inputs(self, task: Task) -> list[str]:
        return [io.join(self.params.work, "edges", "*.parquet"), self.params.input]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        """Edges whose first document is in this task's shard; the other shards are visited one at a time."""
        p = self.params
        edges = self._edges(task.payload)
        ledger.metrics["candidate_edges"] += len(edges)
        # the sets are read to verify edges, and for the "contained" keeper rule (then every edge is kept)
        if p.method == "minhash" and (p.jaccard_threshold is not None or "contained" in p.keeper) and len(edges):
            threshold = p.jaccard_threshold if p.jaccard_threshold is not None else 0.0
            edges = self._verified(edges, task.payload, threshold)
        ledger.metrics["verified_edges"] += len(edges)
        io.write_frame(io.join(self.output, task.key + ".parquet"), edges.sort("a", "b"))

    def _verified(self, edges: pl.DataFrame, shard: int, threshold: float) -> pl.DataFrame:
        """The edges whose documents' n-gram sets are at least ``threshold`` alike, with each side's containment;
        the partner shards' sets are made one shard at a time."""
        urls = self.params.shards()
        edges = edges.with_columns(sb=pl.col("b") // 2**32)
        inside = edges.filter(pl.col("sb") == shard)["b"].to_numpy()
        own = self._sets(urls, shard, np.concatenate([edges["a"].to_numpy(), inside]))
        kept = []
        try:
            for (sb,), group in edges.group_by("sb", maintain_order=True):
                other = own if sb == shard else self._sets(urls, sb, group["b"].to_numpy())
                try:
                    similarity, in_a, in_b = self._jaccard(group, own, other)
                finally:
                    if other is not own:
                        other.close()
                group = group.with_columns(ca=pl.Series(in_a, dtype=pl.Float32), cb=pl.Series(in_b, dtype=pl.Float32))
                kept.append(group.filter(pl.Series(similarity >= threshold)))
        finally:
            own.close()
        return pl.concat(kept).drop("sb")

    def _sets(self, urls: dict[int, str], shard: int, docs: np.ndarray) -> SpilledSets:
        """The n-gram sets of the given documents of one shard (only their lines are parsed), spilled."""
        p = self.params
        lines = set(np.unique(docs & np.uint64(0xFFFFFFFF)).tolist())
        sets = SpilledSets()
        chunk: list[tuple[int, str]] = []

        def add(chunk: list[tuple[int, str]]) -> None:  # texts are held one batch at a time, only sets stay
            doc, shingles = shingle_hashes(pl.Series([t for _, t in chunk], dtype=pl.String), p.ngram)
            bounds = np.searchsorted(doc, np.arange(len(chunk) + 1))
            for i, (line, _) in enumerate(chunk):
                sets.add((shard << 32) | line, np.unique(shingles[bounds[i] : bounds[i + 1]]))

        try:
            for line, d in io.read_selected(urls[shard], lines):
                chunk.append((line, d.text))
                if len(chunk) == p.batch_size:
                    add(chunk)
                    chunk = []
            if chunk:
                add(chunk)
        except BaseException:
            sets.close()
            raise
        sets.ready()
        return sets

    @staticmethod
    def _jaccard(
        edges: pl.DataFrame, left: SpilledSets, right: SpilledSets
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per edge: the true Jaccard similarity of its two n-gram sets, and the share of each side's n-grams
        the other holds (its containment: a copy padded with boilerplate holds all of the clean original's
        n-grams, the original only part of the padded copy's)."""
        out, in_a, in_b = np.zeros(len(edges)), np.zeros(len(edges)), np.zeros(len(edges))
        for i, (a, b) in enumerate(zip(edges["a"].to_list(), edges["b"].to_list())):
            x, y = left.get(a), right.get(b)
            if x is not None and y is not None and (len(x) or len(y)):
                inter = len(np.intersect1d(x, y, assume_unique=True))
                out[i] = inter / (len(x) + len(y) - inter)
                in_a[i], in_b[i] = inter / max(len(x), 1), inter / max(len(y), 1)
        return out, in_a, in_b


class SpilledSets:
    """Documents' n-gram sets (sorted uint64 arrays) written to a local temporary file as they are made, and read
    back one at a time by document: memory is where each set is (a few dozen bytes a document), not the sets."""

    def __init__(self):
        self._file = tempfile.TemporaryFile(prefix="dolma-sets-")
        self._where: dict[int, tuple[int, int]] = {}
        self._end = 0

    def add(self, doc: int, values: np.ndarray) -> None:
        data = np.ascontiguousarray(values, np.uint64).tobytes()
        self._file.write(data)
        self._where[doc] = (self._end, len(data))
        self._end += len(data)

    def ready(self) -> None:
        """Done adding: what was written can be read."""
        self._file.flush()

    def get(self, doc: int) -> np.ndarray | None:
        where = self._where.get(doc)
        if where is None:
            return None
        return np.frombuffer(os.pread(self._file.fileno(), where[1], where[0]), np.uint64)

    def close(self) -> None:
        self._file.close()


def _quality_reader(p: DedupParams, url: str):
    """line → quality score from the configured attribute set (0 where absent), or None."""
    if not p.quality_attribute:
        return None
    name, _, key = p.quality_attribute.partition("/")
    scores = {}
    for number, attr in io.read_attributes(io.attributes_url(url, name)):
        if isinstance(attr, AttributeLine) and attr.attributes.get(key):
            scores[number] = float(attr.attributes[key][0][2])
    return lambda line: scores.get(line, 0.0)
