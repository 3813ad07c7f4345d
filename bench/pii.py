"""PII tagger precision and recall per kind, on real text with planted values.

Real documents get values of each kind planted at distinct word boundaries (seeded): e-mail addresses, phone numbers in
several national formats, IPv4 and IPv6 (full and ``::``-compressed), and card numbers of each network with a
valid Luhn digit, written whole or in groups. A planted value counts as found when a span of its kind covers
it exactly. Every other span of that kind counts as a false positive, so the precision is a lower bound: the
real text's own addresses and numbers (which the tagger should find) count against it too.
"""

from __future__ import annotations

import ipaddress
import random
import re

import polars as pl

from taggers.pii import luhn_ok
from taggers.registry import TextBatch, build_tagger

KINDS = ("email", "phone", "ip", "card")
NAMES = ("anna", "jo", "li.wei", "m.garcia", "ravi", "sofia", "t_nguyen", "olga")
DOMAINS = ("example.org", "mail.example.com", "uni-example.edu", "example.co.uk")
PHONES = ("+1 {a} {b} {c}", "({a}) {b}-{c}", "{a}-{b}-{c}", "+44 20 {b} {c}", "{a}.{b}.{c}", "+49 30 {b} {c}")
NETWORKS = (("4", 16), ("51", 16), ("2221", 16), ("37", 15), ("6011", 16), ("3530", 16), ("62", 16))


def _card(rng: random.Random) -> str:
    prefix, length = rng.choice(NETWORKS)
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    digits = next(body + d for d in "0123456789" if luhn_ok(body + d))
    style = rng.choice(("plain", "space", "dash"))
    if style == "plain":
        return digits
    groups = [digits[:4], digits[4:10], digits[10:]] if length == 15 else re.findall(r"\d{1,4}", digits)
    return (" " if style == "space" else "-").join(groups)


def planted_value(kind: str, rng: random.Random) -> str:
    if kind == "email":
        return f"{rng.choice(NAMES)}{rng.randrange(100)}@{rng.choice(DOMAINS)}"
    if kind == "phone":
        a, b, c = rng.randrange(201, 990), rng.randrange(200, 999), rng.randrange(1000, 9999)
        return rng.choice(PHONES).format(a=a, b=b, c=c)
    if kind == "ip":
        if rng.random() < 0.5:
            return ".".join(str(rng.randrange(1, 255)) for _ in range(4))
        address = ipaddress.IPv6Address(rng.getrandbits(64) << 64 if rng.random() < 0.5 else rng.getrandbits(128))
        return address.compressed if rng.random() < 0.7 else address.exploded
    return _card(rng)


def plant(texts: list[str], seed: int = 0, per_text: int = 2) -> tuple[list[str], list[dict[str, list]]]:
    """The texts with ``per_text`` values of each kind planted between words, and each text's planted spans."""
    rng = random.Random(seed)
    out, spans = [], []
    for text in texts:
        gaps = [m.start() for m in re.finditer(r"(?<=\S) (?=\S)", text)]
        kinds = [kind for kind in KINDS for _ in range(per_text)]
        chosen = rng.sample(gaps, min(len(gaps), len(kinds)))  # one value per gap: values never touch
        picks = sorted(zip(chosen, kinds))
        pieces, planted, last, shift = [], {k: [] for k in KINDS}, 0, 0
        for at, kind in picks:
            value = planted_value(kind, rng)
            pieces.append(text[last:at] + " " + value)
            start = at + shift + 1
            planted[kind].append((start, start + len(value)))
            shift += len(value) + 1
            last = at
        pieces.append(text[last:])
        out.append("".join(pieces))
        spans.append(planted)
    return out, spans


def evaluate(texts: list[str], seed: int = 0) -> dict[str, dict[str, float]]:
    """Per kind: planted values, recall, spans found, precision (lower bound)."""
    planted_texts, planted = plant(texts, seed)
    found = build_tagger("pii_v1").tag(TextBatch(pl.Series(planted_texts, dtype=pl.String)))
    result = {}
    for kind in KINDS:
        truth = {(i, s, e) for i, p in enumerate(planted) for s, e in p[kind]}
        hits = {(i, int(s), int(e)) for i, spans in enumerate(found[kind]) for s, e, _ in spans}
        result[kind] = {
            "planted": len(truth),
            "recall": len(truth & hits) / max(len(truth), 1),
            "spans": len(hits),
            "precision (lower bound)": len(truth & hits) / max(len(hits), 1),
        }
    return result
