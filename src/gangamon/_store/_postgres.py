"""The job store on a PostgreSQL server, for a group's service (see `_base` for what every
store does). Needs psycopg 3: `pip install gangamon[postgresql]`.

The tables live in the connection's current schema (the first of its search_path), which
holds nothing else: a database or a schema of its own, as a file is SQLite's. Every write
transaction first takes a transaction-scoped advisory lock of that schema, the store's one
write lock (as SQLite's BEGIN IMMEDIATE is): writers queue on it, readers never wait.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

import psycopg

from .._errors import StoreError, StoreMissing, StoreUnwritable
from ._base import ACTIVE_VALUES, JobChange, JobStore, JournalRow, schema
from ._location import redacted

#: The version of the tables this gangamon reads and writes, kept in `gangamon_store`.
SCHEMA_VERSION = 1
#: First key of the advisory locks gangamon takes: "ggmn" in ASCII.
LOCK_CLASS = 0x67676D6E
#: Connection parameters the URL may set otherwise: wait 10 s for the server; and notice a
#: server gone silent (a network cut) within about 30 s, in a call or between calls, so that a
#: call blocked on it ends (as StoreUnwritable) and stopping stays bounded.
DEFAULTS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}
#: Seconds `interrupt` waits for the server to take the cancel request.
CANCEL_TIMEOUT = 2.0

_SCHEMA = [
    *schema(key="BIGINT", real="DOUBLE PRECISION"),
    "CREATE TABLE gangamon_store (application TEXT NOT NULL, schema_version INTEGER NOT NULL)",
    f"INSERT INTO gangamon_store VALUES ('gangamon', {SCHEMA_VERSION})",
]


def connect(
    url: str, *, application_name: str = "gangamon", read_only: bool = False
) -> psycopg.Connection[tuple[Any, ...]]:
    """A connection in autocommit mode; `StoreError` naming the URL without its password if
    the URL is wrong or the server will not have us."""
    try:
        given = psycopg.conninfo.conninfo_to_dict(url)
        extra = {k: v for k, v in DEFAULTS.items() if k not in given}
        conninfo = psycopg.conninfo.make_conninfo(url, application_name=application_name, **extra)
        db = psycopg.connect(conninfo, autocommit=True)
    except psycopg.Error as e:
        raise StoreError(redacted(url), f"cannot connect: {hidden(url, e)}") from None
    if read_only:
        db.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    return db


def schema_key(db: psycopg.Connection[tuple[Any, ...]], where: str) -> int:
    """The second key of the store's advisory locks: one store per schema, one key each."""
    row = db.execute("SELECT current_schema(), hashtext(current_schema())").fetchone()
    if row is None or row[0] is None:
        raise StoreError(where, "no schema to keep the store in (see its search_path)")
    return int(row[1])


def hidden(url: str, error: BaseException) -> str:
    """libpq's message for `error`, which may span lines (one per address tried), as one
    line, with `url`'s password hidden should it show."""
    message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    password = urlsplit(url).password
    return message.replace(password, "***") if password else message


@functools.lru_cache(maxsize=256)
def _placeholders(sql: str) -> str:
    """The shared SQL's `?` placeholders as psycopg's `%s` (the shared SQL holds no `%`)."""
    return sql.replace("?", "%s")


