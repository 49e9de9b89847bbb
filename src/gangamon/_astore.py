"""The job store for trio code: every call runs in a worker thread, one at a time.

A store call is never abandoned half-way: on cancellation the running SQL statement is
interrupted (its transaction rolls back whole) and we wait for the thread to let go of the
connection before `Cancelled` propagates. So a cancelled write either committed entirely or
left no trace, and the next call finds the connection free.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import TypeVar

import trio

from ._status import Status
from ._store import (
    JobRecord,
    JobStore,
    JournalEntry,
    NewJob,
    Outcome,
    StoreStatistics,
    Transition,
)

T = TypeVar("T")


class AsyncStore:
    """Async face of a store (SQLite or PostgreSQL). Owns the store: use the store only
    through this object."""

    def __init__(self, store: JobStore, *, in_thread: bool = True) -> None:
        """`in_thread=False` runs each call on the event loop itself, blocking it for the
        call's duration: right for virtual-time tests (a thread blocked under MockClock's
        autojump makes the clock jump) and nothing else."""
        self.store = store
        self._in_thread = in_thread
        # Serialises callers; the thread limiter is private so that after a cancel we can
        # wait for *our* abandoned thread alone to release it.
        self._lock = trio.Lock()
        self._thread = trio.CapacityLimiter(1)

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        if not self._in_thread:
            await trio.lowlevel.checkpoint()
            return fn(*args)
        async with self._lock:
            try:
                return await trio.to_thread.run_sync(
                    fn, *args, limiter=self._thread, abandon_on_cancel=True
                )
            except trio.Cancelled:
                self.store.interrupt()
                with trio.CancelScope(shield=True):
                    async with self._thread:  # released only when the thread has finished
                        pass
                raise

    async def add_jobs(self, jobs: Sequence[NewJob], *, superseding: bool = False) -> list[int]:
        """See `Store.add_jobs`. Cancelled: either all the jobs were added or none."""
        return await self._call(partial(self.store.add_jobs, jobs, superseding=superseding))

    async def apply(self, batch: Sequence[Transition]) -> list[Outcome]:
        """See `Store.apply`. Cancelled: either the whole batch committed or none of it."""
        return await self._call(self.store.apply, batch)

    async def get(self, job: int) -> JobRecord:
        return await self._call(self.store.get, job)

    async def jobs(
        self,
        *,
        backend: str | None = None,
        statuses: Iterable[Status] | None = None,
        parent: int | None = None,
        after: int = 0,
    ) -> list[JobRecord]:
        def query() -> list[JobRecord]:
            return self.store.jobs(backend=backend, statuses=statuses, parent=parent, after=after)

        return await self._call(query)

    async def active_jobs(self, backend: str | None = None) -> list[JobRecord]:
        return await self._call(self.store.active_jobs, backend)

    async def counts(self) -> list[tuple[str, Status, int]]:
        return await self._call(self.store.counts)

    async def journal(self, *, after: int = 0, job: int | None = None) -> list[JournalEntry]:
        def query() -> list[JournalEntry]:
            return self.store.journal(after=after, job=job)

        return await self._call(query)

    async def last_seq(self) -> int:
        return await self._call(self.store.last_seq)

    async def aclose(self) -> None:
        """Close the store once any running call has finished. Shielded from cancellation."""
        with trio.CancelScope(shield=True):
            await self._call(self.store.close)

    def statistics(self) -> StoreStatistics:
        return self.store.statistics()
