"""The embedded job store: one SQLite file in WAL mode (see `_base` for what every store does).

SQLite's write lock is the store's: BEGIN IMMEDIATE takes it for the whole file, so a
compare-and-set read and its write happen under it. This module is synchronous;
`gangamon._astore.AsyncStore` is the face trio code uses.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import ClassVar

from .._errors import StoreError, StoreUnwritable
from .._status import Status
from ._base import ACTIVE_ID_INDEX, ACTIVE_VALUES, JobStore, schema
from ._filesystem import refuse_network_filesystem
from ._records import Transition

SCHEMA_VERSION = 4
#: PRAGMA application_id of a gangamon store: "ggmn" in ASCII. Tells our files from others.
APPLICATION_ID = 0x67676D6E

_SCHEMA = schema(key="INTEGER", real="REAL")


#: SQLite's primary result codes for a write the file system refuses for now.
_REFUSALS = frozenset({"SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_BUSY",
                       "SQLITE_LOCKED", "SQLITE_CANTOPEN"})  # fmt: skip


def _refused(error: sqlite3.OperationalError) -> bool:
    """Whether `error` is the file system's refusal (extended codes name their primary one
    first: SQLITE_IOERR_WRITE), not a mistake in what was asked."""
    name = getattr(error, "sqlite_errorname", "") or ""
    return any(name == code or name.startswith(code + "_") for code in _REFUSALS)


def _cause(path: Path, error: sqlite3.Error) -> str:
    """SQLite's `error` for `path`, with the reason when the file system says it: SQLite's
    own "unable to open database file" does not tell a read-only mount from a missing one."""
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        return f"{error} (read-only file system at {str(folder)!r})"
    if not os.access(folder, os.W_OK):
        return f"{error} (no permission to write in {str(folder)!r})"
    return str(error)


def _beside(path: Path, suffix: str) -> Path:
    """The file SQLite keeps beside the store `path` (its symlink's target, if one)."""
    real = path.resolve()
    return real.with_name(real.name + suffix)


def _check_readable(path: Path) -> None:
    """`StoreError` unless `path` is a regular file with something in it."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise StoreError(path, "no such file (gangamon track or gangamon run makes it)") from None
    except OSError as e:
        raise StoreError(path, f"cannot open: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(path, "not a regular file: not a gangamon store")
    if st.st_size == 0:
        raise StoreError(path, "empty: not a gangamon store yet (gangamon track or run makes it)")


class Store(JobStore):
    """A gangamon job store in one SQLite file. Not thread-safe: one caller at a time.

    Opening creates the file and its schema if the file is new or empty; a file of another
    application, of a newer gangamon, not an SQLite database, or on a network file system
    raises `StoreError`.
    `read_only` opens an existing store for reading and changes nothing on disk: not a
    schema, not a journal file; anything but a regular file holding a store is refused.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        clock: Callable[[], float] = time.time,
        read_only: bool = False,
    ) -> None:
        super().__init__(clock=clock, read_only=read_only)
        self.path = Path(path)
        self.where = str(self.path)
        refuse_network_filesystem(self.path)
        if read_only:
            _check_readable(self.path)
        target: str | Path = self.path
        if read_only:
            target = f"{self.path.resolve().as_uri()}?mode=ro"
            if not _beside(self.path, "-wal").exists():
                # Nobody has it open to write (a writer keeps its WAL file): read it as a
                # plain file, so that SQLite leaves no WAL and shared-memory files behind.
                target += "&immutable=1"
        try:
            # Autocommit mode: we issue BEGIN IMMEDIATE ourselves so a CAS read and its write
            # happen under one write lock. check_same_thread=False because AsyncStore runs us
            # in worker threads, one call at a time.
            self._db = sqlite3.connect(
                target,
                isolation_level=None,
                check_same_thread=False,
                timeout=30.0,
                uri=read_only,
            )
        except sqlite3.Error as e:
            raise StoreError(self.path, f"cannot open: {_cause(self.path, e)}") from None
        try:
            self._prepare()
        except BaseException:
            self._db.close()
            raise

    def _prepare(self) -> None:
        try:
            app_id = self._scalar("PRAGMA application_id")
            version = self._scalar("PRAGMA user_version")
            tables = self._scalar("SELECT count(*) FROM sqlite_master")
        except sqlite3.OperationalError as e:
            if _refused(e):  # SQLite opens lazily: a file it cannot open shows up here
                raise StoreError(self.path, f"cannot open: {_cause(self.path, e)}") from None
            raise StoreError(self.path, f"not a gangamon store ({e})") from None
        except sqlite3.DatabaseError as e:
            raise StoreError(self.path, f"not a gangamon store ({e})") from None
        if app_id != APPLICATION_ID and (tables or app_id):
            raise StoreError(
                self.path, f"not a gangamon store (application_id {app_id:#x}, {tables} objects)"
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                self.path,
                f"written by a newer gangamon (schema {version}, this one reads {SCHEMA_VERSION})",
            )
        if self.read_only:
            if app_id == 0:
                raise StoreError(self.path, "not a gangamon store (no schema)")
            if version < SCHEMA_VERSION:
                raise StoreError(
                    self.path,
                    f"written by an older gangamon (schema {version}); `gangamon run` upgrades it",
                )
            return
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a transition reported committed survives power loss, not just a crash.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            if app_id == 0:
                with self._transaction():
                    # Checked again under the write lock: another process may have won.
                    if self._scalar("PRAGMA application_id") == 0:
                        for statement in _SCHEMA:
                            self._db.execute(statement)
                        self._db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                # Into the file itself: a new store whose WAL file is lost is still a store.
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            elif version < SCHEMA_VERSION:
                self._migrate()
        except sqlite3.Error as e:
            raise StoreError(self.path, f"cannot write: {_cause(self.path, e)}") from None

    def _migrate(self) -> None:
        """Bring a store of an older schema up to this one, in one transaction."""
        with self._transaction():
            # Checked again under the write lock: another process may have migrated it.
            version = self._scalar("PRAGMA user_version")
            if version == 1:
                self._db.execute("ALTER TABLE journal ADD COLUMN details TEXT")
            if version in (1, 2):
                self._db.execute(
                    "CREATE INDEX IF NOT EXISTS jobs_by_backend_id ON jobs(backend, backend_id)"
                )
            if version in (1, 2, 3):
                self._retire_second_holders()
                self._db.execute(ACTIVE_ID_INDEX)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _retire_second_holders(self) -> None:
        """Before schema 4, concurrent adds could store an active backend id twice: all but
        the first job holding it become `unknown`, with the holder named in the journal."""
        marks = ", ".join("?" * len(ACTIVE_VALUES))
        seconds = self._db.execute(
            f"SELECT later.id, later.status, min(first.id) FROM jobs AS later JOIN jobs AS first"
            f" ON first.backend = later.backend AND first.backend_id = later.backend_id"
            f" AND first.id < later.id AND first.status IN ({marks})"
            f" WHERE later.status IN ({marks}) GROUP BY later.id",
            ACTIVE_VALUES * 2,
        ).fetchall()
        if seconds:
            self._write(
                [
                    Transition(
                        job,
                        Status(status),
                        Status.UNKNOWN,
                        reason=f"stored twice: job {first} holds its backend id",
                    )
                    for job, status, first in seconds
                ],
                self._clock(),
            )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def interrupt(self) -> None:
        self._db.interrupt()

    # -- the connection ------------------------------------------------------------------

    _foreign_key_errors: ClassVar[tuple[type[Exception], ...]] = (sqlite3.IntegrityError,)

    def _execute(self, sql: str, args: Sequence[object] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, args)

    def _executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        self._db.executemany(sql, rows)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        if self.read_only:
            raise StoreError(self.path, "opened read only: nothing can be written through it")
        try:
            if not self._db.in_transaction:
                self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            if self._db.in_transaction:
                self._db.execute("COMMIT")
        except sqlite3.OperationalError as e:
            if not _refused(e):
                raise  # a mistake in the SQL or the schema: retrying would not mend it
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StoreUnwritable(self.path, f"cannot write: {e}") from None
