"""The Monitor: root of the task tree, and the single writer of job status.

```
Monitor.run (root nursery)
├── writer           takes reports from one bounded channel, applies them to the store in
│                    batches (compare-and-set), tells subscribers and waiters
└── backends nursery one BackendRunner.supervise per backend (see _supervise.py)
```

Backends' reports flow one way: backend -> channel -> writer -> store -> subscribers. Two
callers' writes go beside the writer: `track` adds jobs, and `kill` stores a killed job as
killed by compare-and-set against the stored status (retried when stale). Every write is
followed by `_publish`, which hands each journal entry to subscribers once, in order.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass

import trio

from ._astore import AsyncStore
from ._errors import GangamonError, UnknownJob, single_exception
from ._metrics import Histogram
from ._status import ACTIVE, Status, can_transition
from ._store import JournalEntry, NewJob, Outcome, Store, Transition
from ._subscribe import Subscription
from ._supervise import BackendRunner, BackendStatistics, Report
from .backends._protocol import Backend, JobRef

log = logging.getLogger("gangamon.engine")

#: Tries at storing a kill against a status another process keeps changing.
_KILL_ATTEMPTS = 3


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


class Monitor:
    """Watches jobs on several backends and keeps the store up to date.

    Run it with `await monitor.run()` (or `open_monitor`); `stop()` ends it gracefully: no new
    calls, `grace` seconds for calls in flight, then cancellation; reports already received
    are written under a shielded scope. Jobs in an active status are loaded from the store at
    start and monitored again; jobs left in completing are finalised again.
    """

    def __init__(
        self,
        store: Store | AsyncStore,
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
        self._grace = grace
        self._batch_size = batch_size
        self._queue_size = queue_size
        self._stop = trio.Event()
        self._running = False
        self._subscribers: set[Subscription] = set()
        self._callbacks: list[Callable[[JournalEntry], object]] = []
        self._waiters: dict[int, list[tuple[frozenset[Status], trio.Event]]] = {}
        self._receive: trio.MemoryReceiveChannel[Report] | None = None
        self._last_seq = 0
        self._batches = self._applied = self._illegal = self._out_of_order = 0
        #: Jobs above this id that are active in the store are `load_new`'s to pick up.
        self._seen_id = 0
        self._untracked: set[int] = set()
        #: Seconds from a change at the backend (where it says when) to its being stored.
        self.detection = Histogram()

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
            # Afresh for a later run; a stop() asked before this run began was kept.
            self._stop = trio.Event()

    async def _run(self, task_status: trio.TaskStatus[Monitor]) -> None:
        self._last_seq = await self.store.last_seq()
        await self._load()
        send, receive = trio.open_memory_channel[Report](self._queue_size)
        self._receive = receive
        async with trio.open_nursery() as root:
            root.start_soon(self._writer, receive)
            async with send, trio.open_nursery() as backends:
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
                runner.load(_ref(record.id, record.backend_id, record.status, record.native_status))
                self._seen_id = max(self._seen_id, record.id)
        known = set(self._runners)
        orphans = [j.id for j in await self.store.active_jobs() if j.backend not in known]
        if orphans:
            log.warning(
                "%d active jobs belong to backends not configured here; left alone", len(orphans)
            )

    # -- the writer ------------------------------------------------------------------------

    async def _writer(self, receive: trio.MemoryReceiveChannel[Report]) -> None:
        """Apply reports in batches until every sender has closed.

        Cancelled: what is already in the channel is written under a shielded scope.
        """
        async with receive:
            try:
                async for first in receive:
                    batch = [first]
                    while len(batch) < self._batch_size:
                        try:
                            batch.append(receive.receive_nowait())
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                    with trio.CancelScope(shield=True):
                        await self._apply(batch)
            finally:
                with trio.move_on_after(1.0, shield=True):
                    rest = []
                    with contextlib.suppress(trio.WouldBlock, trio.EndOfChannel):
                        while True:
                            rest.append(receive.receive_nowait())
                    if rest:
                        await self._apply(rest)

    async def _apply(self, reports: list[Report]) -> None:
        transitions: list[Transition] = []
        owners: list[tuple[BackendRunner, float, float | None]] = []
        pending: dict[int, tuple[Status, str | None]] = {}
        for report in reports:
            runner, update = report.runner, report.update
            ref = runner.jobs.get(update.job)
            if ref is None:
                continue  # finished, untracked or killed since the call started
            if report.observed < runner.observed.get(update.job, -math.inf):
                self._out_of_order += 1
                continue
            status, native = pending.get(ref.id, (ref.status, ref.native_status))
            target = update.status
            if target == Status.COMPLETED and runner.backend.finalises and not report.finalised:
                target = Status.COMPLETING
            if target == status and update.native_status == native:
                continue
            if not can_transition(status, target):
                self._illegal += 1
                log.warning(
                    "backend %s: job %d: refused %s -> %s (%s)",
                    runner.name,
                    ref.id,
                    status,
                    target,
                    update.reason or "no reason given",
                    extra={"backend": runner.name, "job": ref.id},
                )
                continue
            transitions.append(
                Transition(
                    ref.id, status, target, update.native_status, update.reason, update.details
                )
            )
            owners.append((runner, report.observed, update.changed))
            pending[ref.id] = (target, update.native_status)
        if not transitions:
            return
        outcomes = await self.store.apply(transitions)
        stored_at = time.time()
        self._batches += 1
        for t, (runner, observed, changed), outcome in zip(
            transitions, owners, outcomes, strict=True
        ):
            tracked = runner.jobs.get(t.job)
            if tracked is None:
                continue  # untracked or killed while the batch was being written
            if outcome is Outcome.APPLIED:
                self._applied += 1
                if changed is not None:
                    self.detection.observe(stored_at - changed)
                runner.observed[t.job] = observed
                self._stored(runner, _ref(t.job, tracked.backend_id, t.new, t.native_status))
            elif outcome is Outcome.STALE:
                # Someone else (a CLI, Ganga) changed the job: believe the store.
                record = await self.store.get(t.job)
                self._stored(
                    runner, _ref(t.job, record.backend_id, record.status, record.native_status)
                )
            elif outcome is Outcome.UNKNOWN_JOB:
                runner.discard(t.job)
        await self._publish()

    def _stored(self, runner: BackendRunner, ref: JobRef) -> None:
        if ref.id not in runner.jobs:
            return  # untracked meanwhile
        if ref.status in ACTIVE:
            runner.replace(ref)
        else:
            runner.discard(ref.id)

    async def _publish(self) -> None:
        entries = await self.store.journal(after=self._last_seq)
        # The writer, track and kill all publish: another may have delivered some of these
        # during the await. Nothing awaits from here on, so each entry goes out once, in order.
        entries = [e for e in entries if e.seq > self._last_seq]
        if not entries:
            return
        self._last_seq = entries[-1].seq
        for entry in entries:
            for subscription in list(self._subscribers):
                if not subscription.offer(entry):
                    self._subscribers.discard(subscription)
            for callback in self._callbacks:
                try:
                    callback(entry)
                except Exception:
                    log.exception("change callback %r failed on %s", callback, entry)
            for statuses, event in self._waiters.get(entry.job, ()):
                if entry.new in statuses:
                    event.set()

    # -- for callers -----------------------------------------------------------------------

    async def track(self, jobs: Sequence[NewJob]) -> list[int]:
        """Store new jobs and start monitoring the active ones at once (not at the next sweep);
        return their ids, in order.

        An active job whose backend already monitors one under the same backend id (tracked
        before, or earlier in `jobs`) is not stored again: its id is that job's, and it is
        polled or watched once (a parent named by its future id counts only the jobs stored).
        Raises `ValueError` naming a backend this monitor does not run; nothing is stored then.
        """
        for job in jobs:
            if job.backend not in self._runners:
                raise ValueError(
                    f"unknown backend {job.backend!r} (configured: {', '.join(self._runners)})"
                )
        ids: list[int] = [0] * len(jobs)
        stored: list[int] = []  # positions in `jobs` of the jobs to store
        first: dict[tuple[str, str], int] = {}  # position of each active job to store
        repeats: list[tuple[int, int]] = []  # (position, position of the same job earlier)
        for position, job in enumerate(jobs):
            if job.status in ACTIVE and job.backend_id:
                known = self._runners[job.backend].tracking(job.backend_id)
                if known is not None:
                    ids[position] = known
                    continue
                key = (job.backend, job.backend_id)
                if key in first:
                    repeats.append((position, first[key]))
                    continue
                first[key] = position
            stored.append(position)
        new_ids = await self.store.add_jobs([jobs[p] for p in stored])
        for position, job_id in zip(stored, new_ids, strict=True):
            ids[position] = job_id
            job = jobs[position]
            if job.status in ACTIVE and job.backend_id is not None:
                self._runners[job.backend].add(
                    _ref(job_id, job.backend_id, job.status, job.native_status)
                )
        for position, earlier in repeats:
            ids[position] = ids[earlier]
        await self._publish()
        return ids

    async def load_new(self) -> int:
        """Start monitoring the active jobs that another process (`gangamon track`, Ganga)
        added to the store since the last look; return how many. Cancelled: the ones seen so
        far are monitored, the rest are found by the next call."""
        found = 0
        for record in await self.store.jobs(statuses=ACTIVE, after=self._seen_id):
            self._seen_id = record.id
            runner = self._runners.get(record.backend)
            if runner is None or record.id in runner.jobs or record.id in self._untracked:
                continue
            if record.backend_id:
                runner.add(_ref(record.id, record.backend_id, record.status, record.native_status))
                found += 1
        return found

    def untrack(self, jobs: Collection[int]) -> None:
        """Stop monitoring these jobs in this run; their work is cancelled, the store kept."""
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
        keeps its end. `GangamonError` if the store refuses the move.
        """
        for runner in self._runners.values():
            ref = runner.jobs.get(job)
            if ref is not None:
                break
        else:
            raise UnknownJob(job)
        runner.discard(job)
        try:
            await runner.kill(ref)
        except BaseException:
            runner.add(ref)  # not killed after all: keep watching it
            raise
        status, outcome = ref.status, Outcome.STALE
        for _ in range(_KILL_ATTEMPTS):
            [outcome] = await self.store.apply(
                [Transition(job, status, Status.KILLED, reason="killed")]
            )
            if outcome is not Outcome.STALE:
                break
            status = (await self.store.get(job)).status
            if status not in ACTIVE:
                log.info("job %d ended %s before its kill took effect", job, status.value)
                outcome = Outcome.UNCHANGED
                break
        await self._publish()
        if outcome not in (Outcome.APPLIED, Outcome.UNCHANGED):
            raise GangamonError(
                f"job {job}: killed at its backend, but the store refused {status.value} -> "
                f"killed ({outcome.value})"
            )

    async def wait_for(
        self,
        job: int,
        statuses: Collection[Status],
        timeout: float = math.inf,  # noqa: ASYNC109 - the caller's bound, part of the API
    ) -> Status:
        """Wait until `job` is in one of `statuses`; return that status.

        Raises `UnknownJob`, or `TimeoutError` after `timeout` seconds.
        """
        wanted = frozenset(statuses)
        event = trio.Event()
        entry = (wanted, event)
        self._waiters.setdefault(job, []).append(entry)
        current: Status | None = None
        try:
            current = (await self.store.get(job)).status
            if current in wanted:
                return current
            with trio.fail_after(timeout):
                await event.wait()
            return (await self.store.get(job)).status
        except trio.TooSlowError:
            raise TimeoutError(
                f"job {job} not in {sorted(s.value for s in wanted)} after {timeout} s"
                f" (now {current})"
            ) from None
        finally:
            self._waiters[job].remove(entry)
            if not self._waiters[job]:
                del self._waiters[job]

    @contextlib.asynccontextmanager
    async def changes(self, buffer: int = 10_000) -> AsyncIterator[Subscription]:
        """The journal entries written from now on, as an async iterator:
        `async with monitor.changes() as changes: async for entry in changes: ...`

        A subscriber more than `buffer` entries behind is dropped; its iteration then raises
        `SubscriberLagged`, naming the last seq it got, so it can resume from the store.
        """
        subscription = Subscription(buffer)
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)
            subscription.close()

    def on_change(self, callback: Callable[[JournalEntry], object]) -> None:
        """Call `callback(entry)` in the writer after each commit. It must not block."""
        self._callbacks.append(callback)

    def statistics(self) -> MonitorStatistics:
        return MonitorStatistics(
            backends={name: r.statistics() for name, r in self._runners.items()},
            queue_depth=(self._receive.statistics().current_buffer_used if self._receive else 0),
            batches=self._batches,
            applied=self._applied,
            illegal=self._illegal,
            out_of_order=self._out_of_order,
            subscribers=len(self._subscribers),
        )


@contextlib.asynccontextmanager
async def open_monitor(
    store: Store | AsyncStore,
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


def _ref(job: int, backend_id: str | None, status: Status, native: str | None) -> JobRef:
    return JobRef(job, backend_id or "", status, native)
