"""The tasks a backend runs per job: a watch for each job of a backend that pushes changes;
for a backend that finalises, its completing jobs' finalisations (with retries and backoff).

A finalisation waiting for its turn, or for its next try, is a small record in a queue, not
a task: when thousands of jobs end at once (after an outage, most of them failing their
first try), a task each (its coroutines, a `WouldBlock` and its traceback held while it
waited in the limiter) held about 3.5 KB per job, 25 MB of the soak's 20,000 jobs, and
the allocator kept that peak after the queue had drained. Only the tries running now are
tasks, at most `finalise_concurrency` of them.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math

import trio

from ._backoff import backoff
from ._outbox import Outbox, Report
from ._status import Status
from ._sweeper import describe
from .backends._protocol import Backend, BackendError, JobRef, Update

log = logging.getLogger("gangamon.backend")

#: Attempts at a finalisation that fails on anything but a transient error.
FINALISE_ATTEMPTS = 5
#: The longest wait between two attempts.
FINALISE_MAX_DELAY = 600.0
#: How the reason of a job failed by its finalisation begins.
FINALISATION_FAILED = "finalisation failed"
#: Failures that may pass: the connection, DIRAC's side, our credentials (being renewed).
TRANSIENT: tuple[type[BaseException], ...] = (BackendError, OSError)


class _Finalisation:
    """One completing job's finalisation between its tries: what the retries need."""

    __slots__ = ("attempts", "due", "first_failure", "job")

    def __init__(self, job: JobRef) -> None:
        self.job = job
        self.attempts = 0
        self.first_failure: float | None = None
        #: When its next try is due, while it waits out a backoff.
        self.due: float | None = None


