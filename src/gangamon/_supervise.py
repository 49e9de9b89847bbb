"""One backend's corner of the task tree: its supervisor, and the parts it runs.

Each backend runs in a nursery of its own under a supervisor that restarts it, with
exponential backoff and jitter, when it crashes; the other backends never notice. In that
nursery: the `Sweeper`'s loops (polls) and the `JobTasks` (watches, finalisers), both
reporting through the backend's `Outbox`, about the jobs of its `JobTable`.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import trio

from ._backoff import backoff
from ._errors import single_exception
from ._jobtable import JobTable
from ._jobtasks import JobTasks
from ._outbox import Outbox, Report
from ._status import Status
from ._sweeper import Sweeper, describe
from .backends._protocol import Backend, BackendUnavailable, JobRef

log = logging.getLogger("gangamon.backend")


@dataclass(frozen=True, slots=True)
class BackendStatistics:
    name: str
    jobs: int
    calls: int
    errors: int
    timeouts: int
    garbage: int
    restarts: int
    in_flight: int
    limiter_borrowed: int
    limiter_total: int
    finalising: int
    #: Finalisations that succeeded (for DIRAC: output sandboxes downloaded).
    finalised: int
    #: The tracked (active) jobs by their stored status.
    jobs_by_status: dict[Status, int]
    last_poll_latency: float | None
    interval: float
    #: Why the backend is not working, from its last crash or failed poll until a poll
    #: succeeds (for a backend that does not poll: until it has started again).
    problem: str | None
    #: When a poll last succeeded (Unix time).
    last_success: float | None = None
    #: When the backend's credentials expire (Unix time), where it knows.
    credentials_expiry: float | None = None
    #: Of the calls, those that asked which jobs had changed (`Backend.changed`).
    delta_calls: int = 0
    #: Finalisations given up on (the job failed), and those waiting to try again.
    finalise_failed: int = 0
    finalise_retrying: int = 0
    #: Whether the backend is polled (else its jobs are watched: no sweeps, no interval).
    polls: bool = True


class BackendRunner:
    """Drives one backend for the engine. Its table of tracked jobs is the writer's to change
    (commands, `untrack` and `kill` included, run in the writer's task)."""

    def __init__(self, backend: Backend, *, rng: random.Random) -> None:
        self.backend = backend
        self.settings = backend.settings
        self.name = backend.name
        #: The jobs this backend still has to report on, as last stored.
        self.jobs = JobTable()
        self.outbox = Outbox(self.name, self.jobs)
        self.sweeper = Sweeper(backend, self.jobs, self.outbox)
        self.tasks = JobTasks(backend, self.outbox)
        self.restarts = 0
        self._rng = rng
        self._stopped = trio.Event()
        self._task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED

    # -- called by the writer (and the engine at its start) --------------------------------

    def load(self, job: JobRef) -> None:
        """Track `job` from the store at start: the first sweep polls it."""
        self.jobs.put(job)

    def add(self, job: JobRef) -> None:
        """Track `job`: polled promptly, watched or finalised as its status asks."""
        self.jobs.put(job)
        self.sweeper.poll_soon(job.id)
        self._start_job_task(job)

    def replace(self, job: JobRef) -> None:
        """The writer stored a new status for `job`."""
        self.jobs.put(job)
        if job.status == Status.COMPLETING:
            self._start_job_task(job)

    def tracking(self, backend_id: str) -> int | None:
        """The id of the job this backend reports on under `backend_id`, if any."""
        return self.jobs.tracking(backend_id)

    def discard(self, job: int) -> None:
        """Stop all work on `job` (finished, untracked, killed)."""
        self.jobs.remove(job)
        self.sweeper.forget(job)
        self.tasks.cancel(job)

    def clear(self) -> None:
        """Forget every job (before loading them again from the store)."""
        for job in list(self.jobs):
            self.discard(job)

    # -- called by the engine --------------------------------------------------------------

    def stopping(self) -> bool:
        return self._stopped.is_set()

    def stop(self) -> None:
        """Start no new call; let the ones in flight finish (the engine bounds how long)."""
        self._stopped.set()
        self.sweeper.wake()
        self.tasks.stop_watches()

    async def kill(self, job: JobRef) -> None:
        """Kill through the backend under its limiter and deadline; never abandoned."""
        async with self.sweeper.limiter:
            with trio.fail_after(self.settings.call_deadline):
                await self.backend.kill(job)

    def statistics(self) -> BackendStatistics:
        counts = self.outbox.counts
        limiter = self.sweeper.limiter
        return BackendStatistics(
            name=self.name,
            jobs=len(self.jobs),
            calls=counts.calls,
            errors=counts.errors,
            timeouts=counts.timeouts,
            delta_calls=counts.delta_calls,
            garbage=counts.garbage,
            restarts=self.restarts,
            in_flight=counts.in_flight,
            limiter_borrowed=limiter.borrowed_tokens,
            limiter_total=int(limiter.total_tokens),
            finalising=self.tasks.finalise_limiter.borrowed_tokens,
            finalised=counts.finalised,
            finalise_failed=counts.finalise_failed,
            finalise_retrying=self.tasks.retrying(),
            jobs_by_status=self.jobs.by_status(),
            last_poll_latency=counts.last_poll_latency,
            interval=self.sweeper.interval,
            problem=counts.problem,
            last_success=counts.last_success,
            credentials_expiry=self.backend.credentials_expiry,
            polls=self.backend.polls,
        )

    # -- supervision -----------------------------------------------------------------------

    async def supervise(
        self,
        send: trio.MemorySendChannel[Report],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run the backend until stopped, restarting it after each crash.

        Reports started once the first sweep has taken its jobs (or the first start failed).
        The supervisor owns `send`, so restarts reuse it and the writer sees it close only
        when supervision ends. Cancelled: everything below is cancelled; hung read-only
        calls in threads are abandoned.
        """
        async with send:
            self.outbox.send = send
            self._stopped = trio.Event()
            self._task_status = task_status
            crashes = 0
            while not self.stopping():
                started = trio.current_time()
                try:
                    await self._run_once()
                except Exception as exc:
                    self._report_started()
                    if self.stopping():
                        return
                    self.restarts += 1
                    if trio.current_time() - started > self.settings.max_restart_delay:
                        crashes = 0  # it ran well for a while: start the backoff afresh
                    crashes += 1
                    delay = backoff(
                        crashes,
                        self.settings.restart_delay,
                        self.settings.max_restart_delay,
                        self._rng.uniform(0.5, 1.0),
                    )
                    cause = _unavailable(exc) or single_exception(exc)
                    counts = self.outbox.counts
                    if isinstance(cause, BackendUnavailable):
                        # A person has to act: say so once, then check back now and then.
                        delay = self.settings.max_restart_delay
                        if str(cause) != counts.problem:
                            log.error(
                                "backend %s unavailable: %s",
                                self.name,
                                cause,
                                extra=self.outbox.tag,
                            )
                        counts.problem = str(cause)
                    else:
                        counts.problem = f"crashed: {describe(cause)}"
                        log.warning(
                            "backend %s crashed (%s); restart %d in %.1f s",
                            self.name,
                            describe(cause),
                            self.restarts,
                            delay,
                            extra=self.outbox.tag,
                        )
                    with trio.move_on_after(delay):
                        await self._stopped.wait()

    async def _run_once(self) -> None:
        async with self.backend.lifespan(), trio.open_nursery() as nursery:
            try:
                if self.backend.polls:
                    await self.sweeper.run(nursery, self._stopped)
                else:
                    self.outbox.counts.problem = None  # it started: nothing else will say so
                self.tasks.open(nursery)
                for job in list(self.jobs.values()):
                    self._start_job_task(job)
                self._report_started()
                # The nursery stays open for watches and finalisers started later.
                await self._stopped.wait()
            finally:
                self.tasks.open(None)

    def _report_started(self) -> None:
        if self._task_status is not trio.TASK_STATUS_IGNORED:
            self._task_status.started()
            self._task_status = trio.TASK_STATUS_IGNORED

    def _start_job_task(self, job: JobRef) -> None:
        if not self.stopping():
            self.tasks.start(job)


def _unavailable(exc: BaseException) -> BackendUnavailable | None:
    """The `BackendUnavailable` among `exc` and its groups' members, if any: polls of
    several chunks raise it together when the proxy has expired."""
    if isinstance(exc, BackendUnavailable):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for member in exc.exceptions:
            found = _unavailable(member)
            if found is not None:
                return found
    return None
