"""Parameters checked before any work starts: a stage's or tagger's dataclass built from user values.

An unknown key or a value of the wrong type is a :class:`UserError` that names where it is
(``stages[3].bands``) and what was expected, so a typo in a recipe can never switch something off silently.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pydantic

from dolma.core.errors import UserError


def build_dataclass(cls: type, params: dict[str, Any], where: str) -> Any:
    """Construct a stage or tagger dataclass from user parameters; an unknown or ill-typed one is a UserError
    naming ``where.key`` and what was expected."""
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r}; expected one of {', '.join(known) or 'none'}")
    try:
        return pydantic.TypeAdapter(cls).validate_python(params)
    except pydantic.ValidationError as e:
        raise UserError(explain(e, where)) from None


def explain(error: pydantic.ValidationError, where: str) -> str:
    parts = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"])
        parts.append(
            f"{where}.{key}: {item['msg']}" + (f" (got {item['input']!r})" if item["type"] != "missing" else "")
        )
    return "; ".join(parts)


def param(default: Any = dataclasses.MISSING, help: str = "", *, factory: Any = dataclasses.MISSING, cli: bool = True):
    """A stage parameter with its help text beside it: the command line's option and the recipe key are
    generated from it (``cli=False``: recipe only, e.g. nested structures)."""
    return dataclasses.field(default=default, default_factory=factory, metadata={"help": help, "cli": cli})
