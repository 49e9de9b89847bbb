"""One monitor per store: an exclusive `flock` on a file beside the store, held for the
monitor's life (a PostgreSQL store has its own lock, in `_pglock`).

The kernel drops the lock with the last descriptor of the process that holds it, however it
ends (SIGKILL included), so a dead holder never blocks the next monitor. The file says who
holds it (pid, host, since); it is left in place, as removing it would race with the next
holder opening it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from ._errors import StoreError
from ._store import is_postgresql_url
from ._storeholder import Holder as Holder, StoreBusy as StoreBusy


def lock_path(store: Path) -> Path:
    """The lock file of `store` (of its target, if a symlink: one lock whatever the name)."""
    real = store.resolve()
    return real.with_name(real.name + ".lock")


@contextlib.contextmanager
def holding(store: Path | str) -> Iterator[None]:
    """Hold `store` for a monitor; `StoreBusy` naming the holder if another one does."""
    if is_postgresql_url(store):
        from . import _pglock

        with _pglock.holding(str(store)):
            yield
        return
    store = Path(store)
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


def holder(store: Path | str) -> Holder | None:
    """The monitor that holds `store`, or None if none does. Creates nothing."""
    if is_postgresql_url(store):
        from . import _pglock

        return _pglock.holder(str(store))
    store = Path(store)
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
