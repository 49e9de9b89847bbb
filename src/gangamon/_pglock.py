"""One monitor per PostgreSQL store: a session advisory lock of the store's schema, held on a
connection of its own for the monitor's life.

The server drops the lock with the connection, however the monitor ends (SIGKILL included;
a host that vanishes, once the server sees its connection gone). Who holds it the server
says itself: the holder's connection is named after it (pid, host) in pg_stat_activity.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from collections.abc import Iterator
from typing import Any

import psycopg

from ._store import redacted
from ._store._postgres import LOCK_CLASS, connect, schema_key
from ._storeholder import Holder, StoreBusy

#: First key of the monitor's lock: the write lock's (LOCK_CLASS) plus one.
MONITOR_LOCK_CLASS = LOCK_CLASS + 1
_NAMED = re.compile(r"gangamon run: pid (\d+) on (.*)")


@contextlib.contextmanager
def holding(url: str) -> Iterator[None]:
    """Hold the store at `url` for a monitor; `StoreBusy` naming the holder if another does."""
    name = f"gangamon run: pid {os.getpid()} on {socket.gethostname()}"[:63]
    with connect(url, application_name=name) as db:
        key = (MONITOR_LOCK_CLASS, schema_key(db, redacted(url)))
        row = db.execute("SELECT pg_try_advisory_lock(%s, %s)", key).fetchone()
        if row is None or not row[0]:
            raise StoreBusy(redacted(url), _holder(db, key) or Holder(None, "", None))
        yield


def holder(url: str) -> Holder | None:
    """The monitor that holds the store at `url`, or None if none does."""
    with connect(url) as db:
        return _holder(db, (MONITOR_LOCK_CLASS, schema_key(db, redacted(url))))


def _holder(db: psycopg.Connection[tuple[Any, ...]], key: tuple[int, int]) -> Holder | None:
    row = db.execute(
        "SELECT a.application_name, extract(epoch FROM a.backend_start)::float8"
        " FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND l.classid = %s::int4::oid AND l.objid = %s::int4::oid",
        key,
    ).fetchone()
    if row is None:
        return None
    named = _NAMED.fullmatch(row[0] or "")
    if named is None:
        return Holder(None, "", None)  # someone else's session holds our key
    return Holder(int(named.group(1)), named.group(2), float(row[1]))
