"""The tasks a backend runs per job: a watch for each job of a backend that pushes changes,
a finaliser (with retries and backoff) for each completing job of one that finalises."""

from __future__ import annotations

import itertools
import logging

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


class JobTasks:
    """Per-job tasks of `backend`, started in the nursery `open` gives, reporting through
    `outbox`."""

    def __init__(self, backend: Backend, outbox: Outbox) -> None:
        self.backend = backend
        self.settings = backend.settings
        self.outbox = outbox
        self.counts = outbox.counts
        self.finalise_limiter = trio.CapacityLimiter(self.settings.finalise_concurrency)
        self._watches: dict[int, trio.CancelScope] = {}
        self._finalisers: dict[int, trio.CancelScope] = {}
        self._nursery: trio.Nursery | None = None

    def open(self, nursery: trio.Nursery | None) -> None:
        """Start tasks in `nursery` from now on; None: start none."""
        self._nursery = nursery

    def start(self, job: JobRef) -> None:
        """The task `job` needs in its status, unless it runs already: a finaliser for a
        completing job, else a watch."""
        if self._nursery is None:
            return
        if job.status == Status.COMPLETING and self.backend.finalises:
            if job.id not in self._finalisers:
                self._finalisers[job.id] = scope = trio.CancelScope()
                self._nursery.start_soon(self._finalise, job, scope)
        elif self.backend.watches and job.backend_id and job.id not in self._watches:
            self._watches[job.id] = scope = trio.CancelScope()
            self._nursery.start_soon(self._watch, job, scope)

    def cancel(self, job: int) -> None:
        """Cancel `job`'s task, if it has one."""
        for tasks in (self._watches, self._finalisers):
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

    async def _finalise(self, job: JobRef, scope: trio.CancelScope) -> None:
        """Finalise with retries and backoff; after the last failure the job is failed."""
        try:
            with scope:
                update = await self._finalise_attempts(job)
                await self.outbox.put(
                    Report(self.backend.name, trio.current_time(), update, finalised=True)
                )
        finally:
            if self._finalisers.get(job.id) is scope:
                del self._finalisers[job.id]

    async def _finalise_attempts(self, job: JobRef) -> Update:
        """Attempts until one succeeds. A transient failure (`TRANSIENT`, or the deadline) is
        retried for `finalise_retry_limit` seconds from the first one, any other failure
        `FINALISE_ATTEMPTS` times in all; then the job is failed with the last reason."""
        problem = ""
        deadline_s = self.settings.call_deadline
        first_failure: float | None = None
        for attempt in itertools.count(1):
            async with self.finalise_limiter:
                try:
                    with trio.move_on_after(deadline_s) as deadline:
                        update = await self.backend.finalise(job)
                except Exception as exc:
                    self.counts.errors += 1
                    problem, transient = describe(exc), isinstance(exc, TRANSIENT)
                else:
                    reply: object = update  # a backend may return anything: check it
                    if deadline.cancelled_caught:
                        self.counts.timeouts += 1
                        problem, transient = f"finalise passed its {deadline_s} s deadline", True
                    elif (
                        isinstance(reply, Update)
                        and reply.job == job.id
                        and reply.status in (Status.COMPLETED, Status.FAILED)
                    ):
                        self.counts.finalised += 1
                        return reply
                    else:
                        self.counts.garbage += 1
                        problem, transient = f"finalise returned {update!r}", False
            now = trio.current_time()
            first_failure = now if first_failure is None else first_failure
            retrying = now - first_failure < self.settings.finalise_retry_limit
            if not (retrying if transient else attempt < FINALISE_ATTEMPTS):
                break
            delay = backoff(attempt + 1, self.settings.restart_delay, FINALISE_MAX_DELAY)
            log.info(
                "backend %s: job %d: finalisation failed (%s); again in %.0f s",
                self.backend.name,
                job.id,
                problem,
                delay,
                extra={"backend": self.backend.name, "job": job.id},
            )
            await trio.sleep(delay)
        log.warning(
            "backend %s: job %d failed finalisation: %s",
            self.backend.name,
            job.id,
            problem,
            extra={"backend": self.backend.name, "job": job.id},
        )
        return Update(job.id, Status.FAILED, job.native_status, f"{FINALISATION_FAILED}: {problem}")
