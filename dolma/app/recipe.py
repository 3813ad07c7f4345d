"""YAML recipes: a pipeline of stages plus an executor, validated before any work starts.

```yaml
executor: {kind: local, workers: 2}
stages:
  - stage: import
    input: data/documents/*.jsonl.gz
    output: out/documents
```

Each stage entry names a stage kind; its other keys are that stage's parameters. ``${VAR}`` expands from the
environment. Validation errors name the offending key (``stages[0].compression``) and what was expected.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from typing import Any, Literal

from dolma.core.config import build_dataclass, param
from dolma.core.errors import UserError
from dolma.runtime.stage import Stage, StageGroup, expand

# stage kind -> "module:Class"; each class is a dataclass whose fields are the stage's parameters
STAGE_KINDS: dict[str, str] = {
    "import": "dolma.ingest.importer:ImportStage",
    "web": "dolma.ingest.web:WebStage",
    "pdf": "pdf_extract.stage:PdfStage",
    "tokenize": "dolma.tokenize.stage:TokenizeStage",
    "tag": "taggers.stage:TagStage",
    "carve": "mixers.carve:CarveStage",
    "dedup": "dolma.dedup.clusters:DedupStage",
    "paragraph_dedup": "dolma.dedup.paragraphs:ParagraphDedupStage",
    "mix": "mixers.mix:MixStage",
    "hf_import": "dolma.hub.source:HubImportStage",
    "hf_export": "dolma.hub.export:HubExportStage",
}


@dataclass
class ExecutorConfig:
    """``kind: local`` (worker processes on this machine) or ``kind: ray`` (tasks on a Ray cluster)."""

    kind: Literal["local", "ray"] = param("local", "local: worker processes here; ray: tasks on a Ray cluster")
    workers: int | None = param(None, "worker processes; default all cores", ge=1)
    address: str | None = param(None, "ray only: 'auto' or 'host:port' of a running cluster; unset starts one here")
    max_retries: int = param(3, "ray only: retries of a task whose worker died", ge=0)

    def build(self, workers: int | None = None):
        from dolma.runtime.cluster import RayExecutor
        from dolma.runtime.executors import LocalExecutor

        if self.kind == "ray":
            return RayExecutor(self.address, workers or self.workers, self.max_retries)
        if self.address is not None:
            raise UserError("executor.address is for kind: ray")
        return LocalExecutor(workers or self.workers)


@dataclass
class Recipe:
    """A recipe's own keys, checked like every stage's parameters (:func:`dolma.core.config.build_dataclass`)."""

    stages: list[dict[str, Any]] = param(help="the stages in order, each a mapping with its kind under 'stage'")
    executor: ExecutorConfig = param(factory=ExecutorConfig, help="where the tasks run")

    def __post_init__(self) -> None:
        if not self.stages:
            raise UserError("recipe.stages: a recipe needs at least one stage")


def stage_class(kind: str) -> type:
    if kind not in STAGE_KINDS:
        raise UserError(f"unknown stage kind {kind!r}; known kinds: {', '.join(sorted(STAGE_KINDS))}")
    module, _, cls = STAGE_KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), cls)


def build_stage(kind: str, params: dict[str, Any], where: str) -> Stage | StageGroup:
    """Validate ``params`` against the stage's dataclass fields; errors name ``where.key``."""
    return build_dataclass(stage_class(kind), params, where)


VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def _expand(value: Any, where: str = "recipe") -> Any:
    """``${VAR}`` from the environment (an unset one is an error naming it and where it is used);
    ``${VAR:-default}`` falls back to the default."""
    if isinstance(value, str):

        def substitute(m: re.Match) -> str:
            found = os.environ.get(m["name"])
            if found is None and m["default"] is None:
                raise UserError(f"{where}: environment variable {m['name']} is not set (or write ${{{m['name']}:-x}})")
            return found if found is not None else m["default"]

        return VARIABLE.sub(substitute, value)
    if isinstance(value, list):
        return [_expand(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _expand(v, f"{where}.{k}" if where != "recipe" else str(k)) for k, v in value.items()}
    return value


MAX_VALUES = 1_000_000  # a recipe is a page of settings; more values than this is an alias bomb


def _expanded_size(value, sizes: dict[int, int]) -> int:
    """How many values the recipe holds once every YAML alias is expanded, counted without expanding: an
    aliased node is counted once per use, its size computed once (so a "billion laughs" costs microseconds)."""
    if not isinstance(value, (list, dict)):
        return 1
    if id(value) not in sizes:
        children = value.values() if isinstance(value, dict) else value
        sizes[id(value)] = 1 + sum(_expanded_size(v, sizes) for v in children)
    return sizes[id(value)]


def load_yaml(path: str, what: str = "recipe") -> dict:
    """A YAML (or JSON) settings file as a mapping; missing, malformed, over-deep or alias-bomb files are errors."""
    import yaml  # here: a stage run from the command line reads no YAML and skips its import

    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
    except FileNotFoundError:
        raise UserError(f"{what} {path!r} does not exist") from None
    except yaml.YAMLError as e:
        raise UserError(f"{what} {path!r} is not valid YAML: {' '.join(str(e).split())}") from None
    except RecursionError:
        raise UserError(f"{what} {path!r} nests too deeply to be a {what}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{what} {path!r} must be a mapping (a recipe: 'stages' and optionally 'executor')")
    try:
        too_large = _expanded_size(raw, {}) > MAX_VALUES
    except RecursionError:
        raise UserError(f"{what} {path!r} nests too deeply to be a {what}") from None
    if too_large:
        raise UserError(f"{what} {path!r} expands to over {MAX_VALUES:,} values (YAML aliases nested in aliases?)")
    return raw


def load_recipe(path: str) -> tuple[Recipe, list[Stage]]:
    """Parse and validate a recipe; returns it with the constructed stages, or raises UserError."""
    recipe = build_dataclass(Recipe, _expand(load_yaml(path)), "recipe")
    stages = []
    for i, entry in enumerate(recipe.stages):
        params = dict(entry)
        kind = params.pop("stage", None)
        if kind is None:
            raise UserError(f"stages[{i}]: missing key 'stage' (one of {', '.join(sorted(STAGE_KINDS))})")
        stages += expand([build_stage(kind, params, f"stages[{i}]")])  # a group (dedup, mix) runs as its steps
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise UserError(f"stage names must be unique (set 'name:' on repeated kinds): {names}")
    return recipe, stages
