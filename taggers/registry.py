"""The tagger registry: small versioned classes registered by decorator, constructed from recipe parameters.

A tagger sees a batch of texts (a polars Series) and returns, per attribute key, either one score per document
(a numpy array or polars Series: written as the span ``[0, len(text), score]``) or, per document, a list of
``[start, end, score]`` spans in characters. It never changes or drops documents: filtering is the mixer's job.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import importlib
import importlib.util
import os
import sys
from typing import Any, ClassVar

import numpy as np
import polars as pl

from dolma.core.errors import UserError

Spans = list[list[list[float]]]
TagResult = dict[str, "np.ndarray | pl.Series | Spans"]

TAGGERS: dict[str, type[Tagger]] = {}


class TextBatch:
    """The texts of one batch, with derived views computed once and shared by every tagger that asks."""

    def __init__(self, texts: pl.Series, metadata: list[bytes] | None = None):
        self.texts = texts
        self._metadata = metadata  # raw metadata JSON per document, for taggers that read a field of it

    def metadata_field(self, name: str) -> list:
        """One metadata field of every document (None where absent), decoded on demand."""
        import msgspec

        raw = self._metadata or [b"{}"] * len(self.texts)
        return [msgspec.json.decode(m).get(name) if m else None for m in raw]

    def __len__(self) -> int:
        return len(self.texts)

    @functools.cached_property
    def words(self) -> pl.DataFrame:
        """``(doc, chunk, pos, w)``: spaCy-compatible English words of every text, in order, with the batch-wide
        index of the whitespace-separated chunk each came from (:func:`taggers.words.split_words_long`)."""
        from taggers.words import split_words_bounded

        words = split_words_bounded(self.texts)
        doc = words["doc"].to_numpy()
        start = np.searchsorted(doc, doc, side="left")
        return words.with_columns(pos=pl.Series(np.arange(len(doc)) - start, dtype=pl.UInt32))

    @functools.cached_property
    def lengths(self) -> np.ndarray:
        return self.texts.str.len_chars().to_numpy()


class Tagger(abc.ABC):
    name: ClassVar[str]
    description: ClassVar[str]

    @abc.abstractmethod
    def tag(self, batch: TextBatch) -> TagResult:
        """Attributes for a batch of texts, keyed by attribute key (without the set and tagger prefix)."""


def tagger(cls: type[Tagger]) -> type[Tagger]:
    """Register a tagger class under its ``name`` (which carries its version, e.g. ``gopher_quality_v1``)."""
    if not getattr(cls, "name", "") or not getattr(cls, "description", ""):
        raise TypeError(f"{cls.__name__} needs class attributes 'name' and 'description'")
    if cls.name in TAGGERS and TAGGERS[cls.name] is not cls:
        raise UserError(f"two taggers are named {cls.name!r}: {TAGGERS[cls.name].__module__} and {cls.__module__}")
    TAGGERS[cls.name] = dataclasses.dataclass(cls) if not dataclasses.is_dataclass(cls) else cls
    return TAGGERS[cls.name]


def load_builtin() -> None:
    from taggers import blocklist, classifier, decontam, heuristics, langid, line_rules, pii, stats  # noqa: F401


def load_modules(modules: list[str]) -> None:
    """Import user tagger modules given as dotted names or ``.py`` paths (like allenai's ``--tagger_modules``)."""
    for module in modules:
        if module.endswith(".py") or os.path.sep in module:
            if not os.path.exists(module):
                raise UserError(f"tagger module {module!r} does not exist")
            name = "user_taggers_" + "".join(c if c.isalnum() else "_" for c in os.path.abspath(module))
            if name in sys.modules:
                continue
            spec = importlib.util.spec_from_file_location(name, module)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            spec.loader.exec_module(mod)
        else:
            try:
                importlib.import_module(module)
            except ImportError as e:
                raise UserError(f"cannot import tagger module {module!r}: {e}") from None


def build_tagger(spec: str | dict[str, Any]) -> Tagger:
    """``"name"`` or ``{"name": ..., <params>}`` → a configured tagger; errors name the bad parameter."""
    params = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = params.pop("name", None)
    if name not in TAGGERS:
        raise UserError(f"unknown tagger {name!r}; `dolma list` shows the {len(TAGGERS)} known taggers")
    from dolma.core.config import build_dataclass

    return build_dataclass(TAGGERS[name], params, f"tagger {name}")
