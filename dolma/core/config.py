"""Parameters checked before any work starts: a stage's or tagger's dataclass built from user values.

An unknown key, a value of the wrong type or one outside its field's bounds is a :class:`UserError` that
names where it is (``stages[3].bands``) and what was expected, so a typo in a recipe can never switch something
off silently. Values are converted by msgspec (lax: ``"3"`` is read as 3 where an integer is expected, as a
command line gives it), which builds a dataclass in microseconds with nothing to import: every stage run from
the command line pays for this once, so it must not cost a validation framework's start-up.
"""

from __future__ import annotations

import dataclasses
import difflib
import operator
import re
import types
import typing
from typing import Any, Literal

import msgspec

from dolma.core.errors import UserError

BOUNDS = {  # field metadata key: (how an error says it, the test a value must pass)
    "gt": ("greater than", operator.gt),
    "ge": ("greater than or equal to", operator.ge),
    "lt": ("less than", operator.lt),
    "le": ("less than or equal to", operator.le),
}
TYPE_NAMES = {  # msgspec's names of JSON-like types, as an error message says them
    "int": "a valid integer",
    "float": "a valid number",
    "str": "a valid string",
    "bool": "a valid boolean",
    "array": "a valid list",
    "object": "a valid mapping",
    "null": "null",
}


def build_dataclass(cls: type, params: dict[str, Any], where: str) -> Any:
    """Construct a stage or tagger dataclass from user parameters; an unknown key anywhere in it (nested
    mappings included), an ill-typed value or one out of its field's bounds (the ``gt``/``ge``/``lt``/``le``
    that :func:`param` puts in a field's metadata) is a UserError naming ``where.key`` and what was expected."""
    check_keys(cls, params, where)
    try:
        return msgspec.convert(params, cls, strict=False)
    except msgspec.ValidationError as e:
        raise UserError(_explain_conversion(e, cls, params, where)) from None


def unknown_key(where: str, key: Any, known: list[str]) -> UserError:
    """The error for a key that is not one of ``known``, with the nearest valid key when one is close."""
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(known) or 'none'}"
    return UserError(f"{where}.{key}: unknown key; {hint}")


def _dataclass_of(hint: Any) -> tuple[type | None, bool]:
    """(the dataclass a field holds, whether as a list of them), or (None, False)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)] if typing.get_origin(hint) else []
    if dataclasses.is_dataclass(hint):
        return hint, False
    if typing.get_origin(hint) is list and args and dataclasses.is_dataclass(args[0]):
        return args[0], True
    if len(args) == 1 and typing.get_origin(hint) is not list:
        return _dataclass_of(args[0])
    return None, False


def check_keys(cls: type, params: Any, where: str) -> None:
    """Every key of ``params`` (a mapping for the dataclass ``cls``) and of the mappings nested in it for
    dataclass-typed fields must be a field (a typo is an error naming its path, never a silent no-op), and
    every number given must lie within its field's bounds."""
    if not isinstance(params, dict):
        return
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in params:
        if key not in fields:
            raise unknown_key(where, key, list(fields))
    hints = typing.get_type_hints(cls)
    for key, value in params.items():
        _check_bounds(fields[key].metadata, value, f"{where}.{key}")
        inner, many = _dataclass_of(hints[key])
        if inner is None:
            continue
        if many and isinstance(value, list):
            for i, item in enumerate(value):
                check_keys(inner, item, f"{where}.{key}[{i}]")
        elif not many:
            check_keys(inner, value, f"{where}.{key}")


def _check_bounds(metadata: Any, value: Any, where: str) -> None:
    """A number (or a number written as text) outside the field's bounds is an error; other values are left
    to the type check."""
    if isinstance(value, bool) or not any(metadata.get(b) is not None for b in BOUNDS):
        return
    try:
        number = float(value)
    except (TypeError, ValueError):
        return
    for name, (text, holds) in BOUNDS.items():
        bound = metadata.get(name)
        if bound is not None and not holds(number, bound):
            raise UserError(f"{where}: Input should be {text} {bound} (got {value!r})")


_STEP = re.compile(r"\.(\w+)|\[(\d+)\]")


def _explain_conversion(error: msgspec.ValidationError, cls: type, params: Any, where: str) -> str:
    """msgspec's message as ``where.key: what was expected (got value)``."""
    message, _, at = str(error).partition(" - at `")
    steps = [(m[1], m[2]) for m in _STEP.finditer(at.rstrip("`")[1:])]
    place = where + "".join(f".{name}" if name else f"[{index}]" for name, index in steps)
    if m := re.fullmatch(r"Object missing required field `(\w+)`", message):
        return f"{place}.{m[1]}: Field required"
    value, annotation = _lookup(params, cls, steps)
    got = f" (got {value!r})" if value is not _NOTHING else ""
    if m := re.fullmatch(r"Expected `([^`]+)`, got `\w+`", message):
        wanted = " or ".join(TYPE_NAMES.get(t, f"`{t}`") for t in m[1].split(" | "))
        return f"{place}: Input should be {wanted}{got}"
    if message.startswith("Invalid enum value") and typing.get_origin(annotation) is Literal:
        options = [repr(o) for o in typing.get_args(annotation)]
        listed = ", ".join(options[:-1]) + " or " + options[-1] if len(options) > 1 else options[0]
        return f"{place}: Input should be {listed}{got}"
    return f"{place}: {message}{got}"


_NOTHING = object()


def _lookup(params: Any, cls: Any, steps: list[tuple[str, str]]) -> tuple[Any, Any]:
    """The value given at a path of (field, index) steps and the annotation of the field it fills (optional
    wrappers removed); ``_NOTHING`` / None where the path leaves the parameters or the dataclasses."""
    value, annotation = params, cls
    for name, index in steps:
        try:
            value = value[name] if name else value[int(index)]
        except (KeyError, IndexError, TypeError):
            value = _NOTHING
        if name and dataclasses.is_dataclass(annotation):
            annotation = typing.get_type_hints(annotation).get(name)
        elif index and typing.get_origin(annotation) is list:
            annotation = typing.get_args(annotation)[0]
        else:
            annotation = None
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):  # X | None: X
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0] if len(args) == 1 else annotation
    return value, annotation


def param(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    factory: Any = dataclasses.MISSING,
    cli: bool = True,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
):
    """A stage parameter with its help text and bounds beside it: the command line's option and the recipe
    key are generated from it (``cli=False``: recipe only, e.g. nested structures); a value outside
    ``gt``/``ge``/``lt``/``le`` is an error before any work starts."""
    metadata = {"help": help, "cli": cli, "gt": gt, "ge": ge, "lt": lt, "le": le}
    return dataclasses.field(default=default, default_factory=factory, metadata=metadata)
