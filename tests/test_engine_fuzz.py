"""Hypothesis drives a live Monitor over several fake grids with random faults, while jobs
are tracked (several calls at once), killed and untracked, and a subscriber and a callback
follow the journal.

The monitor runs in a trio loop behind an anyio blocking portal with a MockClock that moves
only when a rule says so; each rule then waits until every task is blocked again.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import anyio.from_thread
import trio
import trio.testing
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gangamon import (
    AsyncStore,
    JobRef,
    Monitor,
    NewJob,
    Status,
    Store,
    UnknownJob,
    Update,
    can_transition,
)

from .fakes import FakeGrid

S = Status
GRIDS = ("dirac", "slurm", "condor")
TERMINAL = (S.COMPLETED, S.FAILED, S.KILLED)
INTERVAL, DEADLINE, LATENCY = 10.0, 5.0, 1.0
#: Virtual seconds within which a kill must be done, however many polls hang before it.
KILL_PATIENCE = 20 * DEADLINE
FAULTS = ("fail_polls", "hang_polls", "garbage_polls", "duplicate_polls", "stranger_polls")


class UnrulyGrid(FakeGrid):
    """A FakeGrid that also answers twice for a job or about jobs nobody asked for."""

    def __init__(self, name: str) -> None:
        super().__init__(
            name,
            latency=LATENCY,
            poll_interval=INTERVAL,
            call_deadline=DEADLINE,
            chunk_size=3,
            concurrency=2,
        )
        self.duplicate_polls = 0
        self.stranger_polls = 0

    async def poll(self, jobs: Any) -> Any:
        updates = list(await super().poll(jobs))
        if self.duplicate_polls and updates:
            self.duplicate_polls -= 1
            updates = [Update(updates[0].job, S.RUNNING), *updates]  # an older word first
        if self.stranger_polls:
            self.stranger_polls -= 1
            updates.append(Update(123_456_789, S.COMPLETED))
        return updates

    async def kill(self, job: JobRef) -> None:
        await trio.sleep(LATENCY)
        if self.truth.get(job.backend_id) not in TERMINAL:
            self.truth[job.backend_id] = S.KILLED


class MonitorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="gangamon-fuzz-"))
        self.store = Store(self.dir / "jobs.sqlite")
        self.grids = {name: UnrulyGrid(name) for name in GRIDS}
        self.clock = trio.testing.MockClock()
        self._portal_cm = anyio.from_thread.start_blocking_portal(
            "trio", backend_options={"clock": self.clock}
        )
        self.portal = self._portal_cm.__enter__()
        self.monitor = Monitor(AsyncStore(self.store, in_thread=False), list(self.grids.values()))
        #: The seqs each follower of the journal was given, in the order given.
        self.called: list[int] = []
        self.delivered: list[int] = []
        self.monitor.on_change(lambda entry: self.called.append(entry.seq))
        self.run_future = self.portal.start_task_soon(self.monitor.run)
        self._settle()
        self.subscriber = self.portal.start_task_soon(self._follow)
        self._settle()
        self.jobs: dict[int, tuple[str, str]] = {}  # id -> (grid, backend id)
        #: Jobs killed or untracked: the grid's last word need not be the store's.
        self.let_go: set[int] = set()

    async def _follow(self) -> None:
        async with self.monitor.changes() as changes:
            async for entry in changes:
                self.delivered.append(entry.seq)

    def _settle(self) -> None:
        self.portal.call(trio.testing.wait_all_tasks_blocked)

    def _advance(self, seconds: float) -> None:
        # Small steps, so that timers fire in order rather than all at once.
        steps = max(1, int(seconds / LATENCY))
        for _ in range(steps):
            self.portal.call(self.clock.jump, seconds / steps)
            self._settle()

    @rule(grid=st.sampled_from(GRIDS), sizes=st.lists(st.integers(1, 4), min_size=1, max_size=3))
    def track(self, grid: str, sizes: list[int]) -> None:
        base = len(self.jobs)
        calls: list[list[NewJob]] = []
        for size in sizes:
            calls.append([NewJob(grid, f"{grid}-{base + i}", S.SUBMITTED) for i in range(size)])
            base += size
        ids: list[list[int]] = [[] for _ in calls]

        async def track_at_once() -> None:
            async def one(i: int) -> None:
                ids[i] = await self.monitor.track(calls[i])

            async with trio.open_nursery() as nursery:
                for i in range(len(calls)):
                    nursery.start_soon(one, i)

        self.portal.call(track_at_once)
        for new, got in zip(calls, ids, strict=True):
            for job_id, job in zip(got, new, strict=True):
                assert job.backend_id is not None
                self.jobs[job_id] = (grid, job.backend_id)
        self._settle()

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def kill(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(sorted(self.jobs)))
        future = self.portal.start_task_soon(self.monitor.kill, job)
        # The kill waits its turn at the backend's limiter, which hung polls may hold for a
        # deadline each.
        waited = 0.0
        while not future.done() and waited < KILL_PATIENCE:
            self._advance(LATENCY)
            waited += LATENCY
        try:
            future.result(timeout=5)
        except UnknownJob:
            return  # ended or untracked already: no backend monitors it
        self.let_go.add(job)
        assert self.store.get(job).status in TERMINAL

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def untrack(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(sorted(self.jobs)))
        self.portal.call(self.monitor.untrack, [job])
        self.let_go.add(job)
        self._settle()

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), status=st.sampled_from([S.SUBMITTED, S.RUNNING, *TERMINAL]))
    def grid_changes(self, data: st.DataObject, status: Status) -> None:
        job = data.draw(st.sampled_from(sorted(self.jobs)))
        grid, backend_id = self.jobs[job]
        if self.grids[grid].truth.get(backend_id) in TERMINAL:
            return  # a grid does not bring a finished job back
        self.grids[grid].truth[backend_id] = status

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def grid_forgets(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(sorted(self.jobs)))
        grid, backend_id = self.jobs[job]
        if self.grids[grid].truth.get(backend_id) not in TERMINAL:
            self.grids[grid].truth.pop(backend_id, None)  # missing from answers for a while

    @rule(
        grid=st.sampled_from(GRIDS),
        fault=st.sampled_from(FAULTS),
        count=st.integers(1, 3),
    )
    def fault(self, grid: str, fault: str, count: int) -> None:
        setattr(self.grids[grid], fault, getattr(self.grids[grid], fault) + count)

    @rule(
        grid=st.sampled_from(GRIDS),
        latencies=st.lists(st.sampled_from([0.1, 3.0, 8.0]), max_size=4),
    )
    def uneven_latency(self, grid: str, latencies: list[float]) -> None:
        self.grids[grid].latencies.extend(latencies)  # slow calls answer after fast ones

    @rule(seconds=st.sampled_from([0.5, 3.0, 10.0, 25.0]))
    def time_passes(self, seconds: float) -> None:
        self._advance(seconds)

    @invariant()
    def limiter_bounds_held(self) -> None:
        for grid in self.grids.values():
            assert grid.peak <= grid.settings.concurrency

    @invariant()
    def journal_is_legal_and_replays_to_the_job_table(self) -> None:
        entries = self.store.journal()
        last: dict[int, Status] = {}
        for e in entries:
            assert e.old is None or can_transition(e.old, e.new), e
            assert e.old == last.get(e.job), e  # each move starts where the last one ended
            last[e.job] = e.new
        assert last == {job.id: job.status for job in self.store.jobs()}

    @invariant()
    def every_entry_reaches_each_follower_once_in_order(self) -> None:
        seqs = [e.seq for e in self.store.journal()]
        assert self.called == seqs
        assert self.delivered == seqs

    def teardown(self) -> None:
        try:
            for fake in self.grids.values():
                for fault in FAULTS:
                    setattr(fake, fault, 0)
                fake.latencies.clear()
            # Faults have stopped: within one (backed-off) interval plus one deadline, every
            # job a grid reports finished is finished in the store, with the grid's status.
            longest = max(
                g.settings.poll_interval * g.settings.max_backoff for g in self.grids.values()
            )
            self._advance(longest + DEADLINE + LATENCY)
            for job, (name, backend_id) in self.jobs.items():
                truth = self.grids[name].truth.get(backend_id)
                if truth in TERMINAL and job not in self.let_go:
                    assert self.store.get(job).status == truth, (job, truth)
            self.portal.call(self.monitor.stop)
            self._advance(DEADLINE)
            self.run_future.result(timeout=5)
            self.subscriber.cancel()
            for fake in self.grids.values():
                assert fake.in_flight == 0  # nothing left running after stop
        finally:
            if not self.run_future.done():
                self.run_future.cancel()
            self._portal_cm.__exit__(None, None, None)
            self.store.close()
            shutil.rmtree(self.dir)


TestMonitor = MonitorMachine.TestCase
