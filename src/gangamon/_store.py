"""The durable job store: one SQLite file in WAL mode, a job table and a transition journal.

Every status change is a compare-and-set: it applies only if the stored status is still the one
the caller expected and Ganga's graph allows the move, and it is written together with its
journal row in one transaction. A batch commits in one transaction. Job creation is journaled
too (old status NULL), so replaying the journal reproduces the job table exactly.

This module is synchronous; `gangamon._astore.AsyncStore` is the face trio code uses.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import DuplicateJob, StaleTransition, StoreError, StoreUnwritable, UnknownJob
from ._status import ACTIVE, IllegalTransition, Status, can_transition, master_status

SCHEMA_VERSION = 4
#: PRAGMA application_id of a gangamon store: "ggmn" in ASCII. Tells our files from others.
APPLICATION_ID = 0x67676D6E

_SCHEMA = """
CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY,
    parent        INTEGER REFERENCES jobs(id),
    backend       TEXT NOT NULL,
    backend_id    TEXT,
    status        TEXT NOT NULL,
    native_status TEXT,
    created       REAL NOT NULL,
    updated       REAL NOT NULL,
    transitions   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_by_status ON jobs(status, backend);
CREATE INDEX jobs_by_parent ON jobs(parent, status);
CREATE INDEX jobs_by_backend_id ON jobs(backend, backend_id);
{ACTIVE_ID_INDEX};
CREATE TABLE journal (
    seq           INTEGER PRIMARY KEY,
    job           INTEGER NOT NULL REFERENCES jobs(id),
    old           TEXT,
    new           TEXT NOT NULL,
    native_status TEXT,
    reason        TEXT NOT NULL,
    time          REAL NOT NULL,
    details       TEXT
);
CREATE INDEX journal_by_job ON journal(job, seq);
"""

#: A backend id is held by one active job at a time, whoever writes: a finished run may share
#: it (Ganga's resubmit of a Local job reuses its id), two watched runs may not.
_ACTIVE_VALUES = tuple(s.value for s in sorted(ACTIVE))
_ACTIVE_ID_INDEX = (
    "CREATE UNIQUE INDEX jobs_active_backend_id ON jobs(backend, backend_id) WHERE status IN ("
    + ", ".join(f"'{value}'" for value in _ACTIVE_VALUES)
    + ")"
)
_SCHEMA = _SCHEMA.replace("{ACTIVE_ID_INDEX}", _ACTIVE_ID_INDEX)

# SQLite's default limit on bound parameters is 999 on old builds; stay under it.
_IN_CHUNK = 900


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to register. `status` is where it starts: `submitted` for a job already on a grid."""

    backend: str
    backend_id: str | None = None
    status: Status = Status.NEW
    parent: int | None = None
    native_status: str | None = None


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: int
    parent: int | None
    backend: str
    backend_id: str | None
    status: Status
    native_status: str | None
    created: float
    updated: float
    transitions: int


@dataclass(frozen=True, slots=True)
class Transition:
    """Move `job` from `expected` to `new`, if it is still in `expected`."""

    job: int
    expected: Status
    new: Status
    native_status: str | None = None
    reason: str = ""
    #: What the backend knows of the job besides its status (site, times, output data...),
    #: kept in the journal as JSON.
    details: Mapping[str, object] | None = None


class Outcome(enum.Enum):
    APPLIED = "applied"
    #: Same status and same native status: nothing to write (Ganga would rerun hooks here).
    UNCHANGED = "unchanged"
    #: The stored status is no longer the expected one.
    STALE = "stale"
    #: Ganga's graph forbids the move.
    ILLEGAL = "illegal"
    #: A move back to an active status under a backend id another active job holds.
    HELD = "backend id held by another active job"
    UNKNOWN_JOB = "unknown job"


@dataclass(frozen=True, slots=True)
class JournalEntry:
    seq: int
    job: int
    old: Status | None
    new: Status
    native_status: str | None
    reason: str
    time: float
    details: Mapping[str, object] | None = None


