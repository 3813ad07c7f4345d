"""Filter rules over attributes, compiled to polars expressions on a frame with one column per attribute key.

Three forms are accepted:

- native: ``{attribute: set__tagger__key, op: ">=", value: 0.5, missing: keep|drop|error}``;
- allenai dolma's JSONPath form: ``$.attributes[?(@.set__tagger__key[0][2] >= 0.5 && @.other)]``
  (``&&``, ``||``, ``!``, parentheses, comparisons, ``@.key`` alone meaning "present");
- allenai dolma's jq form: ``.attributes.set__tagger__key[0][2] >= 0.5``, with ``and``/``or``/``not`` and
  ``(.attributes.key // [[0,0,V]])[0][2]`` for a default value.

The column of a key holds the score of its first span (``[0][2]``), null when the document has no such key.
A comparison with a missing value means what its library says, so a rule gives the same verdict vectorised or
not: in JSONPath (RFC 9535, as allenai's mixer) only ``!=`` is true; in jq null sorts before every number, so
``<``, ``<=`` and ``!=`` are true (allenai's mixer stops with an error on a missing key in jq).

Those forms compile to polars (vectorised). Anything else runs per document over ``{"attributes": {key:
spans}}`` of the keys it names, with the real library of its syntax:

- jq programs (other indexes, ``length``, ``any``, arithmetic, ``select``...) by the jq library, matching as
  allenai's mixer decides: every output is true, where ``false``, ``null``, ``0``, ``""``, ``[]`` and ``{}``
  are false, and no output is no match;
- JSONPath (other indexes such as ``[1]`` or ``[-1]``, filters over a key's spans like
  ``$.attributes.key[?(@[2] > 0.5)]``...) by python-jsonpath (RFC 9535), matching when it selects anything.
  Every JSONPath is compiled by it first, vectorised or not, so its grammar is the library's. In allenai's
  ``$.attributes[?(...)]`` form ``@`` is the attributes object itself, so that form is evaluated over a
  one-element list holding it.

:attr:`Rule.engine` says which rules run which way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial

import jsonpath
import polars as pl
from jsonpath import JSONPathError

from dolma.core.errors import UserError

OPS = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne"}
TOKEN = re.compile(
    r"\s*(\$@?\.attributes\[\?\(|\)\]$|&&|\|\||==|!=|<=|>=|<|>|!|\(|\)|//|\[\[[^\]]*\]\]|\[\d+\]|"
    r"@\.[A-Za-z0-9_\-.]+|\.attributes\.[A-Za-z0-9_\-.]+|-?\d+(?:\.\d+)?(?:[eE]-?\d+)?|true|false|"
    r"and|or|not|\"[^\"]*\")"
)


@dataclass
class Rule:
    """A compiled rule: the expression (true = the rule matches), the keys it reads, and its text."""

    expr: pl.Expr
    keys: set[str]
    text: str
    missing: str = "keep"  # native rules: what a document without the attribute does (keep, drop, error)
    engine: str = "polars"  # or "jq" / "JSONPath": run per document over the spans columns (``spans_column``)

    @property
    def vectorised(self) -> bool:
        return self.engine == "polars"


SPANS = "\x00spans"
DOC_FIELD = re.compile(r"(?<![\w\]\)\"])\.(text|metadata|id|source|added|created)\b")
JQ_KEY = re.compile(r"\.attributes(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\"([^\"]+)\"\])")
PATH_KEY = re.compile(r"(?:@|\$\.attributes)(?:\.([A-Za-z_][A-Za-z0-9_\-]*)|\[['\"]([^'\"]+)['\"]\])")


def spans_column(key: str) -> str:
    """The frame column holding every span of ``key`` (a list of ``[start, end, score]``), for jq rules."""
    return key + SPANS


SPANS_TYPE = pl.List(pl.List(pl.Float64))  # the dtype of a spans column


def jq_keys(rules: list[Rule]) -> set[str]:
    """The keys that rules run by jq read whole (every span, not only the first score)."""
    return {k for r in rules if not r.vectorised for k in r.keys}


def native(attribute: str, op: str, value: float, missing: str = "keep") -> Rule:
    if op not in OPS:
        raise UserError(f"rule on {attribute}: op must be one of {', '.join(OPS)}, not {op!r}")
    if missing not in ("keep", "drop", "error"):
        raise UserError(f"rule on {attribute}: missing must be keep, drop or error, not {missing!r}")
    expr = getattr(pl.col(attribute), OPS[op])(value)
    return Rule(expr, {attribute}, f"{attribute} {op} {value}", missing)


def parse(text: str) -> Rule:
    """Compile an allenai-style JSONPath or jq filter: to polars where it is in the vectorised subset, else with
    the real library of its syntax."""
    path = _jsonpath(text) if text.lstrip().startswith("$") else None
    try:
        return _vectorised(text)
    except UserError:
        return _jq_rule(text) if path is None else _jsonpath_rule(text, path)


def _jsonpath(text: str):
    """The expression compiled by python-jsonpath (allenai's ``$@.`` prefix read as ``$.``)."""
    source = "$" + text.lstrip()[2:] if text.lstrip().startswith("$@.") else text
    try:
        return jsonpath.compile(source)
    except JSONPathError as e:
        raise UserError(f"filter {text!r} is not valid JSONPath: {e}") from None


def _jsonpath_rule(text: str, path) -> Rule:
    if re.search(r"\*|\.\.", text):
        raise UserError(f"JSONPath filter {text!r}: name each attribute key (no * or ..): a mix reads named keys only")
    keys = sorted({a or b for a, b in PATH_KEY.findall(text)})
    if not keys:
        raise UserError(f"JSONPath filter {text!r} names no attribute (write @.<key> or $.attributes.<key>)")
    whole = re.match(r"\s*\$@?\.attributes\s*\[\s*\?", text) is not None  # @ is the attributes object

    def verdict(attributes: dict) -> bool:
        return bool(path.findall({"attributes": [attributes] if whole else attributes}))

    return _per_document(keys, verdict, text, "JSONPath")


def _jq_rule(text: str) -> Rule:
    import jq

    try:
        program = jq.compile(text)
    except ValueError as e:
        raise UserError(f"filter {text!r} is neither in the vectorised subset nor valid jq: {e}") from None
    other = DOC_FIELD.search(JQ_KEY.sub("", text))
    if other:
        raise UserError(
            f"jq filter {text!r} reads the document's {other[1]!r}: mix rules see the attributes only "
            "(tag what you need, e.g. stats_v1's chars, and compare that)"
        )
    keys = sorted({a or b for a, b in JQ_KEY.findall(text)})
    if not keys:
        raise UserError(f'jq filter {text!r} names no attribute (write .attributes.<key> or .attributes["<key>"])')

    def verdict(attributes: dict) -> bool:
        results = program.input_value({"attributes": attributes}).all()
        return bool(results) and all(bool(r) for r in results)

    return _per_document(keys, verdict, text, "jq")


def _per_document(keys: list[str], verdict, text: str, engine: str) -> Rule:
    columns = [pl.col(spans_column(k)) for k in keys]
    expr = pl.struct(columns).map_batches(partial(_run_each, verdict, text), return_dtype=pl.Boolean)
    return Rule(expr, set(keys), text, engine=engine)


def _run_each(verdict, text: str, rows: pl.Series) -> pl.Series:
    """The rule's verdict on each document of a batch (neither library has a batch API: one call per document)."""
    out = []
    for row in rows.to_list():
        attributes = {k.removesuffix(SPANS): v for k, v in row.items() if v is not None}
        try:
            out.append(verdict(attributes))
        except (ValueError, JSONPathError) as e:  # jq's runtime errors are ValueErrors
            raise UserError(f"filter {text!r} failed on attributes {attributes}: {e}") from None
    return pl.Series(out, dtype=pl.Boolean)


def _vectorised(text: str) -> Rule:
    tokens = [t for t in TOKEN.findall(text) if t]
    if "".join(tokens).replace(" ", "") != re.sub(r"\s+", "", text):
        raise UserError(
            f"cannot parse filter {text!r}: only comparisons of attribute scores with numbers, "
            "&& || ! (JSONPath) or and/or/not (jq) are supported"
        )
    jsonpath = bool(tokens) and tokens[0].startswith(("$.attributes", "$@.attributes"))
    if jsonpath:
        if tokens[-1] != ")]":
            raise UserError(f"JSONPath filter {text!r} must end with ')]'")
        tokens = tokens[1:-1]
    parser = _Parser(tokens, text, jsonpath)
    expr = parser.expression()
    if parser.i != len(tokens):
        raise UserError(f"cannot parse filter {text!r} near {' '.join(tokens[parser.i :])!r}")
    return Rule(expr.fill_null(False), parser.keys, text)


class _Parser:
    def __init__(self, tokens: list[str], text: str, jsonpath: bool):
        self.tokens, self.text, self.i, self.keys, self.jsonpath = tokens, text, 0, set(), jsonpath
        self.indexed: list[str] = []  # the indexes after the last attribute read

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> str:
        if self.i >= len(self.tokens):
            raise UserError(f"filter {self.text!r} ends too early")
        self.i += 1
        return self.tokens[self.i - 1]

    def expression(self) -> pl.Expr:
        left = self.conjunction()
        while self.peek() in ("||", "or"):
            self.take()
            left = left | self.conjunction()
        return left

    def conjunction(self) -> pl.Expr:
        left = self.unary()
        while self.peek() in ("&&", "and"):
            self.take()
            left = left & self.unary()
        return left

    def unary(self) -> pl.Expr:
        if self.peek() in ("!", "not"):
            self.take()
            return ~self.unary().fill_null(False)
        return self.comparison()

    def comparison(self) -> pl.Expr:
        left, is_value = self.operand()
        op = self.peek()
        if op in OPS:
            if self.indexed == ["[0]"]:
                raise UserError(f"filter {self.text!r}: a span ([0]) compared with a number; compare [0][2]")
            self.take()
            right, _ = self.operand()
            return self.compare(left, op, right)
        if is_value and not self.jsonpath:  # a jq value standing alone is true unless 0 or empty: jq decides
            raise UserError(f"filter {self.text!r}: a jq value used as a truth value")
        return left.is_not_null() if is_value else left

    def compare(self, left: pl.Expr, op: str, right: pl.Expr) -> pl.Expr:
        """``left op right`` where either side may be missing (null), as the syntax's library decides."""
        if op in ("==", "!="):
            return left.eq_missing(right) if op == "==" else left.ne_missing(right)
        plain = getattr(left, OPS[op])(right).fill_null(False)
        if self.jsonpath:  # Nothing compares false, except Nothing <= Nothing and >= (they are equal)
            return plain | (left.is_null() & right.is_null()) if op in ("<=", ">=") else plain
        low, high = (left, right) if op in ("<", "<=") else (right, left)  # jq: null is below every number
        return plain | (low.is_null() & high.is_not_null()) if op in ("<", ">") else plain | low.is_null()

    def operand(self) -> tuple[pl.Expr, bool]:
        """An expression, and whether it is an attribute value (so that standing alone means 'present')."""
        token = self.take()
        if token == "(":
            ahead = self.tokens[self.i + 1] if self.i + 1 < len(self.tokens) else None
            if self.peek() and self.peek().startswith(".attributes.") and ahead in ("//", ")"):
                value = self.attribute(self.take())
                if self.peek() == "//":  # (.attributes.key // [[0, 0, V]])[0][2]
                    self.take()
                    default = self.take()
                    value = value.fill_null(float(default.strip("[]").split(",")[-1]))
                if self.take() != ")":
                    raise UserError(f"filter {self.text!r}: expected ')'")
                self.indexes()
                return value, True
            inner = self.expression()
            if self.take() != ")":
                raise UserError(f"filter {self.text!r}: expected ')'")
            return inner, False
        if token.startswith("@.") or token.startswith(".attributes."):
            value = self.attribute(token)
            self.indexes()
            return value, True
        if token in ("true", "false"):
            return pl.lit(token == "true"), False
        try:
            return pl.lit(float(token)), False
        except ValueError:
            raise UserError(f"filter {self.text!r}: unexpected {token!r}") from None

    def attribute(self, token: str) -> pl.Expr:
        key = token.removeprefix("@.").removeprefix(".attributes.")
        self.keys.add(key)
        return pl.col(key)

    def indexes(self) -> None:
        """[0][2] (the first span's score) is what a key's column holds; [0] alone (the first span) can only be
        tested for presence, as in allenai's ``@.k && @.k[0] && @.k[0][2] >= 1`` idiom; other indexes are not
        supported here (jq runs them)."""
        seen = []
        while self.peek() and re.fullmatch(r"\[\d+\]", self.peek()):
            seen.append(self.take())
        if seen not in ([], ["[0]"], ["[0]", "[2]"]):
            raise UserError(f"filter {self.text!r}: only [0][2] (the first span's score) can be compared")
        self.indexed = seen
