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
   the two documents' n-gram sets; a task holds the sets of its shard's documents in edges and of one partner
   shard's at a time, so memory follows the shard size (``<work>/verified/<shard>.parquet``).
4. ``clusters`` (one task): connected components over the verified edges by iterative min-label propagation in
   numpy (memory grows with the edges, not with documents × hashes), and a keeper per component by a
   configurable order.
5. ``attributes`` (one task per shard): ``<name>__<method>__{duplicate,cluster_size,cluster}`` for every
   document, aligned with the documents, so the mixer can drop duplicates. The ledger records each duplicate
   as dropped with "duplicate of <keeper id>".

A document is referred to by ``shard number << 32 | line``, so every step is independent of the worker count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
import xxhash

from dolma import io
from dolma.document import ENCODER, AttributeLine
from dolma.executor import Task, report_progress
from dolma.ledger import ShardLedger

PRESETS = {
    "fineweb": {"ngram": 5, "bands": 14, "rows": 8, "jaccard_threshold": None},
    "dolma3": {"ngram": 5, "bands": 26, "rows": 11, "jaccard_threshold": 0.8},
}
KEEPER_RULES = ("quality", "newest", "longest", "lowest_id")
MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass
class DedupParams:
    """Shared by the five steps; ``work`` holds the intermediates, ``name`` is the attribute set."""

    input: str
    work: str
    name: str = "dedup"
    method: str = "minhash"  # minhash | exact
    preset: str | None = "dolma3"
    ngram: int = 5
    bands: int = 26
    rows: int = 11
    seed: int = 1
    jaccard_threshold: float | None = 0.8
    keeper: list[str] = field(default_factory=lambda: ["quality", "newest", "longest", "lowest_id"])
    quality_attribute: str | None = None  # "<set>/<set>__<tagger>__<key>": higher is kept
    batch_size: int = 2048
    # key ranges per band in the pairs step: a pairs task holds 1/pair_partitions of one band's keys over the
    # corpus (16 bytes a document), so raise it as the corpus grows (e.g. one per 50M documents)
    pair_partitions: int = 1

    def __post_init__(self) -> None:
        if self.pair_partitions < 1:
            raise io.UserError("pair_partitions must be at least 1")
        if self.method not in ("minhash", "exact"):
            raise io.UserError(f"dedup method must be minhash or exact, not {self.method!r}")
        if self.preset:
            if self.preset not in PRESETS:
                raise io.UserError(f"unknown dedup preset {self.preset!r}; presets: {', '.join(PRESETS)}")
            for k, v in PRESETS[self.preset].items():
                setattr(self, k, v)
        bad = [k for k in self.keeper if k not in KEEPER_RULES]
        if bad:
            raise io.UserError(f"unknown keeper rule {bad[0]!r}; rules: {', '.join(KEEPER_RULES)}")
        if self.quality_attribute and "/" not in self.quality_attribute:
            raise io.UserError("quality_attribute is '<attribute set>/<key>', e.g. 'quality/quality__x__hq'")

    @property
    def n_bands(self) -> int:
        return 1 if self.method == "exact" else self.bands

    def shards(self) -> list[tuple[int, str, str]]:
        """(shard number, key, url) of every input file, numbered in sorted order."""
        files = io.document_files(self.input)
        return [(i, io.strip_suffix(io.relative_to_root(f, self.input)), f) for i, f in enumerate(files)]


def s_curve(bands: int, rows: int, points: int = 11) -> list[tuple[float, float]]:
    """Probability that two documents of Jaccard similarity s share at least one band: 1 - (1 - s^r)^b."""
    return [(s, 1 - (1 - s**rows) ** bands) for s in np.linspace(0, 1, points).round(2).tolist()]


# ------------------------------------------------------------------------------------------------ shingles
def normalise(texts: pl.Series) -> pl.Series:
    return (
        texts.str.to_lowercase()
        .str.replace_all(r"[\p{P}\p{S}]", " ")
        .str.replace_all(r"\d", "0")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )


WORD = r"[^\p{P}\p{S}\s]+"


