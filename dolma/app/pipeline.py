"""The Python API: build any stage or recipe and run it, getting back what each stage did.

```python
from dolma import pipeline

results = pipeline.run(
    [
        pipeline.stage("import", input="data/*.jsonl.gz", output="out/documents"),
        pipeline.stage("tag", input="out/documents/*.jsonl.zst", taggers=["c4_v1"], experiment="quality"),
        pipeline.stage("dedup", input="out/documents/*.jsonl.zst", work="out/dedup", bands=20, rows=5),
    ],
    workers=2,
)
for r in results:
    print(r.name, r.summary.kept, r.summary.dropped)
```

Stages are the same objects a recipe builds, validated the same way (a misspelled parameter is a
:class:`UserError` naming it); groups such as ``dedup`` and ``mix`` run as their steps. A rerun skips every
finished task, exactly as on the command line.
"""

from __future__ import annotations

from typing import Any

from dolma.app.recipe import build_stage, load_recipe
from dolma.core.errors import UserError
from dolma.runtime.cluster import RayExecutor
from dolma.runtime.executors import Executor, LocalExecutor
from dolma.runtime.run import Progress, StageResult, run_stages
from dolma.runtime.stage import Stage, StageGroup

__all__ = ["LocalExecutor", "RayExecutor", "StageResult", "UserError", "recipe", "run", "stage"]


def stage(kind: str, **params: Any) -> Stage | StageGroup:
    """A stage (or group of steps) of the given kind (``import``, ``web``, ``pdf``, ``tag``, ``dedup``,
    ``paragraph_dedup``, ``mix``, ``carve``, ``tokenize``) from its recipe parameters."""
    return build_stage(kind, params, kind)


def recipe(path: str) -> list[Stage]:
    """The stages of a YAML recipe, validated, in the order they run."""
    return load_recipe(path)[1]


def run(
    stages: str | Stage | StageGroup | list[Stage | StageGroup],
    *,
    workers: int | None = None,
    executor: Executor | None = None,
    progress: Progress | bool = False,
) -> list[StageResult]:
    """Run a recipe (a path), a stage, a group or a list of them in order; returns each stage's summary.

    ``workers`` sizes the default local executor (a recipe's own executor is used when given a recipe path);
    ``progress=True`` draws the command line's progress bars."""
    if isinstance(stages, str):
        config, stages = load_recipe(stages)
        executor = executor or config.executor.build(workers)
    elif isinstance(stages, (Stage, StageGroup)):
        stages = [stages]
    if progress is True:
        from dolma.app.progress import RichProgress

        progress = RichProgress()
    return run_stages(stages, executor or LocalExecutor(workers), progress or None)
