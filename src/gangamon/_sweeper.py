"""A backend's polls: sweeps of every tracked job, polls of the jobs near their end, and
prompt polls of the jobs tracked since the last sweep.

Every call runs under the backend's `CapacityLimiter` and a deadline. A sweep with an error
or a timeout doubles the interval, up to `max_backoff` times the base; a clean one restores
it. The loops end when the supervisor's `stopped` event is set.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import trio

from ._errors import single_exception
from ._histogram import POLL_BUCKETS, Histogram
from ._jobtable import JobTable
from ._outbox import Outbox
from ._status import Status
from .backends._protocol import Backend, BackendUnavailable, JobRef

log = logging.getLogger("gangamon.backend")
T = TypeVar("T")


class Sweeper:
    """Polls `backend` about the jobs of `jobs`; sends what changed through `outbox`."""

    def __init__(self, backend: Backend, jobs: JobTable, outbox: Outbox) -> None:
        self.backend = backend
        self.settings = backend.settings
        self.jobs = jobs
        self.outbox = outbox
        self.counts = outbox.counts
        self.limiter = trio.CapacityLimiter(self.settings.concurrency)
        #: Seconds each successful poll took, from holding a limiter token to its answer.
        self.poll_duration = Histogram(POLL_BUCKETS)
        #: The sweep interval now (backed off after errors).
        self.interval = self.settings.poll_interval
        self._fresh: set[int] = set()
        self._wake = trio.Event()
        #: The start of the last sweep that succeeded (trio time), and of the last full one.
        self._seen_until: float | None = None
        self._last_full_sweep = -math.inf
        #: Whether the sweeps ask what changed, and whether the one under way polls only
        #: that (see `_take_sweep`).
        self._asking = self._narrowing = False

    def poll_soon(self, job: int) -> None:
        """Poll `job` at once, outside the sweeps (it was just tracked)."""
        self._fresh.add(job)
        self._wake.set()

    def forget(self, job: int) -> None:
        self._fresh.discard(job)

    def wake(self) -> None:
        """Let the prompt loop see that it is stopped."""
        self._wake.set()

    async def run(self, nursery: trio.Nursery, stopped: trio.Event) -> None:
        """Start the loops in `nursery`; return once the first sweep has taken its jobs (the
        ones tracked so far: only later arrivals need a prompt poll)."""
        await nursery.start(self._sweep_loop, stopped)
        nursery.start_soon(self._prompt_loop, stopped)
        if self.backend.ending:
            nursery.start_soon(self._ending_loop, stopped)

    async def _sweep_loop(
        self, stopped: trio.Event, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Poll every tracked job at a fixed rate: no drift, no catch-up burst when late.
        For a backend with deltas, between full sweeps only the jobs it says have changed."""
        base = self.settings.poll_interval
        next_sweep = trio.current_time()
        jobs = self._take_sweep(next_sweep)
        task_status.started()
        while not stopped.is_set():
            started = trio.current_time()
            narrowed = await self._narrowed(jobs) if self._narrowing else None
            clean = await self._sweep(jobs if narrowed is None else narrowed)
            if clean:
                # Every change before `started` has been seen: the next deltas start there.
                self._seen_until = started
                if narrowed is None:
                    self._last_full_sweep = started
            self.interval = (
                base if clean else min(self.interval * 2, base * self.settings.max_backoff)
            )
            next_sweep = max(next_sweep + self.interval, trio.current_time())
            with trio.move_on_at(next_sweep):
                await stopped.wait()
            jobs = self._take_sweep(next_sweep)

    def _take_sweep(self, start: float) -> list[JobRef]:
        """The jobs of the sweep starting at `start`. Where the backend can tell what changed
        and a sweep would take more than one call (one call is never dearer than asking),
        the sweeps ask (`_asking`), between full sweeps narrowing to what changed
        (`_narrowing`), and the jobs near their end are theirs too; else those are the
        ending loop's (polled twice, a job's end could be reported by a poll that started
        before the end's first report was stored)."""
        self._fresh.clear()  # the sweep covers them
        self._asking = (
            self.backend.deltas
            and self._seen_until is not None
            and len(self.jobs) > self.settings.chunk_size
        )
        self._narrowing = self._asking and start - self._last_full_sweep < self.settings.full_sweep
        ending = self.backend.ending
        if self._asking or not ending:
            return self._pollable(self.jobs.values())
        return self._pollable(j for j in self.jobs.values() if j.native_status not in ending)

    async def _narrowed(self, jobs: list[JobRef]) -> list[JobRef] | None:
        """The jobs of `jobs` that the backend says have changed since the last clean sweep,
        or None (a full sweep) if it cannot tell."""
        since = self._seen_until
        assert since is not None
        self.counts.delta_calls += 1
        changed, _ = await self._call(
            "asking what changed", lambda: self.backend.changed(since, jobs)
        )
        if changed is None:
            return None
        return [j for j in jobs if j.backend_id in changed]

    async def _ending_loop(self, stopped: trio.Event) -> None:
        """Poll the jobs whose end is near (`Backend.ending`) between the sweeps, at a fixed
        rate that backs off with the sweeps', unless the sweeps ask what changed (they then
        see those ends, full sweeps included, at a cost that does not grow with the polls)."""
        ending = self.backend.ending
        next_poll = trio.current_time()
        while True:
            with trio.move_on_at(next_poll):
                await stopped.wait()
            if stopped.is_set():
                return
            jobs = self._pollable(j for j in self.jobs.values() if j.native_status in ending)
            if jobs and not self._asking:
                await self._sweep(jobs)
            backed_off = self.interval / self.settings.poll_interval
            step = self.settings.ending_poll_interval * backed_off
            next_poll = max(next_poll + step, trio.current_time())

    async def _prompt_loop(self, stopped: trio.Event) -> None:
        """Poll newly tracked jobs at once, outside the sweep schedule."""
        while not stopped.is_set():
            await self._wake.wait()
            self._wake = trio.Event()
            fresh = [ref for j in sorted(self._fresh) if (ref := self.jobs.get(j)) is not None]
            self._fresh.clear()
            if not stopped.is_set():
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
        started = trio.current_time()
        updates, problem = await self._call(
            f"poll of {len(chunk)} jobs", lambda: self.backend.poll(chunk), timed=True
        )
        if problem is not None:
            failures.append(True)
            self.counts.problem = f"poll {problem}"
            return
        self.counts.succeeded()
        await self.outbox.forward(updates, {j.id for j in chunk}, started)

    async def _call(
        self, what: str, call: Callable[[], Awaitable[T]], *, timed: bool = False
    ) -> tuple[T | None, str | None]:
        """One call of the backend under its limiter and deadline, counted: (its result,
        None), or (None, what went wrong), logged. `timed`: a poll, whose duration on success
        goes to `poll_duration` and `last_poll_latency`."""
        counts, deadline_s = self.counts, self.settings.call_deadline
        async with self.limiter:
            counts.calls += 1
            counts.in_flight += 1
            # Timed from here: a wait for the limiter is the sweep's queue, not the backend.
            began = trio.current_time()
            try:
                with trio.move_on_after(deadline_s) as deadline:
                    result = await call()
            except BackendUnavailable:
                raise  # not this call's problem: the supervisor deals with it
            except Exception as exc:
                counts.errors += 1
                problem = f"failed: {describe(exc)}"
            else:
                if not deadline.cancelled_caught:
                    if timed:
                        counts.last_poll_latency = trio.current_time() - began
                        self.poll_duration.observe(counts.last_poll_latency)
                    return result, None
                counts.timeouts += 1
                problem = f"passed its {deadline_s:g} s deadline"
            finally:
                counts.in_flight -= 1
        log.warning("backend %s: %s %s", self.backend.name, what, problem, extra=self.outbox.tag)
        return None, problem


def describe(exc: BaseException) -> str:
    """`Type: message` of `exc`, or of a group's lone member."""
    exc = single_exception(exc)
    return f"{type(exc).__name__}: {exc}"
