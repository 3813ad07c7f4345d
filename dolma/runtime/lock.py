"""One writer per output folder: a run holds a lock on every local folder it writes.

The lock is a file ``<output>/_ledger/lock.json`` naming the host, process and start time of its holder,
created exclusively (``O_EXCL``) and removed when the run ends. A second run that finds it refuses at once
with a message naming the holder; a lock whose holder is provably gone (a process of this host that no
longer exists) is taken over, and that dead run's temporary files are removed. Object storage has no
exclusive create, so remote outputs are not locked: there, every writer's temporary name is unique and the
last complete task wins.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator

import msgspec

from dolma import io
from dolma.core.errors import DataError
from dolma.io.writers import process_alive


class Holder(msgspec.Struct):
    host: str
    pid: int
    started: str


class OutputLocked(DataError):
    """Another run is writing the same output folder."""


def _lock_url(folder: str) -> str:
    return os.path.join(folder, "_ledger", "lock.json")


def _alive(holder: Holder) -> bool:
    if holder.host != socket.gethostname():
        return True  # cannot tell: assume it runs
    return process_alive(holder.pid)


def _take(folder: str, me: Holder) -> None:
    path = _lock_url(folder)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                with open(path, "rb") as f:
                    holder = msgspec.json.decode(f.read(), type=Holder)
            except (OSError, msgspec.DecodeError, msgspec.ValidationError):
                holder = None  # half-written by a holder killed while taking it
            if holder is not None and (holder.host, holder.pid) == (me.host, me.pid):
                return
            if holder is not None and _alive(holder):
                raise OutputLocked(
                    f"{folder} is being written by another run (host {holder.host}, pid {holder.pid}, "
                    f"since {holder.started}); wait for it to finish, or stop it and rerun"
                ) from None
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)  # the holder is gone: take the lock over
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(msgspec.json.encode(me))
        io.remove_dead_temporaries(folder)
        return
    raise OutputLocked(f"{folder}: could not take the lock {path}")


@contextlib.contextmanager
def locked(folders: list[str]) -> Iterator[None]:
    """Hold the lock of every local folder in ``folders`` for the block."""
    me = Holder(socket.gethostname(), os.getpid(), time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    taken: list[str] = []
    try:
        for folder in sorted({os.path.abspath(f) for f in folders if not io.is_remote(f)}):
            _take(folder, me)
            taken.append(folder)
        yield
    finally:
        for folder in taken:
            with contextlib.suppress(FileNotFoundError):
                os.remove(_lock_url(folder))
