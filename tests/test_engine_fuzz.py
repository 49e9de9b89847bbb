"""Hypothesis drives a live Monitor over several fake grids with random faults.

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

from gangamon import AsyncStore, Monitor, NewJob, Status, Store, Update, can_transition

from .fakes import FakeGrid

S = Status
GRIDS = ("dirac", "slurm", "condor")
TERMINAL = (S.COMPLETED, S.FAILED, S.KILLED)
INTERVAL, DEADLINE, LATENCY = 10.0, 5.0, 1.0
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
        self.run_future = self.portal.start_task_soon(self.monitor.run)
        self._settle()
        self.jobs: dict[int, tuple[str, str]] = {}  # id -> (grid, backend id)

    def _settle(self) -> None:
        self.portal.call(trio.testing.wait_all_tasks_blocked)

    def _advance(self, seconds: float) -> None:
        # Small steps, so that timers fire in order rather than all at once.
        steps = max(1, int(seconds / LATENCY))
        for _ in range(steps):
            self.portal.call(self.clock.jump, seconds / steps)
            self._settle()

    @rule(grid=st.sampled_from(GRIDS), n=st.integers(1, 4))
    def track(self, grid: str, n: int) -> None:
        base = len(self.jobs)
        new = [NewJob(grid, f"{grid}-{base + i}", S.SUBMITTED) for i in range(n)]
        ids = self.portal.call(self.monitor.track, new)
        for job_id, job in zip(ids, new, strict=True):
            assert job.backend_id is not None
            self.jobs[job_id] = (grid, job.backend_id)
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
    def journal_is_legal_without_gap(self) -> None:
        entries = self.store.journal()
        assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
        for e in entries:
            assert e.old is None or can_transition(e.old, e.new), e

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
                if truth in TERMINAL:
                    assert self.store.get(job).status == truth, (job, truth)
            self.portal.call(self.monitor.stop)
            self._advance(DEADLINE)
            self.run_future.result(timeout=5)
            for fake in self.grids.values():
                assert fake.in_flight == 0  # nothing left running after stop
        finally:
            if not self.run_future.done():
                self.run_future.cancel()
            self._portal_cm.__exit__(None, None, None)
            self.store.close()
            shutil.rmtree(self.dir)


TestMonitor = MonitorMachine.TestCase
