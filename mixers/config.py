"""A mix's parameters: streams of documents with their filters, span edits and shares, checked at load.

A stream names document globs, the attribute sets joined to them, its share of the target, the include and
exclude rules (allenai strings or native mappings, see :mod:`mixers.rules`), the keys that rank (``quality``),
group (``topic``) and count (``tokens``) its documents, and span edits. Shares above 1 by rounding are
rescaled; everything else that cannot work is an error before any document is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from dolma import io
from dolma.core.config import param, unknown_key
from dolma.core.errors import UserError
from mixers.rules import Rule, native, parse

NATIVE_KEYS = ("attribute", "op", "value", "missing")


@dataclass
class SpanEdit:
    """Remove (or replace with ``replacement``) spans of ``attribute`` whose score is at least ``threshold``."""

    attribute: str
    threshold: float = 0.5
    replacement: str = ""


@dataclass
class Stream:
    name: str
    documents: list[str]
    attributes: list[str] = field(default_factory=list)
    share: float | None = None  # of the target tokens; streams without one share what is left, by size
    include: list[Any] = field(default_factory=list)  # every rule must match (allenai strings or native dicts)
    exclude: list[Any] = field(default_factory=list)  # any match drops the document
    quality: str | None = None  # attribute key whose score ranks documents (no key: all in one bucket)
    topic: str | None = None  # attribute key prefix; the topic is the key suffix with the highest score
    tokens: str | None = None  # attribute key holding the token count (e.g. tags__stats_v1__tokens)
    spans: list[SpanEdit] = field(default_factory=list)
    # an attribute line out of step with its document: stop with an error, or quarantine the line
    misaligned: Literal["error", "quarantine"] = "error"
    # a key the stream names (rule, span edit, quality, tokens, topic) that no line of its attribute files has
    # is a typo: an error; "allow" for keys that may be absent everywhere (e.g. PII spans on a clean corpus)
    absent_keys: Literal["error", "allow"] = "error"

    def rules(self) -> tuple[list[Rule], list[Rule]]:
        def build(spec: Any) -> Rule:
            if isinstance(spec, str):
                return parse(spec)
            if not isinstance(spec, dict):
                raise UserError(f"stream {self.name!r}: a rule is a filter string or a mapping, not {spec!r}")
            for key in spec:
                if key not in NATIVE_KEYS:
                    raise unknown_key(f"stream {self.name!r} rule", key, list(NATIVE_KEYS))
            if not {"attribute", "op", "value"} <= set(spec):
                raise UserError(f"stream {self.name!r}: a rule mapping needs attribute, op and value: {spec!r}")
            return native(**spec)

        return [build(r) for r in self.include], [build(r) for r in self.exclude]

    def keys(self) -> set[str]:
        """The attribute keys the stream reads (rules, quality, tokens, span edits); ``topic`` is a key prefix."""
        include, exclude = self.rules()
        named = {k for k in (self.quality, self.tokens) if k} | {e.attribute for e in self.spans}
        return {k for r in include + exclude for k in r.keys} | named

    def out_of_step(self, problem: str) -> None:
        """Stop on a line whose attributes are out of step with its document, unless the stream quarantines them."""
        if self.misaligned == "error":
            raise UserError(f"{problem} (set misaligned: quarantine to skip such lines)")

    def reads_text(self) -> bool:
        """Whether the stats step reads the documents: token counts need the text when no attribute holds
        them or span edits change them; otherwise the attribute sets alone are read."""
        return not self.tokens or bool(self.spans)


@dataclass
class MixParams:
    streams: list[Stream] = param(help="the streams of documents mixed", cli=False)
    work: str = param(help="folder for the steps' intermediates (stats, ids, plan, shuffle)")
    output: str = param(help="folder of the mixed documents")
    target_tokens: int = param(help="tokens the mix holds", gt=0)
    quantiles: int = param(20, "quality buckets per source and topic", ge=1, le=10_000)
    throwaway: float = param(0.4, "bottom share of each quality-ranked group left out", ge=0, le=0.999)
    max_repetition: float = param(7.0, "copies of one document at most", gt=0, le=1000)
    curve_p: float = param(1.5, "exponent p of the repetition curve C·x^p·e^(λx)", ge=0, le=50)
    curve_lambda: float = param(1.0, "λ of the repetition curve C·x^p·e^(λx)", ge=0, le=50)
    calibrate: bool = param(True, "solve with every document's realised copies, not their expectation")
    seed: int = param(0, "seed of the rounding draws and the shuffle")
    partition_tokens: int = param(500_000_000, "tokens per shuffle partition (bounds the write step's memory)", ge=1)
    plan_partitions: int = param(0, "hash partitions of the ids step (0: one per input file, at most 512)", ge=0)
    plan_exact_rows: int = param(
        50_000_000, "documents up to which the plan reads every row (exact); above, only histograms", ge=0
    )
    max_tokens_per_file: int = param(100_000_000, "tokens per output file at most", ge=1)
    tokenizer: str = param("", "tokenizer that counts tokens where no attribute holds them (default: dolma2)")
    batch_size: int = param(2048, "documents per batch", ge=1)
    strict_shares: bool = param(False, "a stream more than 0.5 points from its share is an error, not a warning")
    name: str = param("mix", "prefix of the steps' names; set it when a recipe has several mixes")

    def __post_init__(self) -> None:
        names = [s.name for s in self.streams]
        if len(set(names)) != len(names):
            raise UserError(f"stream names must be unique: {names}")
        shares = [s.share for s in self.streams if s.share is not None]
        if sum(shares) > 1.001:
            raise UserError(f"stream shares add up to {sum(shares):.4f} > 1")
        if sum(shares) > 1:  # published shares are rounded (Dolma 3's add up to 100.05%): rescale them
            for s in self.streams:
                s.share = s.share / sum(shares) if s.share is not None else None
        if not 0 <= self.throwaway < 1:
            raise UserError("throwaway must be in [0, 1)")
        for stream in self.streams:
            stream.rules()  # a bad rule fails before any work
            for pattern in stream.documents:
                io.refuse_output_in_input(pattern, self.output, f"{self.name} stream {stream.name!r}")
            if (stream.keys() or stream.topic) and not stream.attributes:
                raise UserError(f"stream {stream.name!r} names attributes but lists no attribute sets")

    def files(self) -> list[tuple[str, str, str]]:
        """(stream, task key, url) for every input file."""
        out = []
        for s in self.streams:
            for pattern in s.documents:
                for url in io.document_files(pattern):
                    out.append((s.name, f"{s.name}/{io.strip_suffix(io.relative_to_root(url, pattern))}", url))
        return out

    def stream(self, name: str) -> Stream:
        return next(s for s in self.streams if s.name == name)