def shingle_hashes(texts: pl.Series, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(document index, 64-bit hash) of every word n-gram of every text (a text shorter than n words is one
    shingle). Hashes combine word hashes polynomially, in numpy, with wrap-around."""
    # the words of normalise(text), found in one pass: runs of what is neither punctuation, symbol nor space
    words = (
        pl.DataFrame({"w": texts.str.to_lowercase().str.replace_all(r"\d", "0").str.extract_all(WORD)})
        .with_row_index("doc")
        .explode("w")
        .filter(pl.col("w").is_not_null())
    )
    doc = words["doc"].to_numpy().astype(np.int64)
    h = words["w"].hash(seed=7).to_numpy()
    if not len(doc):
        return doc, h
    counts = np.bincount(doc, minlength=len(texts))
    length = counts[doc]
    pos = np.arange(len(doc)) - (np.cumsum(counts) - counts)[doc]  # the word's place in its text
    # a full n-gram starts at pos; a text shorter than n words has one shingle, at its first word
    start = np.flatnonzero((pos + n <= length) | ((length < n) & (pos == 0)))
    key = h[start]
    padded = np.r_[h, np.zeros(n, np.uint64)]
    with np.errstate(over="ignore"):
        for j in range(1, n):
            following = np.where(pos[start] + j < length[start], padded[start + j], np.uint64(0))
            key = key * np.uint64(0x100000001B3) + following
    return doc[start], key


def minhash(
    doc: np.ndarray, shingles: np.ndarray, n_docs: int, n_perm: int, seed: int, chunk: int = 2048
) -> np.ndarray:
    """MinHash signatures (n_docs × n_perm, uint32): h_i(x) = a_i·x + b_i mod 2^32 (a_i odd, so each h_i is a
    permutation of 32-bit values) over the shingle hashes folded to 32 bits.

    Shingles go through in small chunks with a reused buffer (cache-sized, no temporaries), so memory stays at
    chunk × n_perm; documents without shingles keep the maximum in every slot."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**32, n_perm, dtype=np.uint64).astype(np.uint32) | np.uint32(1)
    b = rng.integers(0, 2**32, n_perm, dtype=np.uint64).astype(np.uint32)
    x32 = (shingles ^ (shingles >> np.uint64(32))).astype(np.uint32)
    sig = np.full((n_docs, n_perm), np.iinfo(np.uint32).max, np.uint32)
    buf = np.empty((chunk, n_perm), np.uint32)
    for start in range(0, len(x32), chunk):
        x = x32[start : start + chunk]
        hashed = buf[: len(x)]
        np.multiply(x[:, None], a[None, :], out=hashed)
        np.add(hashed, b[None, :], out=hashed)
        d = doc[start : start + chunk]
        bounds = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])
        np.minimum.at(sig, d[bounds], np.minimum.reduceat(hashed, bounds, axis=0))
    return sig


# ------------------------------------------------------------------------------------------------- stages
@dataclass
class SignatureStage:
    params: DedupParams

    @property
    def name(self) -> str:
        return f"{self.params.name}-signatures"

    @property
    def output(self) -> str:
        return io.join(self.params.work, "signatures")

    def tasks(self) -> list[Task]:
        return [Task(key, (url, str(number))) for number, key, url in self.params.shards()]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        p = self.params
        url, number = task.inputs[0], int(task.inputs[1])
        quality = _quality_reader(p, url)
        refs, ids, lengths, created, scores, band_keys = [], [], [], [], [], []
        for batch in io.read_documents(url, p.batch_size):
            ledger.read += len(batch.docs) + len(batch.rejected)
            ledger.quarantined(url, batch.rejected)
            ledger.kept(url, batch.lines, [d.id for d in batch.docs])
            texts = pl.Series([d.text for d in batch.docs], dtype=pl.String)
            refs.append((np.uint64(number) << np.uint64(32)) | np.asarray(batch.lines, np.uint64))
            ids += [d.id for d in batch.docs]
            lengths += texts.str.len_chars().to_list()
            created += [d.created or "" for d in batch.docs]
            scores += [quality(line) for line in batch.lines] if quality else [0.0] * len(batch.docs)
            band_keys.append(self._band_keys(texts, refs[-1]))
            report_progress(len(batch.docs) + len(batch.rejected), batch.nbytes)
        ref = np.concatenate(refs) if refs else np.empty(0, np.uint64)
        width = 2 if p.method == "exact" else p.n_bands
        keys = np.concatenate(band_keys) if band_keys else np.empty((0, width), np.uint64)
        _write_parquet(
            io.join(p.work, "docs", task.key + ".parquet"),
            pl.DataFrame(
                {"doc": ref, "id": ids, "length": lengths, "created": created, "quality": scores},
                schema_overrides={"doc": pl.UInt64, "length": pl.Int64, "quality": pl.Float64},
            ),
        )
        for band in range(p.n_bands):
            key = keys[:, 2 * band : 2 * band + 2] if p.method == "exact" else keys[:, band : band + 1]
            _write_parquet(
                io.join(p.work, "bands", f"band={band:03d}", task.key + ".parquet"),
                pl.DataFrame(
                    {
                        "key": key[:, 0],
                        "key2": key[:, 1] if key.shape[1] > 1 else np.zeros(len(ref), np.uint64),
                        "doc": ref,
                    },
                    schema={"key": pl.UInt64, "key2": pl.UInt64, "doc": pl.UInt64},
                ),
            )

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


