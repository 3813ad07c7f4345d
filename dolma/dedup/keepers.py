"""A keeper per duplicate cluster, and the check that every removed document is like its keeper.

Connected components join documents that are not alike: a chain of licence headers, each close to the next,
makes one cluster whose ends share little. So after the keeper of each component is chosen, every member that
would be removed and is not joined to its keeper by a verified edge (one at or above ``keeper_jaccard``) has
its true Jaccard with the keeper computed from the two n-gram sets. Members below ``keeper_jaccard`` leave
the cluster; those that failed are clustered again among themselves (components of the edges between them),
get keepers by the same rule, and are checked against those, for a few rounds; a member still unchecked after
the last round is kept alone. So a removed document is always at least ``keeper_jaccard`` like the document
kept in its place. The sets are read one shard of members and one shard of keepers at a time, as the verify
step does, so memory follows a shard.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from dolma.dedup.components import connected_components
from dolma.dedup.params import DedupParams
from dolma.dedup.steps import VerifyStage

ORDER = {  # keeper rule -> (column, higher first)
    "quality": ("quality", True),
    "contained": ("contained", True),
    "newest": ("created", True),
    "longest": ("length", True),
    "lowest_id": ("id", False),
}
ROUNDS = 4  # re-clustering rounds of the members that failed the check
ROUND_BIT = 56  # new components are numbered (round << ROUND_BIT) | node: apart from document numbers


def pick_keepers(members: pl.DataFrame, rules: list[str]) -> pl.DataFrame:
    """``members`` (doc, component and the rules' columns) with each component's ``keeper`` and ``keeper_id``:
    its first member in the rules' order (then the lowest document number)."""
    order, descending = [ORDER[r][0] for r in rules], [ORDER[r][1] for r in rules]
    keepers = (
        members.sort([*order, "doc"], descending=[*descending, False])
        .group_by("component")
        .agg(keeper=pl.col("doc").first(), keeper_id=pl.col("id").first())
    )
    return members.join(keepers, on="component")


def check_keepers(members: pl.DataFrame, edges: pl.DataFrame, p: DedupParams, metrics) -> pl.DataFrame:
    """``members`` with keepers, after moving out every would-be duplicate less than ``p.keeper_jaccard``
    like its keeper (see the module's docstring); ``metrics`` counts the checks and the moves."""
    threshold = float(p.keeper_jaccard)
    trusted = p.jaccard_threshold is not None and p.jaccard_threshold >= threshold
    adjacent = (
        pl.concat([edges.select(doc="a", keeper="b"), edges.select(doc="b", keeper="a")])
        if trusted
        else pl.DataFrame(schema={"doc": pl.UInt64, "keeper": pl.UInt64})
    )
    passed = pl.DataFrame(schema={"doc": pl.UInt64})
    for attempt in range(1, ROUNDS + 2):
        todo = (
            members.filter(pl.col("doc") != pl.col("keeper"))
            .join(adjacent, on=["doc", "keeper"], how="anti")
            .join(passed, on="doc", how="anti")
            .select("doc", "keeper")
        )
        if todo.is_empty():
            break
        if attempt > ROUNDS:  # still unchecked: kept alone
            failing = todo["doc"]
            members = _move(members, failing, pl.DataFrame(schema={"a": pl.UInt64, "b": pl.UInt64}), attempt, p)
            break
        similarity = _similarities(todo, p)
        metrics["keeper_checks"] += len(todo)
        ok = pl.Series(similarity >= threshold)
        passed = pl.concat([passed, todo.filter(ok).select("doc")])
        failing = todo.filter(~ok)["doc"]
        if failing.is_empty():
            break
        metrics["moved_from_keeper"] += len(failing)
        members = _move(members, failing, edges, attempt, p)
    return members


def _move(members: pl.DataFrame, failing: pl.Series, edges: pl.DataFrame, attempt: int, p: DedupParams) -> pl.DataFrame:
    """The failing members in new components of the edges between them (alone where they have none)."""
    between = edges.filter(pl.col("a").is_in(failing.implode()) & pl.col("b").is_in(failing.implode()))
    nodes, labels = connected_components(between["a"].to_numpy(), between["b"].to_numpy())
    offset = np.uint64(attempt) << np.uint64(ROUND_BIT)
    relabel = (
        pl.DataFrame({"doc": failing})
        .join(
            pl.DataFrame({"doc": nodes, "new": labels}, schema={"doc": pl.UInt64, "new": pl.UInt64}),
            on="doc",
            how="left",
        )
        .with_columns(new=pl.col("new").fill_null(pl.col("doc")) | pl.lit(offset, dtype=pl.UInt64))
    )
    members = members.join(relabel, on="doc", how="left").with_columns(
        component=pl.col("new").fill_null(pl.col("component"))
    )
    return pick_keepers(members.drop("new", "keeper", "keeper_id"), p.keeper)


def _similarities(pairs: pl.DataFrame, p: DedupParams) -> np.ndarray:
    """True Jaccard of each (doc, keeper) pair's n-gram sets: one shard of members at a time, and for it one
    shard of keepers at a time."""
    verify, urls = VerifyStage(p), p.shards()
    out = np.zeros(len(pairs))
    pairs = pairs.with_row_index("i").with_columns(sd=pl.col("doc") // 2**32, sk=pl.col("keeper") // 2**32)
    for (sd,), group in pairs.group_by("sd", maintain_order=True):
        local = group.filter(pl.col("sk") == sd)["keeper"].to_numpy()
        own = verify._sets(urls, sd, np.concatenate([group["doc"].to_numpy(), local]))
        for (sk,), sub in group.group_by("sk", maintain_order=True):
            other = own if sk == sd else verify._sets(urls, sk, sub["keeper"].to_numpy())
            similarity, _, _ = VerifyStage._jaccard(sub.select(a="doc", b="keeper"), own, other)
            out[sub["i"].to_numpy()] = similarity
    return out
