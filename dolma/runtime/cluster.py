"""The Ray executor: each task a Ray task with one CPU, on a local Ray instance or a running cluster.

What a user of ``ray start`` trips over, and what this module does about it:

- **Authentication.** Ray (2.59 and later) enables token authentication for the clusters it starts; a node or
  driver that does not present the cluster's token is refused. The supported way is ``RAY_AUTH_MODE=token``
  and the token (``ray get-auth-token --generate`` on the head, then ``~/.ray/auth_token`` or
  ``RAY_AUTH_TOKEN`` on every node and where ``dolma run`` runs). We never turn authentication off; a refused
  connection becomes a one-line error that says this.
- **Local paths.** A Ray worker does not run in the driver's working directory, so a relative path such as
  ``out/documents`` would name another folder there. Every task first changes to the driver's working
  directory (which must exist at the same path on every node), so relative and absolute paths mean on a worker
  what they mean where the run was started. On a cluster of more than one node, before a stage's tasks are sent
  a probe file is written into its local output folder and one task pinned to each node must read it back:
  a node that cannot (the folder is not on a file system shared at the same path) stops the run with an error
  naming the node and the folder, instead of writing outputs where the driver never sees them.
- **Node loss.** A task whose worker process or node dies is retried by Ray up to ``max_retries`` times (a task
  that raises is not: the error is in the data or the code). Between results the executor watches the alive
  nodes and prints a line when one leaves. Completion markers make a retried task idempotent, so the output is
  the bytes a local run writes.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

from dolma import io
from dolma.core.errors import UserError
from dolma.runtime.executors import THREAD_VARIABLES

T = TypeVar("T")
R = TypeVar("R")
NODE_CHECK_SECONDS = 5.0  # how often the alive nodes are compared while results come in


def _run_on_ray(fn: Callable[[T], R], item: T, cwd: str) -> R:
    """A task on a Ray worker, run in the driver's working directory (relative paths mean the same there)."""
    if not os.path.isdir(cwd):
        raise UserError(
            f"the run's working directory {cwd} does not exist on this Ray node: local paths need the same folder "
            "on every node (a shared file system mounted at the same path), or use s3:// / gs:// URLs"
        )
    os.chdir(cwd)
    return fn(item)


def _read_probe(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


class RayExecutor:
    """Runs each task as a Ray task (one CPU each) on a Ray cluster: ``address`` None starts a local one on this
    machine with ``workers`` CPUs; ``"auto"`` or ``"host:port"`` joins a running cluster (``ray start``).
    See the module's docstring for authentication, local paths and node loss."""

    streams_progress = False  # Ray tasks report when they finish, not batch by batch

    def __init__(self, address: str | None = None, workers: int | None = None, max_retries: int = 3):
        self.address = address
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.max_retries = max_retries
        self._nodes: dict[str, str] | None = None  # alive nodes (id -> address) when last looked at

    def _connect(self):
        import ray

        if not ray.is_initialized():
            try:
                ray.init(
                    address=self.address,
                    num_cpus=self.workers if self.address is None else None,
                    include_dashboard=False,
                    log_to_driver=True,
                    runtime_env={"env_vars": {n: "1" for n in THREAD_VARIABLES}},
                )
            except ray.exceptions.AuthenticationError as e:
                raise UserError(
                    f"the Ray cluster at {self.address} refused this connection ({str(e).splitlines()[0][:160]}): "
                    "set RAY_AUTH_MODE=token and give the cluster's token (~/.ray/auth_token or RAY_AUTH_TOKEN), "
                    "as on every node; see the README's Ray section"
                ) from None
            except ConnectionError as e:  # what Ray raises for a wrong token, too
                raise UserError(
                    f"cannot connect to the Ray cluster at {self.address} ({e}): is it running (`ray status`), and "
                    "does this process have its token (RAY_AUTH_MODE=token, ~/.ray/auth_token or RAY_AUTH_TOKEN)?"
                ) from None
        return ray

    def close(self) -> None:
        """Nothing to release between runs: the connection to the cluster lasts as long as this process."""

    def check_reachable(self, folder: str) -> None:
        """On a cluster of more than one node, every node must see ``folder`` (a local output) as this process
        does: a probe file written here is read back by one task pinned to each alive node."""
        if io.is_remote(folder):
            return
        ray = self._connect()
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        if len(nodes) < 2:
            return
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        folder = os.path.abspath(folder)
        os.makedirs(folder, exist_ok=True)
        probe, token = os.path.join(folder, f".ray-probe-{uuid.uuid4().hex}"), uuid.uuid4().hex
        with open(probe, "w") as f:
            f.write(token)
        try:
            read = ray.remote(num_cpus=0)(_read_probe)
            seen = ray.get(
                [
                    read.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
                        probe
                    )
                    for n in nodes
                ]
            )
        finally:
            os.remove(probe)
        blind = [n.get("NodeManagerAddress", n["NodeID"]) for n, s in zip(nodes, seen) if s != token]
        if blind:
            raise UserError(
                f"Ray node(s) {', '.join(blind)} cannot see the local folder {folder}: on a multi-node cluster, "
                "local paths must be on a file system shared at the same path by every node; or use s3:// / gs://"
            )

    def map(self, fn: Callable[[T], R], items: list[T], on_progress: Callable[[int, int], None]) -> Iterator[R]:
        if not items:
            return
        ray = self._connect()
        remote = ray.remote(num_cpus=1, max_retries=self.max_retries, retry_exceptions=False)(_run_on_ray)
        cwd = os.getcwd()
        pending = [remote.remote(fn, item, cwd) for item in items]
        self._nodes, checked = _report_lost(ray, self._nodes), time.monotonic()  # one lost between stages too
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=NODE_CHECK_SECONDS)
            if time.monotonic() - checked >= NODE_CHECK_SECONDS:
                self._nodes, checked = _report_lost(ray, self._nodes), time.monotonic()
            if done:
                yield ray.get(done[0])


def _alive(ray) -> dict[str, str]:
    return {n["NodeID"]: n.get("NodeManagerAddress", "?") for n in ray.nodes() if n.get("Alive")}


def _report_lost(ray, before: dict[str, str] | None) -> dict[str, str]:
    """The alive nodes now; a line on stderr for each one that left since ``before`` (None: first look)."""
    now = _alive(ray)
    for node in (before or {}).keys() - now.keys():
        print(
            f"Ray node {before[node]} ({node[:12]}) left the cluster; its running tasks are retried elsewhere",
            file=sys.stderr,
            flush=True,
        )
    return now
