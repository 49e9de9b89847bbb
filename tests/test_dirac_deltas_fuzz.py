"""Hypothesis drives a live Monitor polling the simulator by deltas while DIRAC's clock jumps
against ours, replies are lost, jobs are submitted, change within the second of a cut and
are deleted: no change is missed for longer than one full sweep (and the slack of a
backed-off poll), and no job's statuses are stored out of DIRAC's order.

As in test_engine_fuzz: the monitor runs in a trio loop behind an anyio blocking portal, on a
MockClock that moves only when a rule says so.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import anyio.from_thread
import trio
import trio.testing
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gangamon import ACTIVE, AsyncStore, BackendSettings, Monitor, NewJob, Status, Store
from gangamon.backends.dirac import DiracBackend, DiracStatus as D
from gangamon.sim.dirac import DiracSim

from .dirac_inprocess import InProcessDirac

INTERVAL, FULL_SWEEP, DEADLINE, LATENCY, MARGIN = 10.0, 300.0, 20.0, 0.5, 5.0
MAX_BACKOFF = 4.0
#: How stale a stored status may be: a full sweep, plus a sweep backed off by lost replies
#: and its deadline, plus a step of the clock.
STALENESS = FULL_SWEEP + 2 * INTERVAL * MAX_BACKOFF + DEADLINE + 5.0


class DeltasMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # In memory where there is a tmpfs: every batch is a synced commit.
        shm = Path("/dev/shm")
        where = shm if shm.is_dir() else None
        self.dir = Path(tempfile.mkdtemp(prefix="gangamon-deltas-fuzz-", dir=where))
        self.store = Store(self.dir / "jobs.sqlite")
        self.clock = trio.testing.MockClock()
        self._portal_cm = anyio.from_thread.start_blocking_portal(
            "trio", backend_options={"clock": self.clock}
        )
        self.portal = self._portal_cm.__enter__()
        self.sim = DiracSim(seed=11, mean_runtime=400.0, clock=self.clock.current_time)
        self.transport = InProcessDirac(self.sim, latency=LATENCY)
        settings = BackendSettings(
            poll_interval=INTERVAL,
            full_sweep=FULL_SWEEP,
            call_deadline=DEADLINE,
            max_backoff=MAX_BACKOFF,
            chunk_size=5,  # more than 5 jobs: deltas
        )
        backend = DiracBackend(
            self.transport,
            output_dir=self.dir / "out",
            download_output=False,
            settings=settings,
            delta_margin=MARGIN,
        )
        self.monitor = Monitor(AsyncStore(self.store, in_thread=False), [backend])
        self.run_future = self.portal.start_task_soon(self.monitor.run)
        self._settle()
        self.jobs: dict[int, int] = {}  # gangamon id -> DIRAC id

    def _settle(self) -> None:
        self.portal.call(trio.testing.wait_all_tasks_blocked)

    def _advance(self, seconds: float) -> None:
        """Time passes to each timer's deadline in turn, so that they fire in order."""
        end = self.clock.current_time() + seconds
        while (left := end - self.clock.current_time()) > 0:
            due = self.portal.call(_seconds_to_next_deadline)
            self.portal.call(self.clock.jump, min(max(due, 1e-3), left))
            self._settle()

    def _track(self, dirac_ids: list[int]) -> None:
        new = [NewJob("dirac", str(i), Status.SUBMITTED) for i in dirac_ids]
        ids = self.portal.call(self.monitor.track, new)
        self.jobs.update(zip(ids, dirac_ids, strict=True))
        self._settle()

    @rule(n=st.integers(1, 12), runtime=st.sampled_from([30.0, 200.0, 900.0]))
    def submit(self, n: int, runtime: float) -> None:
        self._track(self.sim.submit(n, mean_runtime=runtime))

    @rule(offsets=st.lists(st.floats(0.0, 0.999), min_size=1, max_size=4))
    def change_within_one_second(self, offsets: list[float]) -> None:
        # Steps in the same whole second of DIRAC's clock, some on either side of a poll.
        now = self.clock.current_time()
        second = math.floor(self.sim.wall.epoch_seconds(now)) + 1
        start = self.sim.wall.server_time(second)
        steps = [(D.RECEIVED, "Job accepted"), (D.WAITING, "Pilot Agent Submission"),
                 (D.MATCHED, "Assigned"), (D.RUNNING, "Application")]  # fmt: skip
        times = [now, *sorted(start + o for o in offsets)]
        path = [(t, status, minor) for t, (status, minor) in zip(times, steps, strict=False)]
        self._track([self.sim.add_job(path)])

    @precondition(lambda self: bool(self.jobs))
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        self.sim.delete(data.draw(st.sampled_from(sorted(self.jobs.values()))))

    @rule(seconds=st.sampled_from([-600.0, -30.0, -3.0, -0.4, 0.7, 4.0, 45.0, 900.0]))
    def dirac_clock_jumps(self, seconds: float) -> None:
        self.sim.wall.skew += seconds

    @rule(count=st.integers(1, 2))
    def replies_lost(self, count: int) -> None:
        self.transport.lose += count

    @rule(seconds=st.sampled_from([0.5, 1.0, 4.0, 10.0, 30.0, 120.0]))
    def time_passes(self, seconds: float) -> None:
        self._advance(seconds)

    @invariant()
    def no_change_is_missed_for_longer_than_a_full_sweep(self) -> None:
        now = self.clock.current_time()
        for job in self.store.jobs(statuses=ACTIVE):  # a job over is no longer watched
            sim_job = self.sim.jobs[self.jobs[job.id]]
            if now - sim_job.submitted < STALENESS:
                continue
            # What DIRAC has said of the job since `now - STALENESS`: the store holds one.
            recent = {sim_job.state_at(now - STALENESS)[0].value}
            recent |= {s.value for t, s, _ in sim_job.path if now - STALENESS < t <= now}
            assert job.native_status in recent, (job, recent, now)

    @invariant()
    def statuses_are_stored_in_diracs_order(self) -> None:
        at: dict[int, int] = {}  # each job's place in its DIRAC path, so far
        for entry in self.store.journal():
            if entry.native_status is None:
                continue
            path = [s.value for _, s, _ in self.sim.jobs[self.jobs[entry.job]].path]
            since = at.get(entry.job, 0)
            # Later in DIRAC's path than the one stored before (or the same step).
            assert entry.native_status in path[since:], (entry, path, since)
            at[entry.job] = path.index(entry.native_status, since)

    def teardown(self) -> None:
        try:
            self.transport.lose = 0
            self._advance(STALENESS)
            self.no_change_is_missed_for_longer_than_a_full_sweep()
            self.portal.call(self.monitor.stop)
            self._advance(DEADLINE)
            self.run_future.result(timeout=5)
        finally:
            self._portal_cm.__exit__(None, None, None)
            self.store.close()
            shutil.rmtree(self.dir)


async def _seconds_to_next_deadline() -> float:
    return trio.lowlevel.current_statistics().seconds_to_next_deadline


TestDeltas = DeltasMachine.TestCase
# Each step moves a live monitor through virtual time: 25 steps an example reach every rule
# many times over the fuzz profile's 2,000 examples, in minutes.
# (Made at import: on top of the profile pytest has loaded, `fuzz`'s 2,000 examples included.)
TestDeltas.settings = settings(stateful_step_count=25)
