"""MinHash dedup quality on the planted near-duplicate corpus, against true Jaccard ground truth.

Truth is the Jaccard similarity of the two documents' sets of word 5-grams after lower-casing, punctuation to
spaces and digits to 0 (the corpus' own definition; ``dolma.dedup.shingle_hashes`` computes the same sets).
- recall: of the planted pairs with true Jaccard ≥ t, the share that ended in one cluster with one of the two
  removed; and the share of which at most one survives ("one removed": a copy left alone by the keeper check,
  while its original was removed for a keeper the copy is not like, is still not a duplicate in the output);
- precision: of the documents removed, the share whose true Jaccard with their cluster's keeper is ≥ t
  ("keeper" precision; chains can lower it) and the share with Jaccard ≥ t to some document of their cluster.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from dolma import io
from dolma.dedup.minhash import shingle_hashes


def _sets(texts: dict[str, str], n: int = 5) -> dict[str, np.ndarray]:
    ids = list(texts)
    doc, sh = shingle_hashes(pl.Series([texts[i] for i in ids], dtype=pl.String), n)
    bounds = np.searchsorted(doc, np.arange(len(ids) + 1))
    return {i: np.unique(sh[bounds[k] : bounds[k + 1]]) for k, i in enumerate(ids)}


def jaccard(x: np.ndarray, y: np.ndarray) -> float:
    inter = len(np.intersect1d(x, y, assume_unique=True))
    union = len(x) + len(y) - inter
    return inter / union if union else 1.0


def evaluate(documents: str, work: str, groundtruth: str, threshold: float) -> dict:
    clusters = pl.concat([pl.read_parquet(f) for f in sorted(Path(work, "clusters").glob("*.parquet"))])
    texts = {d.id: d.text for f in io.document_files(documents) for b in io.read_documents(f) for d in b.docs}
    members = clusters.join(clusters.select("keeper", keeper_doc_id="keeper_id").unique(), on="keeper")
    doc_id = dict(
        zip(
            *(
                pl.concat([pl.read_parquet(f) for f in sorted(Path(work, "docs").glob("*.parquet"))])[c].to_list()
                for c in ("doc", "id")
            )
        )
    )
    cluster_of = {doc_id[d]: k for d, k in zip(members["doc"].to_list(), members["keeper"].to_list())}
    removed = {doc_id[d] for d, dup in zip(members["doc"].to_list(), members["duplicate"].to_list()) if dup}
    keeper_of = {doc_id[d]: kid for d, kid in zip(members["doc"].to_list(), members["keeper_id"].to_list())}
    truth = [json.loads(line) for line in open(groundtruth)]
    needed = set(removed) | set(keeper_of.values()) | {t["copy"] for t in truth} | {t["original"] for t in truth}
    sets = _sets({i: texts[i] for i in needed if i in texts})
    by_cluster: dict[int, list[str]] = {}
    for i, k in cluster_of.items():
        by_cluster.setdefault(k, []).append(i)
    keeper_ok = [jaccard(sets[i], sets[keeper_of[i]]) >= threshold for i in removed]
    member_ok = [
        any(jaccard(sets[i], sets[j]) >= threshold for j in by_cluster[cluster_of[i]] if j != i) for i in removed
    ]
    positives = [t for t in truth if jaccard(sets[t["copy"]], sets[t["original"]]) >= threshold]
    found = [
        cluster_of.get(t["copy"]) is not None
        and cluster_of.get(t["copy"]) == cluster_of.get(t["original"])
        and (t["copy"] in removed or t["original"] in removed)
        for t in positives
    ]
    padded = [t for t in truth if t["kind"] == "boilerplate" and cluster_of.get(t["copy"]) is not None]
    padded_kept = [t["copy"] not in removed and t["original"] in removed for t in padded]
    by_rate: dict[str, list[bool]] = {}
    for t, ok in zip(positives, found):
        by_rate.setdefault(f"{t['kind']} {t['edit_rate']}", []).append(ok)
    return {
        "threshold": threshold,
        "removed": len(removed),
        "planted pairs at or above threshold": len(positives),
        "recall": float(np.mean(found)) if found else 1.0,
        "recall (one of the pair removed)": (
            float(np.mean([t["copy"] in removed or t["original"] in removed for t in positives])) if positives else 1.0
        ),
        "precision (Jaccard with keeper)": float(np.mean(keeper_ok)) if keeper_ok else 1.0,
        "precision (Jaccard with a cluster member)": float(np.mean(member_ok)) if member_ok else 1.0,
        "recall by edit": {k: round(float(np.mean(v)), 3) for k, v in sorted(by_rate.items())},
        "boilerplate-padded copies kept over their clean original": f"{sum(padded_kept)} of {len(padded)}",
    }
