"""What every job store does the same way, whatever database holds it: the job table, the
append-only journal, compare-and-set transitions, batches in one transaction, masters
re-derived from their subjobs, one active job per backend id.

A store kind supplies the connection: how a statement runs (`_execute`, `_executemany`,
with `?` placeholders), what one write transaction is (`_transaction`, which holds the
store's one write lock, so that a compare-and-set read and its write see no other writer),
and which of its errors is a subjob's unknown parent (`_foreign_key_errors`).

Job ids and journal seqs are given by the store itself, each the highest one plus one, under
the write lock: so they have no gaps, a caller can name a subjob's parent by its future id,
and a reader following the journal by seq never sees a later seq commit before an earlier one.
"""

from __future__ import annotations

import abc
import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Protocol

from .._errors import DuplicateJob, StaleTransition, UnknownJob
from .._status import ACTIVE, IllegalTransition, Status, can_transition, master_status
from ._records import (
    JOB_COLUMNS,
    JobRecord,
    JournalEntry,
    NewJob,
    Outcome,
    StoreStatistics,
    Transition,
    job_record,
    judge,
)

#: A backend id is held by one active job at a time, whoever writes: a finished run may share
#: it (Ganga's resubmit of a Local job reuses its id), two watched runs may not.
ACTIVE_VALUES = tuple(s.value for s in sorted(ACTIVE))
ACTIVE_ID_INDEX = (
    "CREATE UNIQUE INDEX jobs_active_backend_id ON jobs(backend, backend_id) WHERE status IN ("
    + ", ".join(f"'{value}'" for value in ACTIVE_VALUES)
    + ")"
)


