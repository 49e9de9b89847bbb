"""One monitor per store: an exclusive `flock` on a file beside the store, held for the
monitor's life.

The kernel drops the lock with the last descriptor of the process that holds it, however it
ends (SIGKILL included), so a dead holder never blocks the next monitor. The file says who
holds it (pid, host, since); it is left in place, as removing it would race with the next
holder opening it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ._errors import StoreError


@dataclass(frozen=True, slots=True)
class Holder:
    """The monitor that holds a store."""

    pid: int | None
    host: str
    since: float | None

    def __str__(self) -> str:
        if self.pid is None or self.since is None:
            return "a monitor that is starting"
        since = dt.datetime.fromtimestamp(self.since).astimezone()
        return f"pid {self.pid} on {self.host} since {since:%Y-%m-%d %H:%M:%S %Z}"


class StoreBusy(StoreError):
    """Another monitor holds the store."""

    def __init__(self, path: Path, holder: Holder) -> None:
        self.holder = holder
        super().__init__(path, f"another monitor runs on it ({holder})")


def lock_path(store: Path) -> Path:
    """The lock file of `store` (of its target, if a symlink: one lock whatever the name)."""
    real = store.resolve()
    return real.with_name(real.name + ".lock")


@contextlib.contextmanager
def holding(store: Path) -> Iterator[None]:
    """Hold `store` for a monitor; `StoreBusy` naming the holder if another one does."""
    path = lock_path(store)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise StoreError(store, f"cannot create its lock file {path}: {e.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreBusy(store, _read(fd)) from None
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        yield
    finally:
        os.close(fd)


def holder(store: Path) -> Holder | None:
    """The monitor that holds `store`, or None if none does. Creates nothing."""
    try:
        fd = os.open(lock_path(store), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None  # no monitor has run on it (or we cannot see its lock)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd)
        return None
    finally:
        os.close(fd)


def _read(fd: int) -> Holder:
    try:
        found = json.loads(os.pread(fd, 4096, 0))
        return Holder(int(found["pid"]), str(found["host"]), float(found["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return Holder(None, "", None)  # it holds the lock and has not written yet
