"""The Monitor: root of the task tree; what callers use.

```
Monitor.run (root nursery)
├── writer           (_writer.py) takes reports and commands from one bounded channel, in
│                    order: writes the store in batches (compare-and-set), tells the runners,
│                    subscribers, callbacks and waiters
└── backends nursery one BackendRunner.supervise per backend (see _supervise.py)
```

Everything that writes goes one way: backend or caller -> channel -> writer -> store ->
followers. `track`, `untrack`, `kill` and `load_new` are commands to the writer: only its
task changes the store's jobs and the runners' tables of tracked jobs.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass

import trio

from ._astore import AsyncStore
from ._errors import GangamonError, UnknownJob, single_exception
from ._histogram import Histogram, HistogramStatistics
from ._status import ACTIVE, Status
from ._store import JobStore, JournalEntry, NewJob, Outcome
from ._subscribe import Subscription
from ._supervise import BackendRunner, BackendStatistics
from ._writer import Item, Writer, ref_of
from .backends._protocol import Backend, JobRef

log = logging.getLogger("gangamon.engine")


@dataclass(frozen=True, slots=True)
class MonitorStatistics:
    backends: dict[str, BackendStatistics]
    #: Reports waiting for the writer.
    queue_depth: int
    batches: int
    applied: int
    #: Reports the status graph refused (a backend said something impossible).
    illegal: int
    #: Reports older than one already applied to the same job.
    out_of_order: int
    subscribers: int


@dataclass(frozen=True, slots=True)
class BackendHistograms:
    """One backend's histograms. Apart from `MonitorStatistics`, which `gangamon run` writes
    as JSON for `watch`: JSON has no spelling for the +Inf bound of a bucket."""

    #: Seconds from a change at the backend (where it says when) to its being stored.
    detection: HistogramStatistics
    #: Seconds each successful poll took; None for a backend that does not poll.
    poll_duration: HistogramStatistics | None


class Monitor:
    """Watches jobs on several backends and keeps the store up to date.

    Run it with `await monitor.run()` (or `open_monitor`); `stop()` ends it gracefully: no new
    calls, `grace` seconds for calls in flight, then cancellation; reports already received
    are written under a shielded scope. Jobs in an active status are loaded from the store at
    start and monitored again; jobs left in completing are finalised again.
    """

    def __init__(
        self,
        store: JobStore | AsyncStore,
        backends: Sequence[Backend],
        *,
        grace: float = 5.0,
        batch_size: int = 1000,
        queue_size: int = 10_000,
        seed: int | None = None,
    ) -> None:
        self.store = store if isinstance(store, AsyncStore) else AsyncStore(store)
        names = [b.name for b in backends]
        if len(set(names)) != len(names):
            raise ValueError(f"backend names must be unique, got {names}")
        rng = random.Random(seed)
        self._runners = {b.name: BackendRunner(b, rng=rng) for b in backends}
        self._writer = Writer(self.store, self._runners, batch_size=batch_size)
        self._grace = grace
        self._queue_size = queue_size
        self._stop = trio.Event()
        self._running = False
        self._receive: trio.MemoryReceiveChannel[Item] | None = None
        #: Jobs above this id that are active in the store are `load_new`'s to pick up.
        self._seen_id = 0
        self._untracked: set[int] = set()
        #: Jobs whose kill at their backend is under way: out of their runner's table (no
        #: work on them) but still the job of their backend id, for `track` and `load_new`.
        self._killing: dict[int, tuple[BackendRunner, JobRef]] = {}

    @property
    def detection(self) -> Histogram:
        """Seconds from a change at the backend (where it says when) to its being stored, for
        every backend (`histograms()` has them by backend)."""
        return self._writer.detection

    # -- running ---------------------------------------------------------------------------

    async def run(
        self, *, task_status: trio.TaskStatus[Monitor] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Monitor until `stop()` is called or the task is cancelled.

        Reports `self` through `task_status` once every backend is started. Cancelled: all
        calls are cancelled (hung read-only threads abandoned) and the reports already
        received are still written, under a shielded scope bounded to one second.
        A lone exception (KeyboardInterrupt included) comes out bare, not in a group.
        """
        if self._running:
            raise GangamonError("this Monitor is already running")
        self._running = True
        try:
            await self._run(task_status)
        except BaseExceptionGroup as group:
            raise single_exception(group) from None
        finally:
            self._running = False
            self._writer.take_commands(None)
            # Afresh for a later run; a stop() asked before this run began was kept.
            self._stop = trio.Event()

    async def _run(self, task_status: trio.TaskStatus[Monitor]) -> None:
        await self._load()
        send, receive = trio.open_memory_channel[Item](self._queue_size)
        self._receive = receive
        async with trio.open_nursery() as root:
            root.start_soon(self._writer.run, receive)
            async with send, send.clone() as commands:
                self._writer.take_commands(commands)
                async with trio.open_nursery() as backends:
                    for runner in self._runners.values():
                        await backends.start(runner.supervise, send.clone())
                    task_status.started(self)
                    await self._stop.wait()
                    for runner in self._runners.values():
                        runner.stop()
                    backends.cancel_scope.deadline = trio.current_time() + self._grace
            # `send` and every clone are closed: the writer drains the channel and returns.

    def stop(self) -> None:
        """Begin a graceful stop. Idempotent; safe before `run` has started."""
        self._stop.set()

    async def _load(self) -> None:
        self._seen_id = 0
        for runner in self._runners.values():
            runner.clear()
            for record in await self.store.active_jobs(runner.name):
                runner.load(
                    ref_of(record.id, record.backend_id, record.status, record.native_status)
                )
                self._seen_id = max(self._seen_id, record.id)
        known = set(self._runners)
        orphans = [j.id for j in await self.store.active_jobs() if j.backend not in known]
        if orphans:
            log.warning(
                "%d active jobs belong to backends not configured here; left alone", len(orphans)
            )

    # -- for callers -----------------------------------------------------------------------

    async def track(self, jobs: Sequence[NewJob]) -> list[int]:
        """Store new jobs and start monitoring the active ones at once (not at the next sweep);
        return their ids, in order.

        An active job whose backend already monitors one under the same backend id (tracked
        before, or earlier in `jobs`, or by a `track` call just before) is not stored again:
        its id is that job's, and it is polled or watched once (a parent named by its future
        id counts only the jobs stored). Raises `ValueError` naming a backend this monitor
        does not run; nothing is stored then. Cancelled: the jobs are stored all the same.
        """
        for job in jobs:
            if job.backend not in self._runners:
                raise ValueError(
                    f"unknown backend {job.backend!r} (configured: {', '.join(self._runners)})"
                )
        jobs = list(jobs)
        return await self._writer.submit(lambda: self._store_new(jobs))

    async def _store_new(self, jobs: list[NewJob]) -> list[int]:
        """`track`'s write, in the writer's turn (so that no other track comes between the
        check of what is tracked and the adding)."""
        await self._load_new()  # what `gangamon track` or Ganga added since the last look
        ids: list[int] = [0] * len(jobs)
        stored: list[int] = []  # positions in `jobs` of the jobs to store
        first: dict[tuple[str, str], int] = {}  # position of each active job to store
        repeats: list[tuple[int, int]] = []  # (position, position of the same job earlier)
        for position, job in enumerate(jobs):
            if job.status in ACTIVE and job.backend_id:
                known = self._tracking(job.backend, job.backend_id)
                if known is not None:
                    ids[position] = known
                    continue
                key = (job.backend, job.backend_id)
                if key in first:
                    repeats.append((position, first[key]))
                    continue
                first[key] = position
            stored.append(position)
        # An active job this monitor does not follow under the same id (it untracked it: a
        # new run replaces it) is superseded; one it follows was answered above.
        new_ids = await self.store.add_jobs([jobs[p] for p in stored], superseding=True)
        for position, job_id in zip(stored, new_ids, strict=True):
            ids[position] = job_id
            job = jobs[position]
            if job.status in ACTIVE and job.backend_id is not None:
                self._runners[job.backend].add(
                    ref_of(job_id, job.backend_id, job.status, job.native_status)
                )
        for position, earlier in repeats:
            ids[position] = ids[earlier]
        await self._writer.publish()
        return ids

    def _tracking(self, backend: str, backend_id: str) -> int | None:
        """The job this monitor follows under `backend_id` on `backend`, if any."""
        known = self._runners[backend].tracking(backend_id)
        if known is not None:
            return known
        for job, (runner, ref) in self._killing.items():
            if runner.name == backend and ref.backend_id == backend_id:
                return job
        return None

    async def load_new(self) -> int:
        """Follow what other processes wrote to the store since the last look: start
        monitoring the active jobs they added (`gangamon track`, Ganga), and stop monitoring
        the jobs they moved out of the active statuses (`gangamon kill`, `untrack`); return
        how many jobs were added."""
        return await self._writer.submit(self._follow_store)

    async def _follow_store(self) -> int:
        found = await self._load_new()
        await self._writer.publish()  # the runners follow the entries others wrote
        return found

    async def _load_new(self) -> int:
        found = 0
        for record in await self.store.jobs(statuses=ACTIVE, after=self._seen_id):
            self._seen_id = record.id
            runner = self._runners.get(record.backend)
            if (
                runner is None
                or record.id in runner.jobs
                or record.id in self._untracked
                or record.id in self._killing
            ):
                continue
            if record.backend_id:
                runner.add(
                    ref_of(record.id, record.backend_id, record.status, record.native_status)
                )
                found += 1
        return found

    async def untrack(self, jobs: Collection[int]) -> None:
        """Stop monitoring these jobs in this run (a command to the writer); their work is
        cancelled, the store kept."""
        jobs = list(jobs)
        await self._writer.submit(lambda: self._untrack(jobs))

    async def _untrack(self, jobs: list[int]) -> None:
        self._untracked.update(jobs)
        for runner in self._runners.values():
            for job in jobs:
                runner.discard(job)

    async def kill(self, job: int) -> None:
        """Kill `job` through its backend, then store it as killed.

        Raises `UnknownJob` if no backend here monitors it, and the backend's error if the
        kill fails (the job is then monitored as before). Cancelled: the backend call is
        waited for, not abandoned (a kill is a write). A job stored with another status
        meanwhile (by another process) is killed from that one; one that ended meanwhile
        keeps its end. `GangamonError` if the store refuses the move. The job is taken out
        of its runner's table, put back and stored by commands to the writer.
        """
        runner, ref = await self._writer.submit(lambda: self._take_for_kill(job))
        try:
            await runner.kill(ref)
        except BaseException:
            with trio.CancelScope(shield=True):  # not killed after all: keep watching it
                await self._writer.submit(lambda: self._put_back(job))
            raise
        status, result = await self._writer.submit(lambda: self._store_killed(job, ref))
        if result not in (Outcome.APPLIED, Outcome.UNCHANGED):
            raise GangamonError(
                f"job {job}: killed at its backend, but the store refused {status.value} -> "
                f"killed ({result.value})"
            )

    async def _take_for_kill(self, job: int) -> tuple[BackendRunner, JobRef]:
        if job in self._killing:
            raise GangamonError(f"job {job} is being killed already")
        for runner in self._runners.values():
            ref = runner.jobs.get(job)
            if ref is not None:
                runner.discard(job)
                self._killing[job] = (runner, ref)
                return runner, ref
        raise UnknownJob(job)

    async def _put_back(self, job: int) -> None:
        runner, ref = self._killing.pop(job)
        if job not in self._untracked:
            runner.add(ref)

    async def _store_killed(self, job: int, ref: JobRef) -> tuple[Status, Outcome]:
        del self._killing[job]
        return await self._writer.store_killed(job, ref.status)

    async def wait_for(
        self,
        job: int,
        statuses: Collection[Status],
        timeout: float = math.inf,  # noqa: ASYNC109 - the caller's bound, part of the API
    ) -> Status:
        """Wait until `job` is in one of `statuses`; return that status.

        Raises `UnknownJob`, or `TimeoutError` after `timeout` seconds.
        """
        return await self._writer.wait_for(job, statuses, timeout)

    @contextlib.asynccontextmanager
    async def changes(self, buffer: int = 10_000) -> AsyncIterator[Subscription]:
        """The journal entries written from now on, as an async iterator:
        `async with monitor.changes() as changes: async for entry in changes: ...`

        A subscriber more than `buffer` entries behind is dropped; its iteration then raises
        `SubscriberLagged`, naming the last seq it got, so it can resume from the store.
        """
        subscription = Subscription(buffer)
        self._writer.subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._writer.subscribers.discard(subscription)
            subscription.close()

    def on_change(self, callback: Callable[[JournalEntry], object]) -> None:
        """Call `callback(entry)` in the writer after each commit. It must not block."""
        self._writer.callbacks.append(callback)

    def statistics(self) -> MonitorStatistics:
        writer = self._writer
        return MonitorStatistics(
            backends={name: r.statistics() for name, r in self._runners.items()},
            queue_depth=(self._receive.statistics().current_buffer_used if self._receive else 0),
            batches=writer.batches,
            applied=writer.applied,
            illegal=writer.illegal,
            out_of_order=writer.out_of_order,
            subscribers=len(writer.subscribers),
        )

    def histograms(self) -> dict[str, BackendHistograms]:
        """Each backend's histograms, by name."""
        return {
            name: BackendHistograms(
                self._writer.backend_detection[name].statistics(),
                runner.sweeper.poll_duration.statistics() if runner.backend.polls else None,
            )
            for name, runner in self._runners.items()
        }


@contextlib.asynccontextmanager
async def open_monitor(
    store: JobStore | AsyncStore,
    backends: Sequence[Backend],
    *,
    grace: float = 5.0,
    seed: int | None = None,
) -> AsyncIterator[Monitor]:
    """Run a `Monitor` for the duration of the block; leaving it stops gracefully.

    An exception from the block or the monitor comes out bare when it is the only one.
    """
    monitor = Monitor(store, backends, grace=grace, seed=seed)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(monitor.run)
            try:
                yield monitor
            finally:
                monitor.stop()
    except BaseExceptionGroup as group:
        raise single_exception(group) from None
