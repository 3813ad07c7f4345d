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
from dolma.core.errors import UserError
from mixers.rules import Rule, native, parse


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

    def rules(self) -> tuple[list[Rule], list[Rule]]:
        def build(spec: Any) -> Rule:
            return parse(spec) if isinstance(spec, str) else native(**spec)

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
    streams: list[Stream]
    work: str
    output: str
    target_tokens: int
    quantiles: int = 20
    throwaway: float = 0.4
    max_repetition: float = 7.0
    curve_p: float = 1.5
    curve_lambda: float = 1.0
    calibrate: bool = True
    seed: int = 0
    partition_tokens: int = 500_000_000  # tokens per shuffle partition (bounds the write step's memory)
    max_tokens_per_file: int = 100_000_000
    tokenizer: str = ""
    batch_size: int = 2048
    name: str = "mix"  # prefix of the steps' names; set it when a recipe has several mixes

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