def schema(*, key: str, real: str) -> list[str]:
    """The statements that make a store's tables, with the database's names for an integer
    key and a double."""
    return [
        f"""CREATE TABLE jobs (
            id            {key} PRIMARY KEY,
            parent        {key} REFERENCES jobs(id),
            backend       TEXT NOT NULL,
            backend_id    TEXT,
            status        TEXT NOT NULL,
            native_status TEXT,
            created       {real} NOT NULL,
            updated       {real} NOT NULL,
            transitions   INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX jobs_by_status ON jobs(status, backend)",
        "CREATE INDEX jobs_by_parent ON jobs(parent, status)",
        "CREATE INDEX jobs_by_backend_id ON jobs(backend, backend_id)",
        ACTIVE_ID_INDEX,
        f"""CREATE TABLE journal (
            seq           {key} PRIMARY KEY,
            job           {key} NOT NULL REFERENCES jobs(id),
            old           TEXT,
            new           TEXT NOT NULL,
            native_status TEXT,
            reason        TEXT NOT NULL,
            time          {real} NOT NULL,
            details       TEXT
        )""",
        "CREATE INDEX journal_by_job ON journal(job, seq)",
    ]


#: Bound parameters per statement: SQLite's default limit is 999 on old builds.
IN_CHUNK = 900

#: job, old, new, native status, reason, time, details
JournalRow = tuple[int, str | None, str, str | None, str, float, str | None]
#: job, status, native status, how many transitions
JobChange = tuple[int, str, str | None, int]


class Rows(Protocol):
    """What a statement gives back: rows, one by one or all at once."""

    def __iter__(self) -> Iterator[Any]: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


def _key(job: NewJob) -> tuple[str, str | None]:
    return (job.backend, job.backend_id)


class JobStore(abc.ABC):
    """A gangamon job store. Not thread-safe: one caller at a time.

    `where` names it in messages (a path, or a URL without its password); `read_only`
    stores refuse every write.
    """

    where: str
    read_only: bool

    def __init__(self, *, clock: Callable[[], float], read_only: bool) -> None:
        self.read_only = read_only
        self._clock = clock
        self._batches = self._applied = self._unchanged = self._refused = 0
        self._last_batch_seconds = 0.0

    # -- what a kind of store supplies ------------------------------------------------------

    _foreign_key_errors: ClassVar[tuple[type[Exception], ...]]

    @abc.abstractmethod
    def _execute(self, sql: str, args: Sequence[object] = ()) -> Rows: ...

    @abc.abstractmethod
    def _executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None: ...

    @abc.abstractmethod
    def _transaction(self) -> contextlib.AbstractContextManager[None]:
        """One write transaction under the store's write lock (or a part of the one open);
        `StoreUnwritable` when the database refuses it for now (nothing of it is written)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def interrupt(self) -> None:
        """Abort the statement running in another thread; its transaction rolls back.

        The one method that may be called from another thread while a call is in progress.
        """

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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
            for i in range(0, len(ids), IN_CHUNK):
                chunk = ids[i : i + IN_CHUNK]
                marks = ", ".join("?" * len(chunk))
                sql = (
                    f"SELECT backend_id, id FROM jobs WHERE backend = ? AND backend_id IN ({marks})"
                )
                for backend_id, job in self._execute(sql, [backend, *chunk]):
                    found.setdefault((backend, backend_id), []).append(job)
        return found

    def _insert(self, jobs: Sequence[NewJob]) -> list[int]:
        now = self._clock()
        first = self._scalar("SELECT coalesce(max(id), 0) FROM jobs") + 1
        ids = list(range(first, first + len(jobs)))
        for job_id, job in zip(ids, jobs, strict=True):
            try:
                # A second active holder of a backend id meets the unique index: DO NOTHING
                # keeps the transaction usable (PostgreSQL would abort it) to name the holder.
                inserted = self._execute(
                    "INSERT INTO jobs (id, parent, backend, backend_id, status, native_status,"
                    " created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING RETURNING id",
                    (job_id, job.parent, job.backend, job.backend_id, job.status.value,
                     job.native_status, now, now),
                ).fetchall()  # fmt: skip
            except self._foreign_key_errors:
                raise UnknownJob(job.parent) from None
            if not inserted:
                holders = self._holders_of(job.backend, job.backend_id)
                holder = next(j for j, status in holders if status in ACTIVE)
                raise DuplicateJob(job.backend, str(job.backend_id), holder)
        self._append_journal(
            [(i, None, j.status.value, j.native_status, "added", now, None)
             for i, j in zip(ids, jobs, strict=True)]
        )  # fmt: skip
        self._update_masters({j.parent for j in jobs if j.parent is not None}, now)
        return ids

    def _append_journal(self, rows: Sequence[JournalRow]) -> None:
        """Journal `rows` (job, old, new, native status, reason, time, details), in order."""
        if not rows:
            return
        first = self.last_seq() + 1
        self._insert_journal([(seq, *row) for seq, row in enumerate(rows, start=first)])

    def _insert_journal(self, rows: Sequence[tuple[int, *JournalRow]]) -> None:
        """Insert journal rows (seq first)."""
        self._executemany(
            "INSERT INTO journal (seq, job, old, new, native_status, reason, time, details)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def _update_jobs(self, rows: Sequence[JobChange], now: float) -> None:
        """Set each job's (status, native status) at `now`, counting its transitions."""
        self._executemany(
            "UPDATE jobs SET status = ?, native_status = ?, updated = ?,"
            " transitions = transitions + ? WHERE id = ?",
            [(status, native, now, count, job) for job, status, native, count in rows],
        )

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
        journal: list[JournalRow] = []
        for t in batch:
            outcome = judge(t, current.get(t.job))
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
        if changed:
            self._update_jobs([(j, s.value, n, c) for j, (s, n, c) in changed.items()], now)
        self._append_journal(journal)
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
        (backend, backend_id) = self._execute(
            "SELECT backend, backend_id FROM jobs WHERE id = ?", (job,)
        ).fetchone()
        for other, status in self._holders_of(backend, backend_id):
            if other != job and (current[other][0] if other in current else status) in ACTIVE:
                return other
        return None

    def _holders_of(self, backend: str, backend_id: str | None) -> list[tuple[int, Status]]:
        """(job, status) of every job holding `backend_id` on `backend`."""
        rows = self._execute(
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
        for parent in sorted(parents):
            statuses = [
                Status(s)
                for (s,) in self._execute(
                    "SELECT DISTINCT status FROM jobs WHERE parent = ?", (parent,)
                )
            ]
            old = self.get(parent).status
            new = master_status(statuses)
            # An illegal derived move (say killed -> running) leaves the master as it is,
            # as Ganga's updateStatus would refuse it; its subjobs still tell the truth. So
            # does a move back to active under a backend id another active job holds.
            if new != old and can_transition(old, new) and not self._held(parent, old, new, {}):
                self._execute(
                    "UPDATE jobs SET status = ?, updated = ?, transitions = transitions + 1"
                    " WHERE id = ?",
                    (new.value, now, parent),
                )
                self._append_journal([(parent, old.value, new.value, None, "subjobs", now, None)])

    # -- reading -------------------------------------------------------------------------

    def get(self, job: int) -> JobRecord:
        row = self._execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job,)).fetchone()
        if row is None:
            raise UnknownJob(job)
        return job_record(row)

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
            if not wanted:
                return []
            where.append(f"status IN ({', '.join('?' * len(wanted))})")
            args.extend(wanted)
        if parent is not None:
            where.append("parent = ?")
            args.append(parent)
        sql = f"SELECT {JOB_COLUMNS} FROM jobs WHERE " + " AND ".join(where)
        return [job_record(r) for r in self._execute(sql + " ORDER BY id", args)]

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
        return [(b, Status(s), n) for b, s, n in self._execute(sql)]

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
            for seq, j, old, new, nat, why, t, details in self._execute(sql + " ORDER BY seq", args)
        ]

    def last_seq(self) -> int:
        return self._scalar("SELECT coalesce(max(seq), 0) FROM journal")

    def statistics(self) -> StoreStatistics:
        return StoreStatistics(
            self._batches, self._applied, self._unchanged, self._refused, self._last_batch_seconds
        )

    # -- helpers -------------------------------------------------------------------------

    def _statuses(self, jobs: set[int]) -> dict[int, tuple[Status, str | None, int | None]]:
        found: dict[int, tuple[Status, str | None, int | None]] = {}
        ordered = sorted(jobs)
        for i in range(0, len(ordered), IN_CHUNK):
            chunk = ordered[i : i + IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            for job, status, native, parent in self._execute(
                f"SELECT id, status, native_status, parent FROM jobs WHERE id IN ({marks})", chunk
            ):
                found[job] = (Status(status), native, parent)
        return found

    def _scalar(self, sql: str, *args: object) -> int:
        value = self._execute(sql, args).fetchone()[0]
        assert isinstance(value, int), (sql, value)
        return value
