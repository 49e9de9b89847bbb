"""One backend's corner of the task tree: sweeps, prompt polls, watches, finalisers.

Each backend runs in a nursery of its own under a supervisor that restarts it, with
exponential backoff and jitter, when it crashes; the other backends never notice. Every call
runs under the backend's `CapacityLimiter` and a deadline. Reports go, stamped with the time
their call started, into the bounded channel that feeds the engine's single writer.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass

import trio

from ._backoff import backoff
from ._errors import single_exception
from ._jobtable import JobTable
from ._status import Status
from .backends._protocol import Backend, BackendUnavailable, JobRef, Update

log = logging.getLogger("gangamon.backend")

FINALISE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Report:
    """An update from the backend of that name on its way to the writer. `observed` orders
    reports of the same job."""

    backend: str
    observed: float
    update: Update
    #: From `finalise`: the move out of completing, not a fresh report of completion.
    finalised: bool = False


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
    #: The tracked (active) jobs by their stored status.
    jobs_by_status: dict[Status, int]
    last_poll_latency: float | None
    interval: float
    problem: str | None


class BackendRunner:
    """Drives one backend for the engine. Its table of tracked jobs is the writer's to change;
    `untrack` and `kill` only take jobs out."""

    def __init__(self, backend: Backend, *, rng: random.Random) -> None:
        self.backend = backend
        self.settings = backend.settings
        self.name = backend.name
        #: Log records' own fields (see `_logs`): which backend a record is about.
        self._tag = {"backend": self.name}
        #: The jobs this backend still has to report on, as last stored.
        self.jobs = JobTable()
        self.limiter = trio.CapacityLimiter(self.settings.concurrency)
        self.finalise_limiter = trio.CapacityLimiter(self.settings.finalise_concurrency)
        self.interval = self.settings.poll_interval
        self.calls = self.errors = self.timeouts = self.garbage = self.restarts = 0
        self.in_flight = 0
        self.last_poll_latency: float | None = None
        #: Why the backend is not working, while it is not (shown by `statistics`).
        self.problem: str | None = None
        self._rng = rng
        self._fresh: set[int] = set()
        self._wake = trio.Event()
        self._watches: dict[int, trio.CancelScope] = {}
        self._finalisers: dict[int, trio.CancelScope] = {}
        self._nursery: trio.Nursery | None = None
        self._sleep = trio.CancelScope()
        self._stopped = trio.Event()
        self._send: trio.MemorySendChannel[Report] | None = None
        self._task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED

    # -- called by the engine --------------------------------------------------------------

    def load(self, job: JobRef) -> None:
        """Track `job` from the store at start: the first sweep polls it."""
        self.jobs.put(job)

    def add(self, job: JobRef) -> None:
        """Track `job`: polled promptly, watched or finalised as its status asks."""
        self.jobs.put(job)
        self._fresh.add(job.id)
        self._wake.set()
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
        self._fresh.discard(job)
        for tasks in (self._watches, self._finalisers):
            scope = tasks.pop(job, None)
            if scope is not None:
                scope.cancel()

    def clear(self) -> None:
        """Forget every job (before loading them again from the store)."""
        for job in list(self.jobs):
            self.discard(job)

    def stopping(self) -> bool:
        return self._stopped.is_set()

    def stop(self) -> None:
        """Start no new call; let the ones in flight finish (the engine bounds how long)."""
        self._stopped.set()
        self._sleep.cancel()
        self._wake.set()
        # Watches hold no call in flight; finalisers get the grace period to finish.
        for scope in self._watches.values():
            scope.cancel()

    async def kill(self, job: JobRef) -> None:
        """Kill through the backend under its limiter and deadline; never abandoned."""
        async with self.limiter:
            with trio.fail_after(self.settings.call_deadline):
                await self.backend.kill(job)

    def statistics(self) -> BackendStatistics:
        return BackendStatistics(
            name=self.name,
            jobs=len(self.jobs),
            calls=self.calls,
            errors=self.errors,
            timeouts=self.timeouts,
            garbage=self.garbage,
            restarts=self.restarts,
            in_flight=self.in_flight,
            limiter_borrowed=self.limiter.borrowed_tokens,
            limiter_total=int(self.limiter.total_tokens),
            finalising=self.finalise_limiter.borrowed_tokens,
            jobs_by_status=self.jobs.by_status(),
            last_poll_latency=self.last_poll_latency,
            interval=self.interval,
            problem=self.problem,
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
            self._send = send
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
                    if isinstance(cause, BackendUnavailable):
                        # A person has to act: say so once, then check back now and then.
                        delay = self.settings.max_restart_delay
                        if str(cause) != self.problem:
                            log.error(
                                "backend %s unavailable: %s", self.name, cause, extra=self._tag
                            )
                        self.problem = str(cause)
                    else:
                        self.problem = f"crashed: {_describe(cause)}"
                        log.warning(
                            "backend %s crashed (%s); restart %d in %.1f s",
                            self.name,
                            _describe(cause),
                            self.restarts,
                            delay,
                            extra=self._tag,
                        )
                    with self._sleep_scope():
                        await trio.sleep(delay)

    async def _run_once(self) -> None:
        async with self.backend.lifespan(), trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                if self.backend.polls:
                    # The first sweep takes every job tracked so far; only later arrivals
                    # need a prompt poll of their own.
                    await nursery.start(self._sweep_loop)
                    nursery.start_soon(self._prompt_loop)
                    if self.backend.ending:
                        nursery.start_soon(self._ending_loop)
                for job in list(self.jobs.values()):
                    self._start_job_task(job)
                self._report_started()
                # The nursery stays open for watches and finalisers started later.
                await self._stopped.wait()
            except BaseException:
                self._nursery = None
                raise
        self._nursery = None

    def _report_started(self) -> None:
        if self._task_status is not trio.TASK_STATUS_IGNORED:
            self._task_status.started()
            self._task_status = trio.TASK_STATUS_IGNORED

    def _sleep_scope(self) -> trio.CancelScope:
        self._sleep = trio.CancelScope()
        if self.stopping():
            self._sleep.cancel()
        return self._sleep

    # -- polling ---------------------------------------------------------------------------

    async def _sweep_loop(self, *, task_status: trio.TaskStatus[None]) -> None:
        """Poll every tracked job at a fixed rate: no drift, no catch-up burst when late.

        Reports started once the first sweep has taken its jobs.
        """
        base = self.settings.poll_interval
        next_sweep = trio.current_time()
        jobs = self._take_sweep()
        task_status.started()
        while not self.stopping():
            clean = await self._sweep(jobs)
            self.interval = (
                base if clean else min(self.interval * 2, base * self.settings.max_backoff)
            )
            next_sweep = max(next_sweep + self.interval, trio.current_time())
            with self._sleep_scope():
                await trio.sleep_until(next_sweep)
            jobs = self._take_sweep()

    def _take_sweep(self) -> list[JobRef]:
        self._fresh.clear()  # the sweep covers them
        ending = self.backend.ending
        # The jobs whose end is near are the ending loop's: polled twice, a job's end could be
        # reported by a poll that started before the end's first report was stored.
        return self._pollable(j for j in self.jobs.values() if j.native_status not in ending)

    async def _ending_loop(self) -> None:
        """Poll the jobs whose end is near (`Backend.ending`) between the sweeps, at a fixed
        rate that backs off with the sweeps'."""
        ending = self.backend.ending
        next_poll = trio.current_time()
        while True:
            with trio.move_on_at(next_poll):
                await self._stopped.wait()
            if self.stopping():
                return
            jobs = self._pollable(j for j in self.jobs.values() if j.native_status in ending)
            if jobs:
                await self._sweep(jobs)
            backed_off = self.interval / self.settings.poll_interval
            step = self.settings.ending_poll_interval * backed_off
            next_poll = max(next_poll + step, trio.current_time())

    async def _prompt_loop(self) -> None:
        """Poll newly tracked jobs at once, outside the sweep schedule."""
        while not self.stopping():
            await self._wake.wait()
            self._wake = trio.Event()
            fresh = [ref for j in sorted(self._fresh) if (ref := self.jobs.get(j)) is not None]
            self._fresh.clear()
            if not self.stopping():
                await self._sweep(self._pollable(fresh))

    def _pollable(self, jobs: Iterable[JobRef]) -> list[JobRef]:
        # Jobs being finalised are the finaliser's: a poll would only report completion again.
        # Masters (no backend id) get their status from their subjobs.
        skip = Status.COMPLETING if self.backend.finalises else None
        return [j for j in jobs if j.status != skip and j.backend_id]

    async def _sweep(self, jobs: list[JobRef]) -> bool:
        """Poll `jobs` in chunks, `concurrency` calls at a time. True if every call succeeded."""
        size = self.settings.chunk_size
        failures: list[bool] = []
        async with trio.open_nursery() as nursery:
            for i in range(0, len(jobs), size):
                nursery.start_soon(self._poll_chunk, jobs[i : i + size], failures)
        return not failures

    async def _poll_chunk(self, chunk: list[JobRef], failures: list[bool]) -> None:
        async with self.limiter:
            self.calls += 1
            self.in_flight += 1
            started = trio.current_time()
            try:
                with trio.move_on_after(self.settings.call_deadline) as deadline:
                    updates = await self.backend.poll(chunk)
            except BackendUnavailable:
                raise  # not this call's problem: the supervisor deals with it
            except Exception as exc:
                self.errors += 1
                failures.append(True)
                log.warning(
                    "backend %s: poll of %d jobs failed: %s",
                    self.name,
                    len(chunk),
                    _describe(exc),
                    extra=self._tag,
                )
                return
            finally:
                self.in_flight -= 1
            if deadline.cancelled_caught:
                self.timeouts += 1
                failures.append(True)
                log.warning(
                    "backend %s: poll of %d jobs passed its %.1f s deadline",
                    self.name,
                    len(chunk),
                    self.settings.call_deadline,
                    extra=self._tag,
                )
                return
            self.last_poll_latency = trio.current_time() - started
        await self._forward(updates, {j.id for j in chunk}, started)

    async def _forward(self, updates: object, asked: set[int], observed: float) -> None:
        """Send the well-formed reports on jobs we asked about; count the rest as garbage."""
        assert self._send is not None
        try:
            items = list(updates)  # type: ignore[call-overload]
        except TypeError:
            items = [updates]
        for update in items:
            if (
                isinstance(update, Update)
                and update.job in asked
                and isinstance(update.status, Status)
            ):
                ref = self.jobs.get(update.job)
                if ref is not None and (ref.status, ref.native_status) == (
                    update.status,
                    update.native_status,
                ):
                    continue  # nothing new: most reports of a sweep, kept off the channel
                await self._send.send(Report(self.name, observed, update))
            else:
                self.garbage += 1
                log.warning(
                    "backend %s: ignored malformed report %.200r",
                    self.name,
                    update,
                    extra=self._tag,
                )

    # -- per-job tasks: watches and finalisers ---------------------------------------------

    def _start_job_task(self, job: JobRef) -> None:
        if self._nursery is None or self.stopping():
            return
        if job.status == Status.COMPLETING and self.backend.finalises:
            if job.id not in self._finalisers:
                self._finalisers[job.id] = scope = trio.CancelScope()
                self._nursery.start_soon(self._finalise, job, scope)
        elif self.backend.watches and job.backend_id and job.id not in self._watches:
            self._watches[job.id] = scope = trio.CancelScope()
            self._nursery.start_soon(self._watch, job, scope)

    async def _watch(self, job: JobRef, scope: trio.CancelScope) -> None:
        """Forward the backend's pushed changes of `job`. A failing watch crashes the backend."""
        assert self._send is not None
        try:
            with scope:
                async for update in self.backend.watch(job):
                    await self._forward([update], {job.id}, trio.current_time())
        finally:
            if self._watches.get(job.id) is scope:
                del self._watches[job.id]

    async def _finalise(self, job: JobRef, scope: trio.CancelScope) -> None:
        """Finalise with retries and backoff; after the last failure the job is failed."""
        assert self._send is not None
        try:
            with scope:
                update = await self._finalise_attempts(job)
                await self._send.send(
                    Report(self.name, trio.current_time(), update, finalised=True)
                )
        finally:
            if self._finalisers.get(job.id) is scope:
                del self._finalisers[job.id]

    async def _finalise_attempts(self, job: JobRef) -> Update:
        problem = ""
        for attempt in range(FINALISE_ATTEMPTS):
            if attempt:
                await trio.sleep(backoff(attempt + 1, self.settings.restart_delay, 60.0))
            async with self.finalise_limiter:
                try:
                    with trio.move_on_after(self.settings.call_deadline) as deadline:
                        update = await self.backend.finalise(job)
                except Exception as exc:
                    self.errors += 1
                    problem = _describe(exc)
                    continue
            if deadline.cancelled_caught:
                self.timeouts += 1
                problem = f"finalise passed its {self.settings.call_deadline} s deadline"
                continue
            reply: object = update  # a backend may return anything: check it
            if (
                isinstance(reply, Update)
                and reply.job == job.id
                and reply.status
                in (
                    Status.COMPLETED,
                    Status.FAILED,
                )
            ):
                return reply
            self.garbage += 1
            problem = f"finalise returned {update!r}"
        log.warning(
            "backend %s: job %d failed finalisation: %s",
            self.name,
            job.id,
            problem,
            extra={"backend": self.name, "job": job.id},
        )
        return Update(job.id, Status.FAILED, job.native_status, f"finalisation failed: {problem}")


def _describe(exc: BaseException) -> str:
    exc = single_exception(exc)
    return f"{type(exc).__name__}: {exc}"


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