class JobTasks:
    """Per-job tasks of `backend`, started in the nursery `open` gives, reporting through
    `outbox`."""

    def __init__(self, backend: Backend, outbox: Outbox) -> None:
        self.backend = backend
        self.settings = backend.settings
        self.outbox = outbox
        self.counts = outbox.counts
        #: Held by each try of a finalisation: its tokens in use are the tries running.
        self.finalise_limiter = trio.CapacityLimiter(self.settings.finalise_concurrency)
        self._watches: dict[int, trio.CancelScope] = {}
        #: Every finalisation not yet reported: waiting, running or waiting to retry.
        self._finalisations: dict[int, _Finalisation] = {}
        #: The jobs whose finalisation may try now, first come first served (dict: ordered,
        #: and a cancelled job leaves it at once).
        self._ready: dict[int, None] = {}
        #: (when, order, job) of the tries waiting out their backoff; entries that are no
        #: longer a finalisation's `due` (cancelled, or dropped by `open(None)`) are skipped.
        self._later: list[tuple[float, int, int]] = []
        self._order = itertools.count()
        #: The tries running, by job.
        self._running: dict[int, trio.CancelScope] = {}
        self._dispatching = False
        self._wake = trio.Event()
        self._nursery: trio.Nursery | None = None

    def retrying(self) -> int:
        """How many finalisations wait out their backoff before another try."""
        return sum(f.due is not None for f in self._finalisations.values())

    def open(self, nursery: trio.Nursery | None) -> None:
        """Start tasks in `nursery` from now on; None: start none (the finalisations waiting
        are dropped: a restart starts them afresh from the table of tracked jobs)."""
        self._nursery = nursery
        if nursery is None:
            self._finalisations.clear()
            self._ready.clear()
            self._later.clear()
            self._wake.set()  # the dispatcher sees that it is closed

    def start(self, job: JobRef) -> None:
        """The task `job` needs in its status, unless it runs already: a finalisation for a
        completing job (queued for its turn), else a watch."""
        if self._nursery is None:
            return
        if job.status == Status.COMPLETING and self.backend.finalises:
            if job.id not in self._finalisations:
                self._finalisations[job.id] = _Finalisation(job)
                self._ready[job.id] = None
                self._kick()
        elif self.backend.watches and job.backend_id and job.id not in self._watches:
            self._watches[job.id] = scope = trio.CancelScope()
            self._nursery.start_soon(self._watch, job, scope)

    def cancel(self, job: int) -> None:
        """Cancel `job`'s task, if it has one, and forget its finalisation."""
        self._finalisations.pop(job, None)
        self._ready.pop(job, None)
        for tasks in (self._watches, self._running):
            scope = tasks.pop(job, None)
            if scope is not None:
                scope.cancel()

    def stop_watches(self) -> None:
        """Watches hold no call in flight: cancelled at a stop. Finalisers get the grace."""
        for scope in self._watches.values():
            scope.cancel()

    async def _watch(self, job: JobRef, scope: trio.CancelScope) -> None:
        """Forward the backend's pushed changes of `job`. A failing watch crashes the backend."""
        try:
            with scope:
                async for update in self.backend.watch(job):
                    await self.outbox.forward([update], {job.id}, trio.current_time())
        finally:
            if self._watches.get(job.id) is scope:
                del self._watches[job.id]

    # -- finalisations ---------------------------------------------------------------------

    def _kick(self) -> None:
        """Tell the dispatcher that there is something to do; start it if it is not running
        and there is work for it."""
        self._wake.set()
        if self._dispatching or self._nursery is None or not (self._ready or self._later):
            return
        self._dispatching = True
        self._nursery.start_soon(self._dispatch)

    async def _dispatch(self) -> None:
        """Start tries, `finalise_concurrency` at most at a time, while finalisations wait:
        the ready ones in order, the others when their backoff is over."""
        try:
            while self._nursery is not None and (self._ready or self._later):
                now = trio.current_time()
                while self._later and self._later[0][0] <= now:
                    due, _, job = heapq.heappop(self._later)
                    finalisation = self._finalisations.get(job)
                    if finalisation is not None and finalisation.due == due:
                        finalisation.due = None
                        self._ready[job] = None
                while self._ready and len(self._running) < self.settings.finalise_concurrency:
                    job = next(iter(self._ready))
                    del self._ready[job]
                    self._running[job] = scope = trio.CancelScope()
                    self._nursery.start_soon(self._try, self._finalisations[job], scope)
                if not (self._ready or self._later):
                    return  # a try that fails starts it again
                self._wake = trio.Event()
                # With jobs ready, for a try to end; else for the next backoff to pass.
                until = math.inf if self._ready else self._later[0][0]
                with trio.move_on_at(until):
                    await self._wake.wait()
        finally:
            self._dispatching = False

    async def _try(self, finalisation: _Finalisation, scope: trio.CancelScope) -> None:
        """One try of a finalisation; the report if it succeeded or was the last, else its
        next try scheduled."""
        job = finalisation.job.id
        try:
            with scope:
                update = await self._attempt(finalisation)
                if update is not None:
                    await self.outbox.put(
                        Report(self.backend.name, trio.current_time(), update, finalised=True)
                    )
                    if self._finalisations.get(job) is finalisation:
                        del self._finalisations[job]
        finally:
            if self._running.get(job) is scope:
                del self._running[job]
            self._kick()

    async def _attempt(self, finalisation: _Finalisation) -> Update | None:
        """One attempt. A transient failure (`TRANSIENT`, or the deadline) is retried for
        `finalise_retry_limit` seconds from the first one, any other failure
        `FINALISE_ATTEMPTS` times in all; then the job is failed with the last reason. The
        update to report, or None when the next try is scheduled."""
        job = finalisation.job
        deadline_s = self.settings.call_deadline
        finalisation.attempts += 1
        attempt = finalisation.attempts
        async with self.finalise_limiter:
            update: object = None  # a backend may return anything: checked below
            try:
                with trio.move_on_after(deadline_s) as deadline:
                    update = await self.backend.finalise(job)
            except Exception as exc:
                self.counts.errors += 1
                problem, transient = describe(exc), isinstance(exc, TRANSIENT)
            else:
                if deadline.cancelled_caught:
                    self.counts.timeouts += 1
                    problem, transient = f"finalise passed its {deadline_s} s deadline", True
                elif (
                    isinstance(update, Update)
                    and update.job == job.id
                    and update.status in (Status.COMPLETED, Status.FAILED)
                ):
                    self.counts.finalised += 1
                    return update
                else:
                    self.counts.garbage += 1
                    problem, transient = f"finalise returned {update!r}", False
        now = trio.current_time()
        if finalisation.first_failure is None:
            finalisation.first_failure = now
        retrying = now - finalisation.first_failure < self.settings.finalise_retry_limit
        if retrying if transient else attempt < FINALISE_ATTEMPTS:
            delay = backoff(attempt + 1, self.settings.restart_delay, FINALISE_MAX_DELAY)
            log.info(
                "backend %s: job %d: finalisation failed (%s); again in %.0f s",
                self.backend.name,
                job.id,
                problem,
                delay,
                extra={"backend": self.backend.name, "job": job.id},
            )
            finalisation.due = now + delay
            heapq.heappush(self._later, (finalisation.due, next(self._order), job.id))
            return None
        self.counts.finalise_failed += 1
        log.warning(
            "backend %s: job %d failed finalisation: %s",
            self.backend.name,
            job.id,
            problem,
            extra={"backend": self.backend.name, "job": job.id},
        )
        return Update(job.id, Status.FAILED, job.native_status, f"{FINALISATION_FAILED}: {problem}")
