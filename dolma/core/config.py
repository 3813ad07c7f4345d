"""Parameters checked before any work starts: a stage's or tagger's dataclass built from user values.

An unknown key or a value of the wrong type is a :class:`UserError` that names where it is
(``stages[3].bands``) and what was expected, so a typo in a recipe can never switch something off silently.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any

import pydantic

from dolma.core.errors import UserError


def build_dataclass(cls: type, params: dict[str, Any], where: str) -> Any:
    """Construct a stage or tagger dataclass from user parameters; an unknown key anywhere in it (nested
    mappings included), an ill-typed value or one out of its field's bounds (pydantic reads the ``gt``/``ge``/``le``
    that :func:`param` puts in a field's metadata) is a UserError naming
    ``where.key`` and what was expected."""
    check_keys(cls, params, where)
    try:
        built = pydantic.TypeAdapter(cls).validate_python(params)
    except pydantic.ValidationError as e:
        raise UserError(explain(e, where)) from None
    return built


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
    dataclass-typed fields must be a field: a typo is an error naming its path, never a silent no-op."""
    if not isinstance(params, dict):
        return
    known = [f.name for f in dataclasses.fields(cls)]
    for key in params:
        if key not in known:
            raise unknown_key(where, key, known)
    hints = typing.get_type_hints(cls)
    for key, value in params.items():
        inner, many = _dataclass_of(hints[key])
        if inner is None:
            continue
        if many and isinstance(value, list):
            for i, item in enumerate(value):
                check_keys(inner, item, f"{where}.{key}[{i}]")
        elif not many:
            check_keys(inner, value, f"{where}.{key}")


def explain(error: pydantic.ValidationError, where: str) -> str:
    parts = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"])
        parts.append(
            f"{where}.{key}: {item['msg']}" + (f" (got {item['input']!r})" if item["type"] != "missing" else "")
        )
    return "; ".join(parts)


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