@dataclass(frozen=True, slots=True)
class StoreStatistics:
    batches: int
    applied: int
    unchanged: int
    refused: int
    last_batch_seconds: float


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


def _key(job: NewJob) -> tuple[str, str | None]:
    return (job.backend, job.backend_id)


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


class Store:
    """A gangamon job store in one SQLite file. Not thread-safe: one caller at a time.

    Opening creates the file and its schema if the file is new or empty; a file of another
    application, of a newer gangamon, or not an SQLite database raises `StoreError`.
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
        self.path = Path(path)
        self.read_only = read_only
        self._clock = clock
        self._batches = self._applied = self._unchanged = self._refused = 0
        self._last_batch_seconds = 0.0
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
                        for statement in _SCHEMA.split(";"):
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
                self._db.execute(_ACTIVE_ID_INDEX)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _retire_second_holders(self) -> None:
        """Before schema 4, concurrent adds could store an active backend id twice: all but
        the first job holding it become `unknown`, with the holder named in the journal."""
        marks = ", ".join("?" * len(_ACTIVE_VALUES))
        seconds = self._db.execute(
            f"SELECT later.id, later.status, min(first.id) FROM jobs AS later JOIN jobs AS first"
            f" ON first.backend = later.backend AND first.backend_id = later.backend_id"
            f" AND first.id < later.id AND first.status IN ({marks})"
            f" WHERE later.status IN ({marks}) GROUP BY later.id",
            _ACTIVE_VALUES * 2,
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

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def interrupt(self) -> None:
        """Abort the SQL statement running in another thread; its transaction rolls back.

        The one method that may be called from another thread while a call is in progress.
        """
        self._db.interrupt()

    # -- writing -------------------------------------------------------------------------

    def add_jobs(self, jobs: Sequence[NewJob], *, superseding: bool = False) -> list[int]:
        """Register jobs in one transaction; return their ids in order.

        A subjob names an existing parent, or one earlier in `jobs` by its future id. The
        parents' statuses are derived from their subjobs afterwards. A backend id may be
        held by several jobs (a new run under the same id, as Ganga's resubmit of a Local
        job makes), but by one active job at a time: an active job already holding it
        raises `DuplicateJob`, and nothing is added; or, `superseding`, becomes `unknown`,
        its run replaced by the new one. `add_new_jobs` adds only ids the store has never
        held.
        """
        with self._transaction():
            if superseding:
                self._supersede(jobs)
            return self._insert(jobs)

    def _supersede(self, jobs: Sequence[NewJob]) -> None:
        """The active holders of the active jobs' backend ids become `unknown`."""
        keys = {_key(j) for j in jobs if j.status in ACTIVE and j.backend_id is not None}
        if not keys:
            return
        held = self._holders(keys)
        current = self._statuses({job for jobs in held.values() for job in jobs})
        self._write(
            [
                Transition(
                    job,
                    status,
                    Status.UNKNOWN,
                    native,
                    reason="superseded: a new run under its backend id",
                )
                for job, (status, native, _) in current.items()
                if status in ACTIVE
            ],
            self._clock(),
        )

    def add_new_jobs(self, jobs: Sequence[NewJob]) -> tuple[list[int], int]:
        """Register the jobs whose backend id the store has never held (in any status), in
        one transaction with that check, so that each is stored once however many processes
        add it at once; (their ids, how many were left out, repeats in `jobs` included)."""
        with self._transaction():
            seen: set[tuple[str, str | None]] = set(self._holders({_key(j) for j in jobs}))
            new: list[NewJob] = []
            for job in jobs:
                if job.backend_id is None or _key(job) not in seen:
                    seen.add(_key(job))
                    new.append(job)
            return self._insert(new), len(jobs) - len(new)

    def _holders(self, named: set[tuple[str, str | None]]) -> dict[tuple[str, str], list[int]]:
        """The jobs holding the (backend, backend id) pairs, in any status."""
        found: dict[tuple[str, str], list[int]] = {}
        by_backend: dict[str, list[str]] = {}
        for backend, backend_id in named:
            if backend_id is not None:
                by_backend.setdefault(backend, []).append(backend_id)
        for backend, ids in by_backend.items():
            for i in range(0, len(ids), _IN_CHUNK):
                chunk = ids[i : i + _IN_CHUNK]
                marks = ", ".join("?" * len(chunk))
                sql = (
                    f"SELECT backend_id, id FROM jobs WHERE backend = ? AND backend_id IN ({marks})"
                )
                for backend_id, job in self._db.execute(sql, [backend, *chunk]):
                    found.setdefault((backend, backend_id), []).append(job)
        return found

    def _insert(self, jobs: Sequence[NewJob]) -> list[int]:
        now = self._clock()
        ids: list[int] = []
        for job in jobs:
            try:
                cursor = self._db.execute(
                    "INSERT INTO jobs (parent, backend, backend_id, status, native_status,"
                    " created, updated) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        job.parent,
                        job.backend,
                        job.backend_id,
                        job.status.value,
                        job.native_status,
                        now,
                        now,
                    ),
                )
            except sqlite3.IntegrityError as e:
                if "UNIQUE" not in (e.sqlite_errorname or ""):
                    raise UnknownJob(job.parent) from None
                holders = self._holders_of(job.backend, job.backend_id)
                holder = next(j for j, status in holders if status in ACTIVE)
                raise DuplicateJob(job.backend, str(job.backend_id), holder) from None

            assert cursor.lastrowid is not None
            ids.append(cursor.lastrowid)
        self._db.executemany(
            "INSERT INTO journal (job, old, new, native_status, reason, time)"
            " VALUES (?, NULL, ?, ?, 'added', ?)",
            [(i, j.status.value, j.native_status, now) for i, j in zip(ids, jobs, strict=True)],
        )
        self._update_masters({j.parent for j in jobs if j.parent is not None}, now)
        return ids

    def apply(self, batch: Sequence[Transition]) -> list[Outcome]:
        """Apply compare-and-set transitions in one transaction; one outcome per transition.

        Transitions of the same job apply in order, each against the status the previous one
        left. Refused transitions write nothing. Masters of changed subjobs are re-derived.
        """
        started = time.perf_counter()
        with self._transaction():
            outcomes = self._write(batch, self._clock())
        self._batches += 1
        self._applied += outcomes.count(Outcome.APPLIED)
        self._unchanged += outcomes.count(Outcome.UNCHANGED)
        self._refused += (
            len(outcomes) - outcomes.count(Outcome.APPLIED) - outcomes.count(Outcome.UNCHANGED)
        )
        self._last_batch_seconds = time.perf_counter() - started
        return outcomes

    def _write(self, batch: Sequence[Transition], now: float) -> list[Outcome]:
        """`apply` inside a transaction already open."""
        outcomes: list[Outcome] = []
        current = self._statuses({t.job for t in batch})
        changed: dict[int, tuple[Status, str | None, int]] = {}
        journal: list[tuple[int, str, str, str | None, str, float, str | None]] = []
        for t in batch:
            outcome = _judge(t, current.get(t.job))
            if outcome is Outcome.APPLIED and self._held(t.job, current[t.job][0], t.new, current):
                outcome = Outcome.HELD
            outcomes.append(outcome)
            if outcome is not Outcome.APPLIED:
                continue
            old, _, parent = current[t.job]
            current[t.job] = (t.new, t.native_status, parent)
            count = changed[t.job][2] + 1 if t.job in changed else 1
            changed[t.job] = (t.new, t.native_status, count)
            details = None if t.details is None else json.dumps(t.details)
            journal.append((t.job, old.value, t.new.value, t.native_status, t.reason, now, details))
        self._db.executemany(
            "UPDATE jobs SET status = ?, native_status = ?, updated = ?,"
            " transitions = transitions + ? WHERE id = ?",
            [(s.value, n, now, c, job) for job, (s, n, c) in changed.items()],
        )
        self._db.executemany(
            "INSERT INTO journal (job, old, new, native_status, reason, time, details)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            journal,
        )
        parents = {current[job][2] for job in changed}
        self._update_masters({p for p in parents if p is not None}, now)
        return outcomes

    def _held(
        self,
        job: int,
        old: Status,
        new: Status,
        current: Mapping[int, tuple[Status, str | None, int | None]],
    ) -> bool:
        """Whether moving `job` from `old` to `new` brings it back to an active status under a
        backend id another active job holds (`current`: as in `_active_holder`)."""
        revives = new in ACTIVE and old not in ACTIVE
        return revives and self._active_holder(job, current) is not None

    def _active_holder(
        self, job: int, current: Mapping[int, tuple[Status, str | None, int | None]]
    ) -> int | None:
        """Another job holding `job`'s backend id in an active status, as the store holds it
        with the batch's moves so far (`current`) applied, if any."""
        (backend, backend_id) = self._db.execute(
            "SELECT backend, backend_id FROM jobs WHERE id = ?", (job,)
        ).fetchone()
        for other, status in self._holders_of(backend, backend_id):
            if other != job and (current[other][0] if other in current else status) in ACTIVE:
                return other
        return None

    def _holders_of(self, backend: str, backend_id: str | None) -> list[tuple[int, Status]]:
        """(job, status) of every job holding `backend_id` on `backend`."""
        rows = self._db.execute(
            "SELECT id, status FROM jobs WHERE backend = ? AND backend_id = ?",
            (backend, backend_id),
        )
        return [(job, Status(status)) for job, status in rows]

    def transition(self, t: Transition) -> Outcome:
        """Apply one transition, raising the typed error of a refused one.

        Raises `UnknownJob`, `StaleTransition`, `IllegalTransition` or `DuplicateJob` (a move
        back to an active status under a backend id another active job holds); nothing is
        written then.
        Returns `APPLIED` or `UNCHANGED`.
        """
        outcome = self.apply([t])[0]
        if outcome is Outcome.UNKNOWN_JOB:
            raise UnknownJob(t.job)
        if outcome is Outcome.STALE:
            raise StaleTransition(t.job, t.expected.value, self.get(t.job).status.value)
        if outcome is Outcome.ILLEGAL:
            raise IllegalTransition(t.job, t.expected, t.new)
        if outcome is Outcome.HELD:
            record = self.get(t.job)
            holder = self._active_holder(t.job, {})
            raise DuplicateJob(record.backend, str(record.backend_id), holder or 0)
        return outcome

    def _update_masters(self, parents: Iterable[int], now: float) -> None:
        for parent in parents:
            statuses = [
                Status(s)
                for (s,) in self._db.execute(
                    "SELECT DISTINCT status FROM jobs WHERE parent = ?", (parent,)
                )
            ]
            old = self.get(parent).status
            new = master_status(statuses)
            # An illegal derived move (say killed -> running) leaves the master as it is,
            # as Ganga's updateStatus would refuse it; its subjobs still tell the truth. So
            # does a move back to active under a backend id another active job holds.
            if new != old and can_transition(old, new) and not self._held(parent, old, new, {}):
                self._db.execute(
                    "UPDATE jobs SET status = ?, updated = ?, transitions = transitions + 1"
                    " WHERE id = ?",
                    (new.value, now, parent),
                )
                self._db.execute(
                    "INSERT INTO journal (job, old, new, native_status, reason, time)"
                    " VALUES (?, ?, ?, NULL, 'subjobs', ?)",
                    (parent, old.value, new.value, now),
                )

    # -- reading -------------------------------------------------------------------------

    def get(self, job: int) -> JobRecord:
        row = self._db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job,)).fetchone()
        if row is None:
            raise UnknownJob(job)
        return _job_record(row)

    def jobs(
        self,
        *,
        backend: str | None = None,
        statuses: Iterable[Status] | None = None,
        parent: int | None = None,
        after: int = 0,
        backend_id: str | None = None,
    ) -> list[JobRecord]:
        """Jobs matching every filter given, with ids above `after`, in id order."""
        where: list[str] = ["id > ?"]
        args: list[object] = [after]
        if backend is not None:
            where.append("backend = ?")
            args.append(backend)
        if backend_id is not None:
            where.append("backend_id = ?")
            args.append(backend_id)
        if statuses is not None:
            wanted = [s.value for s in statuses]
            where.append(f"status IN ({', '.join('?' * len(wanted))})")
            args.extend(wanted)
        if parent is not None:
            where.append("parent = ?")
            args.append(parent)
        sql = f"SELECT {_JOB_COLUMNS} FROM jobs WHERE " + " AND ".join(where)
        return [_job_record(r) for r in self._db.execute(sql + " ORDER BY id", args)]

    def active_jobs(self, backend: str | None = None) -> list[JobRecord]:
        """Jobs a backend still has to report on: submitting, submitted, running, completing."""
        return self.jobs(backend=backend, statuses=ACTIVE)

    def count_by_status(self, backend: str | None = None) -> dict[Status, int]:
        """Jobs per status, of one backend or of all."""
        totals: dict[Status, int] = {}
        for name, status, n in self.counts():
            if backend is None or name == backend:
                totals[status] = totals.get(status, 0) + n
        return totals

    def counts(self) -> list[tuple[str, Status, int]]:
        """(backend, status, number of jobs) for every pair that has jobs."""
        sql = "SELECT backend, status, count(*) FROM jobs GROUP BY backend, status"
        return [(b, Status(s), n) for b, s, n in self._db.execute(sql)]

    def journal(self, *, after: int = 0, job: int | None = None) -> list[JournalEntry]:
        """Journal entries with seq > `after` (of one job, if given), in seq order."""
        sql = (
            "SELECT seq, job, old, new, native_status, reason, time, details"
            " FROM journal WHERE seq > ?"
        )
        args: list[int] = [after]
        if job is not None:
            sql += " AND job = ?"
            args.append(job)
        return [
            JournalEntry(
                seq,
                j,
                None if old is None else Status(old),
                Status(new),
                nat,
                why,
                t,
                None if details is None else json.loads(details),
            )
            for seq, j, old, new, nat, why, t, details in self._db.execute(
                sql + " ORDER BY seq", args
            )
        ]

    def last_seq(self) -> int:
        return int(self._scalar("SELECT coalesce(max(seq), 0) FROM journal"))

    def statistics(self) -> StoreStatistics:
        return StoreStatistics(
            self._batches, self._applied, self._unchanged, self._refused, self._last_batch_seconds
        )

    # -- helpers -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction (or a part of the one open). `StoreUnwritable` when the file
        system refuses it (nothing of it is written)."""
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

    def _statuses(self, jobs: set[int]) -> dict[int, tuple[Status, str | None, int | None]]:
        found: dict[int, tuple[Status, str | None, int | None]] = {}
        ordered = sorted(jobs)
        for i in range(0, len(ordered), _IN_CHUNK):
            chunk = ordered[i : i + _IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            for job, status, native, parent in self._db.execute(
                f"SELECT id, status, native_status, parent FROM jobs WHERE id IN ({marks})", chunk
            ):
                found[job] = (Status(status), native, parent)
        return found

    def _scalar(self, sql: str, *args: object) -> int:
        value = self._db.execute(sql, args).fetchone()[0]
        assert isinstance(value, int), (sql, value)
        return value


_JOB_COLUMNS = (
    "id, parent, backend, backend_id, status, native_status, created, updated, transitions"
)


def _job_record(row: tuple[Any, ...]) -> JobRecord:
    job, parent, backend, backend_id, status, native, created, updated, transitions = row
    return JobRecord(
        job, parent, backend, backend_id, Status(status), native, created, updated, transitions
    )


def _judge(t: Transition, current: tuple[Status, str | None, int | None] | None) -> Outcome:
    if current is None:
        return Outcome.UNKNOWN_JOB
    status, native, _ = current
    if status != t.expected:
        return Outcome.STALE
    if t.new == status and t.native_status == native:
        return Outcome.UNCHANGED
    if not can_transition(status, t.new):
        return Outcome.ILLEGAL
    return Outcome.APPLIED
