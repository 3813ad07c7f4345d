"""Command-line options generated from a stage's dataclass, so a parameter's default and help live in one place.

Each field becomes ``--field-name`` (or the command's own name for it, e.g. ``--documents`` for ``input``)
with its type, its choices when it is a ``Literal`` and the help written beside it (:func:`dolma.core.config.
param`). Options left out are not passed at all, so the stage's own default (or its preset) applies.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Literal

NONE = "none"  # how an optional choice is switched off on the command line


def _unwrap(hint: Any) -> tuple[list[Any], bool]:
    """(the member types of a union, whether None is one of them)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = list(typing.get_args(hint))
    else:
        args = [hint]
    return [a for a in args if a is not type(None)], type(None) in args


def _scalar(members: list[Any], optional: bool, name: str) -> dict[str, Any]:
    """argparse keywords for a scalar field: a type, or choices for Literal members."""
    choices = [v for m in members if typing.get_origin(m) is Literal for v in typing.get_args(m)]
    plain = [m for m in members if typing.get_origin(m) is not Literal]
    if choices and not plain:
        return {"choices": [*choices, *([NONE] if optional else [])], "type": _choice(choices, None, optional)}
    kind = plain[0] if plain else str
    if kind not in (str, int, float):
        raise TypeError(f"option --{name}: no command-line form for {kind!r}")
    return {"type": _choice(choices, kind, optional), "metavar": kind.__name__.upper()}


def _choice(choices: list[Any], kind: type | None, optional: bool):
    def parse(text: str) -> Any:
        if optional and text == NONE:
            return None
        if text in choices:
            return text
        if kind is None:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(map(str, choices))}")
        try:
            return kind(text)
        except ValueError:
            extra = f" or one of {', '.join(map(str, choices))}" if choices else ""
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}{extra}, got {text!r}") from None

    return parse


def _mapping_or_name(text: str) -> Any:
    """A list item given as a name or a YAML mapping (``'{name: decontam_v1, eval_files: [x]}'``)."""
    import yaml  # here: most command lines give no mapping, and YAML's import costs ~15 ms of every start

    return yaml.safe_load(text) if text.lstrip().startswith("{") else text


class _Pairs(argparse.Action):
    """``KEY=VALUE ...`` into a dict (a mapping field, e.g. ``--fields text=content id=doc_id``)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        pairs = {}
        for item in values:
            key, sep, value = item.partition("=")
            if not sep or not key or not value:
                parser.error(f"{option_string}: expected KEY=VALUE, got {item!r}")
            pairs[key] = value
        setattr(namespace, self.dest, pairs)


def _default_text(f: dataclasses.Field) -> str:
    if "(default:" in f.metadata.get("help", ""):  # the help names the default in words (not a local path)
        return ""
    if f.default is not dataclasses.MISSING:
        return "" if f.default in (None, "") else f" (default: {f.default})"
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        return f" (default: {' '.join(map(str, value))})" if value else ""
    return ""


def add_options(parser: argparse.ArgumentParser, cls: type, names: dict[str, str] | None = None) -> None:
    """One option per field of the dataclass ``cls`` that has a command-line form."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True):
            continue
        option = "--" + (names or {}).get(f.name, f.name).replace("_", "-")
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        text = f.metadata.get("help", "") + _default_text(f)  # argparse formats help with %: a literal % is %%
        kwargs: dict[str, Any] = {"dest": f.name, "help": text.replace("%", "%%")}
        kwargs["default"] = argparse.SUPPRESS
        members, optional = _unwrap(hints[f.name])
        if members == [bool]:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(members[0]) is dict:
            kwargs.update(nargs="+", action=_Pairs, metavar="KEY=VALUE")
        elif typing.get_origin(members[0]) is list:
            item = typing.get_args(members[0])[0]
            kwargs["nargs"] = "+" if required else "*"
            kwargs["type"] = _mapping_or_name if item is not str else str
        else:
            kwargs.update(_scalar(members, optional, f.name))
        parser.add_argument(option, required=required, **kwargs)


def given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The stage parameters the user gave on the command line."""
    fields = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in fields}


class VersionAction(argparse.Action):
    """``--version``, looked up only when asked for (importlib.metadata costs every other command ~25 ms)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("dolma-curator")
        except PackageNotFoundError:
            found = "unknown (not installed)"
        print(f"{parser.prog} {found}")
        parser.exit()
