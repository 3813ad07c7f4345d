"""PII spans: e-mail addresses, phone numbers, IP addresses, credit-card numbers.

Spans are character offsets with score 1.0, one key per kind, so the mixer can mask or drop them. A card
number must pass the Luhn check, start with a card network's issuer prefix at that network's length, be
written whole or in groups with one kind of separator, and not be one digit repeated (a run of digit groups
with a number of the text beside the card is cut to the card's groups): in technical text digit
runs (``0000000000000000``, digits of e) pass a bare Luhn check one time in ten. IPv6 addresses are found in
full and in the compressed ``::`` form, each candidate validated by the standard library's parser.
"""

from __future__ import annotations

import re

from taggers.registry import Tagger, TagResult, TextBatch, tagger

EMAIL = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
PHONE = r"(?<![\w+])(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{2,4}\)[\s.\-]?|\d{2,4}[\s.\-])\d{3,4}[\s.\-]\d{3,4}(?![\w])"
IPV4 = r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\w.])"
IPV6 = r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])"
CARD = r"(?<![\d\-.,])(?:\d[ \-]?){12,18}\d(?![\d\-]|[.,]\d)"  # not the fraction digits of a number
PATTERN = re.compile(
    "|".join(
        f"(?P<{k}>{p})" for k, p in (("email", EMAIL), ("ip", IPV4 + "|" + IPV6), ("card", CARD), ("phone", PHONE))
    )
)
# cheap prefilter: a text with none of these characters cannot contain any of the patterns
MAY_CONTAIN = r"@|\d{3}|:[0-9A-Fa-f]{1,4}:"


# (first digits, lengths) of the card networks: Visa, Mastercard, American Express, Discover, JCB, Diners, UnionPay
ISSUERS = (
    (("4",), (13, 16, 19)),
    (tuple(str(x) for x in range(51, 56)) + tuple(str(x) for x in range(2221, 2721)), (16,)),
    (("34", "37"), (15,)),
    (("6011", "65") + tuple(str(x) for x in range(644, 650)), (16, 19)),
    (tuple(str(x) for x in range(3528, 3590)), (16, 19)),
    (("36", "38", "39") + tuple(str(x) for x in range(300, 306)), (14, 16, 19)),
    (("62",), (16, 17, 18, 19)),
)


def card_ok(text: str) -> bool:
    """A card number: issuer prefix and length, one separator style, not one repeated digit, Luhn-valid."""
    digits = "".join(c for c in text if c.isdigit())
    separators = {c for c in text if not c.isdigit()}
    if len(separators) > 1 or len(set(digits)) == 1:
        return False
    if separators and not all(len(g) in (4, 5, 6) for g in re.split(r"[ \-]", text)[:-1]):
        return False
    issuer = any(digits.startswith(prefixes) and len(digits) in lengths for prefixes, lengths in ISSUERS)
    return issuer and luhn_ok(digits)


def card_window(text: str) -> tuple[int, int] | None:
    """Where in a run of digit groups a card number lies: the whole run, else the longest run of whole groups
    that is one (text around a card often has numbers of its own: "card 4472 9387 8617 2702, 64 items")."""
    if card_ok(text):
        return 0, len(text)
    cuts = [0] + [m.start() for m in re.finditer(r"[ \-]", text)] + [len(text)]
    windows = [(a, b) for i, a in enumerate(cuts) for b in cuts[i + 1 :]]
    for a, b in sorted(windows, key=lambda w: w[0] - w[1]):
        a += a > 0  # past the separator
        if b - a >= 13 and card_ok(text[a:b]):
            return a, b
    return None


def ipv6_ok(text: str) -> bool:
    """A valid IPv6 address with a decimal digit in it (not ``::``, a time, or C++'s ``a::b``)."""
    import ipaddress

    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return any(c.isdigit() for c in text)


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
                start, end = m.start(), m.end()
                if kind == "card":
                    window = card_window(m.group())
                    if window is None:
                        continue
                    start, end = start + window[0], start + window[1]
                if kind == "ip" and ":" in m.group() and not ipv6_ok(m.group()):
                    continue
                out[kind][i].append([start, end, 1.0])
        return out
