"""The mixer: filters, span edits and value-weighted repetition solved to an exact token target.

Five restartable steps (the recipe entry ``stage: mix`` expands into them):

1. ``stats`` (a task per input file): a row per line of the document file, from its attribute sets joined
   line by line: the include/exclude rules (:mod:`mixers.rules`) give its drop reason, and the row holds the
   source, topic, quality score, token count and ``hash(seed, id)`` the later steps need. The documents are
   read only when their text is needed (no ``tokens`` attribute, or span edits that change the count). The
   kept rows also go, by the hash of their id, into the ids step's partitions.
2. ``ids`` (a task per hash partition): each id's first occurrence is kept, in recipe order of the streams
   (a later stream's copy is dropped as ``duplicate_id_across_streams``), and each partition's quality
   histograms are written (:mod:`mixers.planning`).
3. ``plan`` (one task, over the ids step's histograms, or its rows up to ``plan_exact_rows``): per source and
   topic, quality quantiles (default 20); the bottom ``throwaway`` share is dropped and each kept bucket gets a
   repetition factor from
   ``f(x) = min(max_repetition, C · x^p · e^{λx})`` (x = the bucket's quantile rank in (0, 1]; p and λ shape
   the curve, C is solved) so that every source hits its share of ``target_tokens``. With ``calibrate`` the
   solve uses the realised copies of every document (see step 4), not their expectation, so the mix hits its
   target to within one document (on the exact path). Writes ``plan.json``, a table and ``plan.png``.
4. ``shuffle`` (a task per input file): the documents are read once, each matched with its stats row by line
   and id; a document with factor f is written ``floor(f) + [u < frac(f)]`` times (``u = hash / 2^64``:
   deterministic stochastic rounding, no coordination between workers), after span edits. Texts that are
   copied unchanged stay raw JSON (never decoded). Every copy gets a random key from (hash, copy number) and
   goes to one of the plan's partitions.
5. ``write`` (a task per partition): copies sorted by key (sources interleave; no two copies of a document
   are adjacent) and written as ``.jsonl.zst`` shards of at most ``max_tokens_per_file`` tokens.

The curve family is Dolma 3's: monotone for p, λ ≥ 0, flat (uniform repetition) at p = λ = 0.

The parameters live in :mod:`mixers.config`, the repetition math in :mod:`mixers.plan`, the steps in
:mod:`mixers.stats` (1), :mod:`mixers.planning` (2, 3), :mod:`mixers.shuffle` (4) and :mod:`mixers.write` (5); this
module holds the group. The plan step's report (:mod:`mixers.report`) shows per stream the tokens available
after filters, the target, the plan and what was realised, realised against target shares, and the repetition
factor per quality bucket.
"""

from __future__ import annotations

from dataclasses import dataclass

from dolma.runtime.stage import Stage, StageGroup
from mixers.config import MixParams
from mixers.planning import MixIdsStage, MixPlanStage
from mixers.shuffle import MixShuffleStage
from mixers.stats import MixStatsStage
from mixers.write import MixWriteStage


@dataclass
class MixStage(MixParams, StageGroup):
    """The recipe entry ``stage: mix``: the five steps, in order."""

    def stages(self) -> list[Stage]:
        return [MixStatsStage(self), MixIdsStage(self), MixPlanStage(self), MixShuffleStage(self), MixWriteStage(self)]
