"""The last two dedup steps: clusters with a keeper each, then attributes per shard; and the group of all steps.

See :mod:`dolma.dedup.steps` for the whole pipeline and :mod:`dolma.dedup.component_steps` for the
connected-components steps between ``verify`` and ``clusters``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from dolma import io
from dolma.core.document import AttributeLine
from dolma.core.errors import UserError
from dolma.dedup.component_steps import GraphStep, LabelStep, RouteStep, StarRound, partition_tasks
from dolma.dedup.keepers import check_keepers, pick_keepers
from dolma.dedup.params import DedupParams
from dolma.dedup.steps import PairsStage, SignatureStage, VerifyStage
from dolma.runtime.ledger import ShardLedger
from dolma.runtime.report import Section, figure, png
from dolma.runtime.shards import AlignedAttributes, placeholder, read_shard
from dolma.runtime.stage import Stage, StageGroup, Step, Task, shard_tasks


@dataclass
class ClusterStage(Step):
    """A keeper per component, one task per component partition: the ``route`` step sent it whole components
    (their members' keeper columns and their verified edges), so its memory is a partition, not the corpus."""

    params: DedupParams
    intermediate = True
    step, folder = "clusters", "clusters"

    def tasks(self) -> list[Task]:
        return partition_tasks(self.params)

    def task_basis(self, tasks: list[Task]) -> str:
        return "one per component partition (cluster_partitions)"

    def inputs(self, task: Task) -> list[str]:
        route = io.join(self.params.work, "route")
        return [io.join(route, kind, task.key, "**", "*.parquet") for kind in ("members", "edges")]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        p = self.params
        members_at, edges_at = (io.list_files(u) for u in self.inputs(task))
        empty = pl.DataFrame(schema={"a": pl.UInt64, "b": pl.UInt64})
        edges = pl.concat([io.read_frame(f) for f in edges_at], how="vertical_relaxed") if edges_at else empty
        if not members_at:
            io.write_frame(io.join(self.output, task.key + ".parquet"), pl.DataFrame(schema=CLUSTERS))
            return
        clusters = pl.concat([io.read_frame(f) for f in members_at], how="vertical_relaxed")
        clusters = clusters.join(_contained(edges, _similar_enough(p)), on="doc", how="left")
        members = pick_keepers(clusters.with_columns(pl.col("contained").fill_null(0.0)), p.keeper)
        if p.keeper_jaccard is not None and p.method == "minhash":
            members = check_keepers(members, edges, p, ledger.metrics)
        sizes = members.group_by("component").agg(size=pl.len())
        clusters = members.join(sizes, on="component").select(
            "doc", "keeper", "keeper_id", "size", duplicate=pl.col("doc") != pl.col("keeper")
        )
        keepers = sizes.filter(pl.col("size") > 1)
        clusters = clusters.filter(pl.col("size") > 1)  # a member left alone by the keeper check is no cluster
        ledger.metrics["clusters"] += len(keepers)
        ledger.metrics["duplicates"] += int(clusters["duplicate"].sum())
        io.write_frame(io.join(self.output, task.key + ".parquet"), clusters.cast(CLUSTERS).sort("doc"))

    def _all(self) -> pl.DataFrame:
        frames = [io.read_frame(f) for f in io.list_files(io.join(self.output, "*.parquet"))]
        return pl.concat(frames, how="vertical_relaxed") if frames else pl.DataFrame(schema=CLUSTERS)

    def report(self) -> list[Section]:
        """Cluster sizes and how many documents were flagged as duplicates of their cluster's keeper."""
        if not io.list_files(io.join(self.output, "*.parquet")):
            return []
        clusters = self._all()
        sizes = clusters.group_by("keeper").agg(pl.col("size").first())["size"].to_numpy()
        fig, ax = figure()
        values, counts = np.unique(sizes, return_counts=True)
        ax.bar([str(v) for v in values], counts, color="#455a64")
        if len(counts) and counts.max() > 50:
            ax.set_yscale("log")
        ax.set_xlabel("documents per duplicate cluster")
        ax.set_ylabel("clusters")
        ax.set_title("Near-duplicate cluster sizes")
        removed = int(clusters["duplicate"].sum()) if len(sizes) else 0
        note = (
            f"{len(sizes):,} clusters; {removed:,} documents flagged as duplicates of their cluster's keeper. "
            f"The {LARGEST} largest clusters: the keeper and a few of the copies removed for it."
        )
        return [Section("Duplicates", note, [png(fig)], self._largest(clusters))]

    def _largest(self, clusters: pl.DataFrame) -> list[list[str]]:
        """A table of the largest clusters: size, the keeper's text and a few removed copies' (cut, escaped)."""
        import html

        top = clusters.filter(~pl.col("duplicate")).sort(["size", "doc"], descending=[True, False]).head(LARGEST)
        shown = {k: clusters.filter(pl.col("keeper") == k).sort("doc").head(COPIES_SHOWN + 1) for k in top["doc"]}
        urls = {t.payload.number: t.payload.url for t in shard_tasks(self.params.input)}
        texts = _texts(urls, [d for rows in shown.values() for d in rows["doc"].to_list()])

        def cell(doc: int, label: str) -> str:
            id, text = texts.get(doc, ("?", "(no longer readable)"))
            label = f"{label}: {id}"
            cut = html.escape(text[:500]) + ("…" if len(text) > 500 else "")
            return f"<details><summary>{html.escape(label)}</summary><pre>{cut}</pre></details>"

        table = [["documents", "keeper", "removed copies (a few)"]]
        for keeper, size in zip(top["doc"].to_list(), top["size"].to_list()):
            rows = shown[keeper]
            copies = [d for d, dup in zip(rows["doc"].to_list(), rows["duplicate"].to_list()) if dup]
            table.append([f"{size:,}", cell(keeper, "kept"), "".join(cell(d, "removed") for d in copies)])
        return table


CLUSTERS = {"doc": pl.UInt64, "keeper": pl.UInt64, "keeper_id": pl.String, "size": pl.UInt32, "duplicate": pl.Boolean}


def _similar_enough(p: DedupParams) -> float | None:
    """The Jaccard an edge needs to count for the ``contained`` rule: the keeper check's, else the verify's."""
    if p.keeper_jaccard is not None:
        return float(p.keeper_jaccard)
    return None if p.jaccard_threshold is None else float(p.jaccard_threshold)


LARGEST = 5  # clusters shown in the report
COPIES_SHOWN = 2  # removed copies shown per cluster


def _texts(urls: dict[int, str], docs: list[int]) -> dict[int, tuple[str, str]]:
    """(id, text) of documents referred to as ``shard << 32 | line``, each shard read once (only those lines)."""
    wanted: dict[int, set[int]] = {}
    for doc in docs:
        wanted.setdefault(doc >> 32, set()).add(doc & 0xFFFFFFFF)
    out = {}
    for shard, lines in wanted.items():
        if shard in urls and io.exists(urls[shard]):
            out.update({(shard << 32) | n: (d.id, d.text) for n, d in io.read_selected(urls[shard], lines)})
    return out


def _contained(edges: pl.DataFrame, threshold: float | None) -> pl.DataFrame:
    """Per document in a verified edge, the summed share of its n-grams that its near-duplicate neighbours hold:
    highest for the clean original a cluster's copies were made from (a padded copy adds n-grams no other member
    has, an edited one loses some), so the ``contained`` keeper rule keeps it. Only edges whose true Jaccard
    (from the two shares) reaches ``threshold`` count: without verification every candidate edge is here, and
    summing over dissimilar neighbours would favour whichever member LSH linked most often, not the original.
    An edge between two identical sets counts for neither side: exact copies (a padded page served twice)
    would otherwise lift each other above the original they were made from. Zero without n-gram sets."""
    if "ca" not in edges.columns:
        return pl.DataFrame(schema={"doc": pl.UInt64, "contained": pl.Float64})
    edges = edges.filter((pl.col("ca") < 1) | (pl.col("cb") < 1))
    if threshold is not None:
        ca, cb = pl.col("ca").cast(pl.Float64), pl.col("cb").cast(pl.Float64)
        # intersection / |a| and / |b| give the Jaccard intersection / union as 1 / (1/ca + 1/cb - 1)
        similar = (ca > 0) & (cb > 0) & ((1 / ca + 1 / cb - 1) <= 1 / threshold + 1e-9)
        edges = edges.filter(similar)
    sides = pl.concat([edges.select(doc="a", c="ca"), edges.select(doc="b", c="cb")])
    return sides.group_by("doc").agg(contained=pl.col("c").cast(pl.Float64).sum())


@dataclass
class DedupAttributeStage(Step):
    params: DedupParams
    step, folder = "attributes", "attributes"

    def tasks(self) -> list[Task]:
        return shard_tasks(self.params.input)

    def inputs(self, task: Task) -> list[str]:
        work = self.params.work
        clusters = io.join(work, "clusters", "*.parquet")
        return [task.payload.url, clusters, io.join(work, "docs", task.key + ".parquet")]

    def run(self, task: Task, ledger: ShardLedger) -> None:
        """A batch of lines at a time: their rows of ``docs/`` (read by row group) joined with this shard's
        clustered documents, so the task holds a batch and the shard's clusters, not a row per document."""
        p = self.params
        url, number = task.payload.url, task.payload.number
        between = [("doc", ">=", number << 32), ("doc", "<", (number + 1) << 32)]
        parts = [io.read_frame(f, between) for f in io.list_files(io.join(p.work, "clusters", "*.parquet"))]
        clusters = pl.concat(parts + [pl.DataFrame(schema=CLUSTERS)], how="vertical_relaxed")
        rows = io.FrameRanges(io.join(p.work, "docs", task.key + ".parquet"), "doc")
        try:
            with AlignedAttributes(io.attributes_url(url, p.name)) as out:
                # only line numbers: ids and lengths come from docs/
                for batch in read_shard(url, ledger, p.batch_size, reader=io.read_lines):
                    if batch.numbers:
                        lo, hi = (number << 32) | batch.numbers[0], (number << 32) | batch.numbers[-1]
                        docs = rows.between(lo, hi).select("doc", "id", "length").join(clusters, on="doc", how="left")
                        out.write_lines(self._lines(url, batch, docs.sort("doc"), ledger))
        finally:
            rows.close()

    def _lines(self, url: str, batch: io.LineBatch, docs: pl.DataFrame, ledger: ShardLedger) -> list:
        """The batch's attribute lines (an empty line with the id, if any, where a line is unusable), its outcomes in
        the ledger."""
        p = self.params
        known = (docs["doc"].to_numpy() & np.uint64(0xFFFFFFFF)).astype(np.int64)
        docs = docs.with_columns(
            duplicate=pl.col("duplicate").fill_null(False),
            size=pl.col("size").fill_null(1).cast(pl.Float64),
            keeper=pl.col("keeper").fill_null(pl.col("doc")).cast(pl.Float64),
        )
        ids, length, dup, size, keeper, keeper_id = (
            docs[c].to_list() for c in ("id", "length", "duplicate", "size", "keeper", "keeper_id")
        )
        prefix = f"{p.name}__{p.method}__"
        lines, kept, dropped = [], [], []
        for number, line, row in zip(batch.numbers, batch.lines, np.searchsorted(known, batch.numbers).tolist()):
            if row >= len(known) or known[row] != number:  # the signatures step rejected this line
                try:
                    io.parse_line(number, line)
                except io.RejectedLine as e:
                    ledger.quarantined(url, [e.rejected])
                    lines.append(placeholder(e.rejected))
                    continue
                raise UserError(f"{url} line {number} changed since the signatures step: rerun dedup")
            n = length[row]
            attrs = {
                prefix + "duplicate": [[0, n, 1.0 if dup[row] else 0.0]],
                prefix + "cluster_size": [[0, n, size[row]]],
                prefix + "cluster": [[0, n, keeper[row]]],
            }
            lines.append(AttributeLine(ids[row], attrs))
            (dropped if dup[row] else kept).append((number, row))
        ledger.kept(url, [k for k, _ in kept], [ids[r] for _, r in kept])
        reasons = [f"duplicate of {keeper_id[r]}" for _, r in dropped]
        ledger.dropped(url, [k for k, _ in dropped], [ids[r] for _, r in dropped], "duplicate", reasons)
        return lines


@dataclass
class DedupStage(DedupParams, StageGroup):
    """The recipe entry ``stage: dedup``: its steps, in order (the components rounds follow one another)."""

    def stages(self) -> list[Stage]:
        return [
            SignatureStage(self), PairsStage(self), VerifyStage(self), GraphStep(self), StarRound(self),
            LabelStep(self), RouteStep(self), ClusterStage(self), DedupAttributeStage(self),
        ]  # fmt: skip
