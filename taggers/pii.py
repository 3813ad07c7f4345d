"""PII spans: e-mail addresses, phone numbers, IP addresses, credit-card numbers (Luhn-checked).

Spans are character offsets with score 1.0, one key per kind, so the mixer can mask or drop them.
"""

from __future__ import annotations

import re

from taggers.registry import Tagger, TagResult, TextBatch, tagger

EMAIL = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
PHONE = r"(?<![\w+])(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{2,4}\)[\s.\-]?|\d{2,4}[\s.\-])\d{3,4}[\s.\-]\d{3,4}(?![\w])"
IPV4 = r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\w.])"
IPV6 = r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![\w:])"
CARD = r"(?<![\d\-])(?:\d[ \-]?){12,18}\d(?![\d\-])"
PATTERN = re.compile(
    "|".join(
        f"(?P<{k}>{p})" for k, p in (("email", EMAIL), ("ip", IPV4 + "|" + IPV6), ("card", CARD), ("phone", PHONE))
    )
)
# cheap prefilter: a text with none of these characters cannot contain any of the patterns
MAY_CONTAIN = r"@|\d{3}|:[0-9A-Fa-f]{1,4}:"


def luhn_ok(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()][::-1]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(digits))
    return total % 10 == 0


@tagger
class Pii(Tagger):
    name = "pii_v1"
    description = "spans of e-mail addresses, phone numbers, IPv4/IPv6 addresses and Luhn-valid card numbers"

    def tag(self, batch: TextBatch) -> TagResult:
        texts = batch.texts
        out: dict[str, list] = {k: [[] for _ in range(len(texts))] for k in ("email", "phone", "ip", "card")}
        candidates = texts.str.contains(MAY_CONTAIN).fill_null(False).arg_true().to_list()
        for i in candidates:
            for m in PATTERN.finditer(texts[i]):
                kind = m.lastgroup
                if kind == "card" and not luhn_ok(m.group()):
                    continue
                out[kind][i].append([m.start(), m.end(), 1.0])
        return out