class PostgresStore(JobStore):
    """A gangamon job store in a PostgreSQL database. Not thread-safe: one caller at a time.

    Opening creates the tables if the schema is empty; a schema holding other tables, or the
    tables of a newer gangamon, raises `StoreError`, as does a URL that is wrong or a server
    that refuses us, each naming the URL without its password. `read_only` opens an existing
    store in read-only transactions and creates nothing.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        read_only: bool = False,
    ) -> None:
        super().__init__(clock=clock, read_only=read_only)
        self.where = redacted(url)
        self._url = url
        self._depth = 0
        self._db = self._connect()
        try:
            self._lock_key = self._schema_lock()
            self._prepare()
        except BaseException:
            self._db.close()
            raise

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        return connect(self._url, read_only=self.read_only)

    def _schema_lock(self) -> tuple[int, int]:
        """The key of this store's write lock."""
        return (LOCK_CLASS, schema_key(self._db, self.where))

    def _prepare(self) -> None:
        version = self._version()
        if version is None and self.read_only:
            raise StoreMissing(
                self.where, "no gangamon tables yet (gangamon track or gangamon run makes them)"
            )
        if version is None:
            with self._transaction():
                if self._version() is None:  # checked again under the lock: another may have won
                    self._create()
            return
        if version > SCHEMA_VERSION:
            raise StoreError(
                self.where,
                f"written by a newer gangamon (schema {version}, this one reads {SCHEMA_VERSION})",
            )

    def _version(self) -> int | None:
        """The schema version of the store, None if its schema is empty."""
        if self._scalar("SELECT count(to_regclass('gangamon_store'))"):
            found = self._execute("SELECT application, schema_version FROM gangamon_store")
            rows = found.fetchall()
            if len(rows) != 1 or rows[0][0] != "gangamon":
                raise StoreError(self.where, "not a gangamon store (its gangamon_store table)")
            version: int = rows[0][1]
            return version
        tables = self._scalar(
            "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema()"
        )
        if tables:
            raise StoreError(
                self.where,
                f"not a gangamon store ({tables} tables of something else in its schema;"
                " give gangamon a database or a schema of its own)",
            )
        return None

    def _create(self) -> None:
        for statement in _SCHEMA:
            self._execute(statement)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> PostgresStore:
        return self

    def interrupt(self) -> None:
        # A server that does not answer the cancel request leaves the statement to the
        # keepalives, which end it within about 30 s.
        with contextlib.suppress(psycopg.Error):
            self._db.cancel_safe(timeout=CANCEL_TIMEOUT)

    # -- the connection ------------------------------------------------------------------

    _foreign_key_errors: ClassVar[tuple[type[Exception], ...]] = (
        psycopg.errors.ForeignKeyViolation,
    )

    def _execute(self, sql: str, args: Sequence[object] = ()) -> psycopg.Cursor[Any]:
        if self._depth == 0:
            self._reconnect_if_lost()
        return self._db.execute(_placeholders(sql), args)

    def _executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        self._db.cursor().executemany(_placeholders(sql), rows)

    # A batch in one statement each, its columns as arrays: one round trip, not one per row.

    def _insert_journal(self, rows: Sequence[tuple[int, *JournalRow]]) -> None:
        self._db.execute(
            "INSERT INTO journal (seq, job, old, new, native_status, reason, time, details)"
            " SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[],"
            " %s::text[], %s::text[], %s::float8[], %s::text[])",
            [list(column) for column in zip(*rows, strict=True)],
        )

    def _update_jobs(self, rows: Sequence[JobChange], now: float) -> None:
        # The active-id index is checked row by row, in no set order within a statement: the
        # jobs leaving active statuses go first, so that a batch's run that ends frees its id
        # for one it revives (as in SQLite, where each row is a statement in batch order).
        leaving = [row for row in rows if row[1] not in ACTIVE_VALUES]
        staying = [row for row in rows if row[1] in ACTIVE_VALUES]
        for part in (leaving, staying):
            if not part:
                continue
            jobs, statuses, natives, counts = (list(column) for column in zip(*part, strict=True))
            self._db.execute(
                "UPDATE jobs SET status = u.status, native_status = u.native, updated = %s,"
                " transitions = jobs.transitions + u.n"
                " FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::int[]) AS u(id, status,"
                " native, n) WHERE jobs.id = u.id",
                [now, jobs, statuses, natives, counts],
            )

    def _reconnect_if_lost(self) -> None:
        """A new connection if the server dropped ours (it restarted, the network blinked):
        `StoreUnwritable` while it cannot be had, so that the writer waits and retries."""
        if self._db.broken or self._db.closed:
            try:
                self._db = self._connect()
            except StoreError as e:
                raise StoreUnwritable(self.where, e.problem) from None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        if self.read_only:
            raise StoreError(self.where, "opened read only: nothing can be written through it")
        if self._depth:
            yield
            return
        self._reconnect_if_lost()
        self._depth = 1
        try:
            with self._db.transaction():
                self._db.execute("SELECT pg_advisory_xact_lock(%s, %s)", self._lock_key)
                yield
        except psycopg.OperationalError as e:
            if isinstance(e, psycopg.errors.QueryCanceled):
                raise  # interrupted on purpose: the caller was cancelled
            raise StoreUnwritable(self.where, f"cannot write: {hidden(self._url, e)}") from None
        finally:
            self._depth = 0
