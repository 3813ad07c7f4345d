"""Connected components of near-duplicate edges: in memory for one task's edges, and as the rounds of the
large-star / small-star algorithm (Kiveris et al., "Connected Components in MapReduce and Beyond", 2014) for
edges spread over partitions.

Each round reads one partition of an edge list (keyed by its first column) and writes edges keyed by the node
that owns them next, so a task holds one partition of the edges, never the whole graph; they are written unique
and sorted (polars' parallel group-by and join order rows differently from run to run, and a rerun or another
executor must write the same bytes). ``large_star`` links
every larger neighbour of a node to the smallest node of its neighbourhood; ``small_star`` links a node and its
smaller neighbours to the smallest of them. Alternated, they turn every component into a star around its
smallest node. A large-star that changes nothing leaves the graph as it was; if the small-star after it changes
nothing too, every edge joins a centre (no smaller neighbour) to a leaf (one neighbour): the rounds are done and
a node's label is the smallest of itself and its neighbours (the component's smallest node, as
:func:`connected_components` labels it).
"""

from __future__ import annotations

import numpy as np
import polars as pl

EDGE = {"u": pl.UInt64, "v": pl.UInt64}
_MIX = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: document numbers spread over partitions evenly


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


def partition_of(nodes: np.ndarray, partitions: int) -> np.ndarray:
    """The partition (0 .. partitions-1) that owns each node: a fixed hash, the same in every task."""
    return ((np.asarray(nodes, np.uint64) * _MIX) >> np.uint64(33)) % np.uint64(partitions)


def split(edges: pl.DataFrame, partitions: int, by: str = "u") -> dict[int, pl.DataFrame]:
    """``edges`` split by the partition of column ``by``; partitions without edges are absent."""
    part = pl.Series("part", partition_of(edges[by].to_numpy(), partitions).astype(np.int64))
    out = edges.with_columns(part).partition_by("part", as_dict=True, include_key=False)
    return {int(key[0]): frame for key, frame in out.items()}


def both_ways(edges: pl.DataFrame) -> pl.DataFrame:
    """Every edge in both directions, once each, sorted (a task's files are the same bytes on every run)."""
    return pl.concat([edges.select("u", "v"), edges.select(u="v", v="u")]).unique().sort("u", "v")


def large_star(edges: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """One partition of an undirected graph (both directions, keyed by ``u``): for every node, each larger
    neighbour linked to the smallest of the node and its neighbours, as (larger, smallest) keyed by the larger;
    and how many nodes changed their neighbourhood (they had a smaller and a larger neighbour)."""
    edges = edges.unique()
    lowest = edges.group_by("u").agg(m=pl.col("v").min(), top=pl.col("v").max())
    lowest = lowest.with_columns(m=pl.min_horizontal("m", "u"))
    changed = lowest.filter((pl.col("m") < pl.col("u")) & (pl.col("top") > pl.col("u"))).height
    out = edges.join(lowest.select("u", "m"), on="u").filter(pl.col("v") > pl.col("u")).select(u="v", v="m")
    return out.unique().sort("u", "v"), changed


def small_star(edges: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """One partition of (larger, smaller) edges keyed by the larger node ``u``: the node and its smaller
    neighbours each linked to the smallest of them, in both directions (keyed by either end); and how many
    nodes had more than one smaller neighbour."""
    edges = edges.unique()
    lowest = edges.group_by("u").agg(m=pl.col("v").min(), n=pl.len())
    changed = lowest.filter(pl.col("n") > 1).height
    linked = pl.concat(
        [edges.join(lowest.select("u", "m"), on="u").select(x="v", m="m"), lowest.select(x="u", m="m")]
    ).filter(pl.col("x") != pl.col("m"))
    return both_ways(linked.select(u="x", v="m")), changed


def labels(edges: pl.DataFrame) -> pl.DataFrame:
    """(doc, component) of every node keyed in a converged partition: the smallest of it and its neighbours."""
    return (
        edges.group_by("u")
        .agg(component=pl.col("v").min())
        .select(doc="u", component=pl.min_horizontal("u", "component"))
        .sort("doc")
    )
