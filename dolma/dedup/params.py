"""Parameters shared by the dedup steps, and the presets they start from.

A preset (``dolma3``: 5-grams, 26 bands × 11 rows, candidates verified at Jaccard 0.8; ``fineweb``: 5-grams,
14 × 8, no verification; both: a removed document must reach Jaccard 0.8 with its keeper) fills only the
fields a user left unset, so ``{preset: dolma3, bands: 20, rows: 5}``
runs with 20 × 5 and the preset's n-gram size and threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dolma import io
from dolma.core.config import param
from dolma.core.errors import UserError

PRESETS = {
    "fineweb": {"ngram": 5, "bands": 14, "rows": 8, "jaccard_threshold": "off", "keeper_jaccard": 0.8},
    "dolma3": {"ngram": 5, "bands": 26, "rows": 11, "jaccard_threshold": 0.8, "keeper_jaccard": 0.8},
}
KEEPER_RULES = ("quality", "contained", "newest", "longest", "lowest_id")


def optimal_bands(threshold: float, hashes: int) -> tuple[int, int]:
    """(bands, rows) with bands x rows <= ``hashes`` minimising the false-positive and false-negative areas under
    the LSH S-curve around ``threshold`` (datasketch's MinHashLSH computes it as it is built)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=hashes)
    return int(lsh.b), int(lsh.r)


@dataclass
class DedupParams:
    """Shared by the steps; ``work`` holds the intermediates, ``name`` is the attribute set."""

    input: str = param(help="glob of document files under a 'documents/' folder")
    work: str = param(help="folder for intermediates (bands, edges, clusters, ledgers)")
    name: str = param("dedup", "attribute set name")
    method: Literal["minhash", "exact"] = param("minhash", "MinHash LSH near-duplicates, or exact normalised text")
    preset: Literal["dolma3", "fineweb"] | None = param(
        "dolma3", "dolma3: 5-grams, 26x11, Jaccard 0.8; fineweb: 5-grams, 14x8; it fills only the fields left unset"
    )
    ngram: int | None = param(None, "word n-gram size (unset: the preset's)")
    bands: int | None = param(None, "LSH bands (unset: the preset's)")
    rows: int | None = param(None, "hashes per band (unset: the preset's)")
    lsh_threshold: float | None = param(
        None,
        "choose bands x rows for this Jaccard threshold instead of the preset's (datasketch's optimum for the "
        "preset's number of hashes, false positives and negatives weighted equally); bands/rows given win",
        gt=0,
        lt=1,
    )
    seed: int = param(1, "seed of the hash permutations")
    jaccard_threshold: float | Literal["off"] | None = param(
        None, "verify candidates by true Jaccard at this threshold (unset: the preset's; off: no verification)"
    )
    keeper_jaccard: float | Literal["off"] | None = param(
        None,
        "a removed document's true Jaccard with its cluster's keeper must reach this, else it leaves the cluster "
        "and is re-clustered with the others that failed (chains join documents that are not alike); unset: the "
        "preset's; off: no check",
    )
    keeper: list[str] = param(
        help="keeper order within a cluster: quality (the quality_attribute), contained (the member whose n-grams "
        "the others hold: the clean original, not a padded or edited copy), newest, longest, lowest_id",
        factory=lambda: ["quality", "contained", "newest", "longest", "lowest_id"],
    )
    quality_attribute: str | None = param(
        None, "SET/KEY whose score ranks 'quality', e.g. q/q__fasttext_classifier_v1__hq (higher is kept)"
    )
    batch_size: int = param(2048, "documents per batch", ge=1)
    # a pairs task holds 1/pair_partitions of one band's keys over the corpus (16 bytes a document)
    pair_partitions: int = param(
        1, "key ranges per band in the pairs step; raise it as the corpus grows (one per 50M documents)"
    )

    cluster_partitions: int | None = param(
        None,
        "edge and component partitions of the connected-components steps, one task each per round (unset: one "
        "per input file, at most 512); a task holds about 1/cluster_partitions of the verified edges",
        ge=1,
        le=65536,
    )

    def __post_init__(self) -> None:
        if self.pair_partitions < 1:
            raise UserError("pair_partitions must be at least 1")
        if self.method not in ("minhash", "exact"):
            raise UserError(f"dedup method must be minhash or exact, not {self.method!r}")
        if self.preset is not None and self.preset not in PRESETS:
            raise UserError(f"unknown dedup preset {self.preset!r}; presets: {', '.join(PRESETS)}")
        if self.lsh_threshold is not None and self.bands is None and self.rows is None:
            self.bands, self.rows = optimal_bands(self.lsh_threshold, self._preset_hashes())
        for key, value in PRESETS[self.preset or "dolma3"].items():  # a preset fills only what is unset
            if getattr(self, key) is None:
                setattr(self, key, value)
        if self.jaccard_threshold == "off":
            self.jaccard_threshold = None
        if self.keeper_jaccard == "off" or self.method == "exact":
            self.keeper_jaccard = None
        if self.keeper_jaccard is not None and not 0 < float(self.keeper_jaccard) <= 1:
            raise UserError(f"keeper_jaccard must be in (0, 1] or off, not {self.keeper_jaccard!r}")
        for key in ("ngram", "bands", "rows"):
            if getattr(self, key) < 1:
                raise UserError(f"dedup {key} must be at least 1, not {getattr(self, key)}")
        bad = [k for k in self.keeper if k not in KEEPER_RULES]
        if bad:
            raise UserError(f"unknown keeper rule {bad[0]!r}; rules: {', '.join(KEEPER_RULES)}")
        if self.quality_attribute and "/" not in self.quality_attribute:
            raise UserError("quality_attribute is '<attribute set>/<key>', e.g. 'quality/quality__x__hq'")

    def _preset_hashes(self) -> int:
        preset = PRESETS[self.preset or "dolma3"]
        return int(preset["bands"]) * int(preset["rows"])

    @property
    def n_bands(self) -> int:
        return 1 if self.method == "exact" else self.bands

    def shards(self) -> dict[int, str]:
        """The URL of every input file by its number in sorted order (how documents are referred to)."""
        return dict(enumerate(io.document_files(self.input)))