@dataclass
class PairsStage:
    params: DedupParams

    @property
    def name(self) -> str:
        return f"{self.params.name}-pairs"

    @property
    def output(self) -> str:
        return io.join(self.params.work, "pairs")

    def tasks(self) -> list[Task]:
        parts = self.params.pair_partitions
        return [
            Task(f"band={b:03d}" + (f"-keys={k:03d}" if parts > 1 else ""), (str(b), str(k)))
            for b in range(self.params.n_bands)
            for k in range(parts)
        ]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        """The band's keys in this task's key range (key mod pair_partitions), from every shard's band file."""
        p = self.params
        band, part = int(task.inputs[0]), int(task.inputs[1])
        files = io.list_files(io.join(p.work, "bands", f"band={band:03d}", "**", "*.parquet"))
        in_range = (pl.col("key") % p.pair_partitions) == part
        bands = (
            pl.concat([_read_parquet(f).filter(in_range) for f in files])
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
        _write_parquet(io.join(self.params.work, "edges", task.key + ".parquet"), edges)


@dataclass
class VerifyStage:
    """Candidate edges checked by true Jaccard similarity, one task per shard holding the edges' smaller
    documents. A task holds the n-gram sets of its own shard's documents in edges and of one partner shard at a
    time, so memory follows the shard size, not the corpus. Without a Jaccard threshold (or for exact dedup)
    every candidate edge passes as it is."""

    params: DedupParams

    @property
    def name(self) -> str:
        return f"{self.params.name}-verify"

    @property
    def output(self) -> str:
        return io.join(self.params.work, "verified")

    def _edges(self, shard: int | None = None) -> pl.DataFrame:
        """The candidate edges of every band (only those whose first document is in ``shard``, if given)."""
        keep = pl.lit(True) if shard is None else (pl.col("a") // 2**32) == shard
        files = io.list_files(io.join(self.params.work, "edges", "*.parquet"))
        if not files:
            return pl.DataFrame(schema={"a": pl.UInt64, "b": pl.UInt64})
        return pl.concat([_read_parquet(f).filter(keep) for f in files]).unique()

    def tasks(self) -> list[Task]:
        shards = self._edges().select(pl.col("a") // 2**32).unique().sort("a")["a"].to_list()
        return [Task(f"{a:05d}", (str(a),)) for a in shards] or [Task("none")]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        """Edges whose first document is in this task's shard; the other shards are visited one at a time."""
        p = self.params
        edges = self._edges(int(task.inputs[0])) if task.inputs else self._edges().clear()
        ledger.metrics["candidate_edges"] += len(edges)
        if p.method == "minhash" and p.jaccard_threshold is not None and len(edges):
            urls = {number: url for number, _, url in p.shards()}
            shard = int(task.inputs[0])
            edges = edges.with_columns(sb=pl.col("b") // 2**32)
            inside = edges.filter(pl.col("sb") == shard)["b"].to_numpy()
            own = self._sets(urls, shard, np.concatenate([edges["a"].to_numpy(), inside]))
            kept = []
            for (sb,), group in edges.group_by("sb", maintain_order=True):
                other = own if sb == shard else self._sets(urls, sb, group["b"].to_numpy())
                similarity = self._jaccard(group, own, other)
                kept.append(group.filter(pl.Series(similarity >= p.jaccard_threshold)))
            edges = pl.concat(kept).drop("sb")
        ledger.metrics["verified_edges"] += len(edges)
        _write_parquet(io.join(self.output, task.key + ".parquet"), edges.sort("a", "b"))

    def _sets(self, urls: dict[int, str], shard: int, docs: np.ndarray) -> dict[int, np.ndarray]:
        """The n-gram sets of the given documents of one shard (only their lines are parsed)."""
        p = self.params
        lines = set(np.unique(docs & np.uint64(0xFFFFFFFF)).tolist())
        sets: dict[int, np.ndarray] = {}
        chunk: list[tuple[int, str]] = []

        def add(chunk: list[tuple[int, str]]) -> None:  # texts are held one batch at a time, only sets stay
            doc, shingles = shingle_hashes(pl.Series([t for _, t in chunk], dtype=pl.String), p.ngram)
            bounds = np.searchsorted(doc, np.arange(len(chunk) + 1))
            for i, (line, _) in enumerate(chunk):
                sets[(shard << 32) | line] = np.unique(shingles[bounds[i] : bounds[i + 1]])

        for line, d in io.read_selected(urls[shard], lines):
            chunk.append((line, d.text))
            if len(chunk) == p.batch_size:
                add(chunk)
                chunk = []
        if chunk:
            add(chunk)
        return sets

    @staticmethod
    def _jaccard(edges: pl.DataFrame, left: dict[int, np.ndarray], right: dict[int, np.ndarray]) -> np.ndarray:
        """True Jaccard similarity of each edge's two n-gram sets."""
        out = np.zeros(len(edges))
        for i, (a, b) in enumerate(zip(edges["a"].to_list(), edges["b"].to_list())):
            x, y = left.get(a), right.get(b)
            if x is not None and y is not None and (len(x) or len(y)):
                inter = len(np.intersect1d(x, y, assume_unique=True))
                out[i] = inter / (len(x) + len(y) - inter)
        return out


@dataclass
class ClusterStage:
    """Connected components over the verified edges and a keeper per component (one task: its memory is the
    edge list and the rows of the documents in some cluster)."""

    params: DedupParams

    @property
    def name(self) -> str:
        return f"{self.params.name}-clusters"

    @property
    def output(self) -> str:
        return io.join(self.params.work, "clusters")

    def tasks(self) -> list[Task]:
        return [Task("all")]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        p = self.params
        files = io.list_files(io.join(p.work, "verified", "*.parquet"))
        edges = (
            pl.concat([_read_parquet(f) for f in files])
            if files
            else pl.DataFrame(schema={"a": pl.UInt64, "b": pl.UInt64})
        )
        nodes, labels = connected_components(edges["a"].to_numpy(), edges["b"].to_numpy())
        clusters = pl.DataFrame({"doc": nodes, "component": labels}, schema={"doc": pl.UInt64, "component": pl.UInt64})
        # only the documents of some cluster are loaded: memory follows the edges, not the corpus
        docs = pl.concat(
            [
                _read_parquet(f).join(clusters.select("doc"), on="doc", how="semi")
                for f in io.list_files(io.join(p.work, "docs", "**", "*.parquet"))
            ]
        )
        clusters = clusters.join(docs, on="doc", how="left")
        order, descending = [], []
        for rule in p.keeper:
            column, desc = {
                "quality": ("quality", True),
                "newest": ("created", True),
                "longest": ("length", True),
                "lowest_id": ("id", False),
            }[rule]
            order.append(column)
            descending.append(desc)
        keepers = (
            clusters.sort([*order, "doc"], descending=[*descending, False])
            .group_by("component")
            .agg(keeper=pl.col("doc").first(), keeper_id=pl.col("id").first(), size=pl.len())
        )
        clusters = clusters.join(keepers, on="component").select(
            "doc", "keeper", "keeper_id", "size", duplicate=pl.col("doc") != pl.col("keeper")
        )
        ledger.metrics["clusters"] += len(keepers)
        ledger.metrics["duplicates"] += int(clusters["duplicate"].sum())
        _write_parquet(io.join(p.work, "clusters.parquet"), clusters.sort("doc"))


@dataclass
class DedupAttributeStage:
    params: DedupParams

    @property
    def name(self) -> str:
        return f"{self.params.name}-attributes"

    @property
    def output(self) -> str:
        return io.join(self.params.work, "attributes")

    def tasks(self) -> list[Task]:
        return [Task(key, (url, str(number))) for number, key, url in self.params.shards()]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        p = self.params
        url, number = task.inputs[0], int(task.inputs[1])
        lo, hi = np.uint64(number) << np.uint64(32), np.uint64(number + 1) << np.uint64(32)
        clusters = (
            pl.scan_parquet(io.join(p.work, "clusters.parquet"))
            .filter((pl.col("doc") >= lo) & (pl.col("doc") < hi))
            .collect()
        )
        docs = _read_parquet(io.join(p.work, "docs", task.key + ".parquet")).join(clusters, on="doc", how="left")
        docs = docs.with_columns(
            line=(pl.col("doc") & 0xFFFFFFFF).cast(pl.Int64),
            duplicate=pl.col("duplicate").fill_null(False),
            size=pl.col("size").fill_null(1).cast(pl.Float64),
            keeper=pl.col("keeper").fill_null(pl.col("doc")).cast(pl.Float64),
        ).sort("line")
        known = docs["line"].to_numpy()
        ids, length, dup, size, keeper, keeper_id = (
            docs[c].to_list() for c in ("id", "length", "duplicate", "size", "keeper", "keeper_id")
        )
        prefix = f"{p.name}__{p.method}__"
        with io.AtomicWriter(io.attributes_url(url, p.name)) as out:
            for batch in io.read_lines(url, p.batch_size):  # only line numbers: ids and lengths come from docs/
                ledger.read += len(batch.lines) + len(batch.rejected)
                ledger.quarantined(url, batch.rejected)
                rows = np.searchsorted(known, batch.numbers)
                lines, kept, dropped = [], [], []
                for number, line, row in zip(batch.numbers, batch.lines, rows.tolist()):
                    if row >= len(known) or known[row] != number:  # the signatures step rejected this line
                        try:
                            io.parse_line(number, line)
                        except io.RejectedLine as e:
                            ledger.quarantined(url, [e.rejected])
                            lines.append(AttributeLine(e.rejected.id or "", {}))
                            continue
                        raise io.UserError(f"{url} line {number} changed since the signatures step: rerun dedup")
                    n = length[row]
                    attrs = {
                        prefix + "duplicate": [[0, n, 1.0 if dup[row] else 0.0]],
                        prefix + "cluster_size": [[0, n, size[row]]],
                        prefix + "cluster": [[0, n, keeper[row]]],
                    }
                    lines.append(AttributeLine(ids[row], attrs))
                    (dropped if dup[row] else kept).append((number, row))
                ledger.kept(url, [k for k, _ in kept], [ids[r] for _, r in kept])
                ledger.dropped(
                    url,
                    [k for k, _ in dropped],
                    [ids[r] for _, r in dropped],
                    "duplicate",
                    [f"duplicate of {keeper_id[r]}" for _, r in dropped],
                )
                out.write(ENCODER.encode_lines(lines))
                report_progress(len(batch.lines) + len(batch.rejected), batch.nbytes)


def dedup_stages(params: DedupParams) -> list:
    return [
        SignatureStage(params), PairsStage(params), VerifyStage(params), ClusterStage(params),
        DedupAttributeStage(params),
    ]  # fmt: skip


@dataclass
class DedupStage(DedupParams):
    """The recipe entry ``stage: dedup``: expands into the five steps above."""

    def stages(self) -> list:
        return dedup_stages(self)


# --------------------------------------------------------------------------------------------- components
def connected_components(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes of the edge list and the smallest node of each one's component, by min-label propagation with
    pointer jumping; memory is a few arrays the size of the edge list."""
    if not len(a):
        return np.empty(0, np.uint64), np.empty(0, np.uint64)
    nodes, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    u, v = inverse[: len(a)], inverse[len(a) :]
    label = np.arange(len(nodes))
    while True:
        lu, lv = label[u], label[v]
        low = np.minimum(lu, lv)
        new = label.copy()
        np.minimum.at(new, u, low)
        np.minimum.at(new, v, low)
        new = new[new]  # pointer jumping
        while True:
            jumped = new[new]
            if np.array_equal(jumped, new):
                break
            new = jumped
        if np.array_equal(new, label):
            return nodes, nodes[label]
        label = new


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


def _write_parquet(url: str, df: pl.DataFrame) -> None:
    io.write_parquet(url, df.to_arrow())


def _read_parquet(url: str) -> pl.DataFrame:
    return pl.from_arrow(io.read_parquet(url))


def describe(params: DedupParams) -> str:
    if params.method == "exact":
        return "exact: documents with the same normalised text (xxh3 hash)"
    threshold = (1 / params.bands) ** (1 / params.rows)
    lines = [
        f"MinHash LSH: {params.ngram}-grams, {params.bands} bands × {params.rows} rows "
        f"({params.bands * params.rows} hashes), S-curve midpoint ≈ {threshold:.2f}"
        + (f", candidates verified at Jaccard ≥ {params.jaccard_threshold}" if params.jaccard_threshold else "")
    ]
    lines.append("  similarity  P(candidate)")
    lines += [
        f"  {s:10.2f}  {prob:12.3f}  {'#' * int(round(prob * 40))}" for s, prob in s_curve(params.bands, params.rows)
    ]
    return "\n".join(lines)
