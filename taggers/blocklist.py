"""URL blocklists: a document whose ``metadata.url`` host (or any parent domain of it) is listed is tagged.

Lists are files or folders: plain domain lists (one per line, ``#`` comments), hosts files (``0.0.0.0 host``),
and UT1-style category folders (``<category>/domains``), whose category names become attribute keys. A small
example list in UT1 layout is bundled (``taggers/resources/blocklist-example``).
"""

from __future__ import annotations

import os
from functools import lru_cache
from urllib.parse import urlsplit

import numpy as np

from dolma.core.errors import UserError
from taggers.registry import Tagger, TagResult, TextBatch, tagger

EXAMPLE = os.path.join(os.path.dirname(__file__), "resources", "blocklist-example")


def _read_list(path: str) -> set[str]:
    domains = set()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split("#", 1)[0].split()
            if not parts:
                continue
            host = parts[1] if len(parts) > 1 and parts[0] in ("0.0.0.0", "127.0.0.1", "::1", "::") else parts[0]
            domains.add(host.strip(".").lower())
    return domains


@lru_cache(maxsize=8)
def load_blocklists(paths: tuple[str, ...]) -> dict[str, str]:
    """domain -> category ('blocklist' for lists without categories)."""
    out: dict[str, str] = {}
    for path in paths:
        if os.path.isdir(path):
            for category in sorted(os.listdir(path)):
                listed = os.path.join(path, category, "domains")
                if os.path.isfile(listed):
                    out.update(dict.fromkeys(_read_list(listed), category))
        elif os.path.isfile(path):
            out.update(dict.fromkeys(_read_list(path), "blocklist"))
        else:
            raise UserError(f"blocklist {path!r} does not exist")
    return out


def matching_category(url: str | None, listed: dict[str, str]) -> str | None:
    host = (urlsplit(url).hostname or "") if url else ""
    labels = host.split(".")
    for i in range(len(labels)):  # the host itself, then every parent domain
        category = listed.get(".".join(labels[i:]))
        if category:
            return category
    return None


@tagger
class UrlBlocklist(Tagger):
    name = "url_blocklist_v1"
    description = "1.0 when metadata.url's host or a parent domain is on a blocklist, plus a key per category"
    lists: list[str] = None  # type: ignore[assignment]

    def tag(self, batch: TextBatch) -> TagResult:
        listed = load_blocklists(tuple(self.lists or [EXAMPLE]))
        categories = [matching_category(u, listed) for u in batch.metadata_field("url")]
        out = {"blocked": np.array([c is not None for c in categories], float)}
        for category in sorted({c for c in categories if c}):
            out[f"category_{category}"] = np.array([c == category for c in categories], float)
        return out
