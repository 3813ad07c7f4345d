"""Planning a mix from statistics only: a pool described by tokens per source and quality bucket.

This is how the mission's 300T → 6T plan is made without touching a document (``dolma mix-plan``); it runs the
same solver as the mix's plan step, so both plan the same pool the same way.
"""

from __future__ import annotations

import msgspec
import numpy as np

from dolma.core.errors import UserError
from mixers.config import MixParams, Stream
from mixers.plan import Plan, plan_from_histograms


class PoolGroup(msgspec.Struct, forbid_unknown_fields=True):
    source: str
    topic: str = ""
    bucket_tokens: list[float] = []  # tokens per quality quantile bucket, lowest first
    tokens: float = 0.0  # or a total, spread evenly over the buckets
    bytes: float = 0.0  # the group's document bytes (JSON lines, uncompressed), where known (`dolma estimate`)

    def total_tokens(self) -> float:
        return float(sum(self.bucket_tokens)) if self.bucket_tokens else self.tokens


class PoolDescription(msgspec.Struct, forbid_unknown_fields=True):
    """A pool described by statistics only: plan a mix from it without any documents."""

    target_tokens: int
    shares: dict[str, float]
    groups: list[PoolGroup]
    quantiles: int = 20
    throwaway: float = 0.4
    max_repetition: float = 7.0
    curve_p: float = 1.5
    curve_lambda: float = 1.0


def read_description(path: str) -> PoolDescription:
    import yaml

    try:
        with open(path) as f:
            return msgspec.convert(yaml.safe_load(f), PoolDescription, strict=False)  # YAML reads 1.0e12 as text
    except OSError as e:
        raise UserError(f"cannot read the pool description {path}: {e.strerror}") from None
    except (msgspec.ValidationError, yaml.YAMLError) as e:
        raise UserError(f"{path}: {e}") from None


def plan_from_description(path: str) -> Plan:
    desc = read_description(path)
    params = MixParams(
        streams=[Stream(name, [], share=share) for name, share in desc.shares.items()],
        work="",
        output="",
        target_tokens=desc.target_tokens,
        quantiles=desc.quantiles,
        throwaway=desc.throwaway,
        max_repetition=desc.max_repetition,
        curve_p=desc.curve_p,
        curve_lambda=desc.curve_lambda,
        calibrate=False,
    )
    groups = {}
    for g in desc.groups:
        if g.source not in desc.shares:
            raise UserError(f"{path}: group source {g.source!r} has no share")
        tokens = np.asarray(g.bucket_tokens or [g.tokens / desc.quantiles] * desc.quantiles, np.float64)
        if len(tokens) != desc.quantiles:
            raise UserError(f"{path}: {g.source}/{g.topic} has {len(tokens)} buckets, not {desc.quantiles}")
        groups[(g.source, g.topic)] = (list(np.linspace(0, 1, desc.quantiles + 1)), tokens)
    # a source none of whose groups has quality buckets has no quality signal: nothing of it is thrown away
    graded = {g.source for g in desc.groups if g.bucket_tokens}
    return plan_from_histograms(params, groups, flat=set(desc.shares) - graded)
