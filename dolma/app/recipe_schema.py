"""The recipe's own keys: ``executor`` and ``stages``, as pydantic models (each stage entry is validated against
its stage's dataclass by :func:`dolma.app.recipe.build_stage`). A module of its own so that only commands that
read a recipe pay for building these models.
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from dolma.core.errors import UserError


class ExecutorConfig(pydantic.BaseModel):
    """``kind: local`` (worker processes on this machine) or ``kind: ray`` (tasks on a Ray cluster)."""

    model_config = pydantic.ConfigDict(extra="forbid")
    kind: Literal["local", "ray"] = "local"
    workers: int | None = pydantic.Field(default=None, ge=1, description="worker processes; default all cores")
    address: str | None = pydantic.Field(
        default=None, description="ray only: 'auto' or 'host:port' of a running cluster; unset starts a local one"
    )
    max_retries: int = pydantic.Field(default=3, ge=0, description="ray only: retries of a task whose worker died")

    def build(self, workers: int | None = None):
        from dolma.runtime.cluster import RayExecutor
        from dolma.runtime.executors import LocalExecutor

        if self.kind == "ray":
            return RayExecutor(self.address, workers or self.workers, self.max_retries)
        if self.address is not None:
            raise UserError("executor.address is for kind: ray")
        return LocalExecutor(workers or self.workers)


class Recipe(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    executor: ExecutorConfig = ExecutorConfig()
    stages: list[dict[str, Any]] = pydantic.Field(min_length=1)
