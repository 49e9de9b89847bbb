"""The runner's parts on their own: the table of tracked jobs, the backoff policy, the
sweeper and the per-job tasks."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from typing import Any

import trio
import trio.testing
from hypothesis import given, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gangamon import JobRef, Status
from gangamon._backoff import backoff
from gangamon._jobtable import JobTable
from gangamon._jobtasks import FINALISE_ATTEMPTS, JobTasks
from gangamon._outbox import Outbox, Report
from gangamon._sweeper import Sweeper
from gangamon.backends import BackendError, Update

from .fakes import FakeGrid

IDS = st.integers(1, 8)
BACKEND_IDS = st.sampled_from(["a", "b", "c", ""])


class TableMachine(RuleBasedStateMachine):
    """The table against a plain dict of what was put and not removed."""

    def __init__(self) -> None:
        super().__init__()
        self.table = JobTable()
        self.model: dict[int, JobRef] = {}

    @rule(job=IDS, backend_id=BACKEND_IDS, status=st.sampled_from(list(Status)))
    def put(self, job: int, backend_id: str, status: Status) -> None:
        ref = JobRef(job, backend_id, status, None)
        self.table.put(ref)
        self.model[job] = ref

    @rule(job=IDS, when=st.floats(0, 100))
    def observe(self, job: int, when: float) -> None:
        if job in self.table:
            self.table.observed[job] = when

    @rule(job=IDS)
    def remove(self, job: int) -> None:
        assert self.table.remove(job) == self.model.pop(job, None)
        assert job not in self.table.observed

    @invariant()
    def same_jobs(self) -> None:
        assert len(self.table) == len(self.model)
        assert {r.id: r for r in self.table.values()} == self.model
        assert all(self.table.get(j) == r for j, r in self.model.items())

    @invariant()
    def counts_are_a_recount(self) -> None:
        assert self.table.by_status() == dict(Counter(r.status for r in self.model.values()))

    @invariant()
    def backend_ids_name_a_job_tracked_under_them(self) -> None:
        for backend_id in ("a", "b", "c"):
            found = self.table.tracking(backend_id)
            holders = {j for j, r in self.model.items() if r.backend_id == backend_id}
            if found is None:
                assert not holders
            else:
                assert found in holders
        assert self.table.tracking("") is None  # masters have no backend id


TestJobTable = TableMachine.TestCase


@given(
    first=st.floats(0.01, 10),
    most=st.floats(0.01, 100),
    attempts=st.integers(1, 40),
    share=st.floats(0.5, 1.0),
)
def test_backoff_doubles_from_first_up_to_most_scaled_by_its_share(
    first: float, most: float, attempts: int, share: float
) -> None:
    waits = [backoff(a, first, most) for a in range(1, attempts + 1)]
    assert waits[0] == min(first, most)
    assert all(b == min(a * 2, most) for a, b in itertools.pairwise(waits))
    assert all(w <= most for w in waits)
    assert backoff(attempts, first, most, share) == waits[-1] * share


# -- the sweeper and the per-job tasks, without a monitor ----------------------------------


def outbox_on(table: JobTable, name: str = "grid", buffer: int = 100) -> tuple[Outbox, Any]:
    outbox = Outbox(name, table)
    outbox.send, receive = trio.open_memory_channel[Report](buffer)
    return outbox, receive


async def test_a_sweep_sends_only_what_changed(autojump_clock: trio.testing.MockClock) -> None:
    grid = FakeGrid(latency=0.5)
    table = JobTable()
    for i, status in enumerate([Status.SUBMITTED, Status.RUNNING]):
        table.put(JobRef(i + 1, f"grid-{i}", status, status.value.title()))
    grid.truth.update({"grid-0": Status.RUNNING, "grid-1": Status.RUNNING})
    outbox, receive = outbox_on(table)
    sweeper = Sweeper(grid, table, outbox)
    stopped = trio.Event()
    async with trio.open_nursery() as nursery:
        t0 = trio.current_time()
        await sweeper.run(nursery, stopped)
        report = await receive.receive()
        stopped.set()
        sweeper.wake()
    assert (report.update.job, report.update.status, report.observed) == (1, Status.RUNNING, t0)
    assert receive.statistics().current_buffer_used == 0  # job 2 was unchanged
    assert (outbox.counts.calls, outbox.counts.last_poll_latency) == (1, 0.5)


async def finalised(grid: FakeGrid) -> tuple[Report, float, Outbox]:
    """What finalising one completing job of `grid` reported, how long it took, the outbox."""
    table = JobTable()
    outbox, receive = outbox_on(table)
    tasks = JobTasks(grid, outbox)
    async with trio.open_nursery() as nursery:
        tasks.open(nursery)
        t0 = trio.current_time()
        tasks.start(JobRef(1, "grid-0", Status.COMPLETING, "Done"))
        report = await receive.receive()
    return report, trio.current_time() - t0, outbox


async def test_a_finaliser_retries_with_backoff_then_fails_the_job_with_the_reason(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class Failing(FakeGrid):
        async def finalise(self, job: JobRef) -> Update:
            self.finalised.append(job.id)
            raise RuntimeError("no output")

    grid = Failing(finalises=True, restart_delay=1.0)
    report, elapsed, outbox = await finalised(grid)
    assert len(grid.finalised) == FINALISE_ATTEMPTS
    assert elapsed == 2 + 4 + 8 + 16  # the backoff before attempts 2..5
    assert report.finalised
    assert report.update.status == Status.FAILED
    assert report.update.reason == "finalisation failed: RuntimeError: no output"
    assert outbox.counts.errors == FINALISE_ATTEMPTS


class Flaky(FakeGrid):
    """Finalisation fails on the connection `failures` times, then downloads."""

    def __init__(self, failures: float, **settings: float) -> None:
        super().__init__("grid", finalises=True, **settings)
        self.failures = failures
        self.finalising = self.peak_finalising = 0

    async def finalise(self, job: JobRef) -> Update:
        self.finalised.append(job.id)
        if len(self.finalised) <= self.failures:
            raise BackendError("SandboxStore at https://dirac: ConnectError: refused")
        self.finalising += 1
        self.peak_finalising = max(self.peak_finalising, self.finalising)
        try:
            await trio.sleep(self.latency)
        finally:
            self.finalising -= 1
        return Update(job.id, Status.COMPLETED, "Done", "output downloaded")


async def test_a_done_job_outlives_a_long_outage_of_its_download_and_completes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Five failures in a minute failed it for good, whatever the cause.
    grid = Flaky(failures=40, restart_delay=1.0, latency=0.0)
    report, elapsed, outbox = await finalised(grid)
    assert len(grid.finalised) == 41
    assert 5 * 3600 < elapsed < 24 * 3600  # waits of at most 10 min
    assert report.update.status == Status.COMPLETED
    assert (outbox.counts.errors, outbox.counts.finalised) == (40, 1)


async def test_finalisations_waiting_to_retry_and_given_up_are_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    grid = Flaky(failures=math.inf, restart_delay=1.0, latency=0.0, finalise_retry_limit=3600.0)
    outbox, receive = outbox_on(JobTable())
    tasks = JobTasks(grid, outbox)
    async with trio.open_nursery() as nursery:
        tasks.open(nursery)
        for job in (1, 2):
            tasks.start(JobRef(job, f"grid-{job}", Status.COMPLETING, "Done"))
        await trio.sleep(60)
        assert (tasks.retrying(), outbox.counts.finalise_failed) == (2, 0)
        reports = [await receive.receive() for _ in range(2)]
    assert [r.update.status for r in reports] == [Status.FAILED] * 2
    assert (tasks.retrying(), outbox.counts.finalise_failed) == (0, 2)
    assert outbox.counts.finalised == 0


async def test_a_download_failing_past_the_retry_limit_fails_the_job_with_the_reason(
    autojump_clock: trio.testing.MockClock,
) -> None:
    grid = Flaky(failures=math.inf, restart_delay=1.0, latency=0.0, finalise_retry_limit=3600.0)
    report, elapsed, _ = await finalised(grid)
    assert 3600 <= elapsed < 3600 + 600
    assert report.update.status == Status.FAILED
    assert report.update.reason == (
        "finalisation failed: BackendError: SandboxStore at https://dirac: ConnectError: refused"
    )


async def test_a_finalisation_past_its_deadline_is_retried_as_a_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # It raised UnboundLocalError (no update yet) and crashed the backend.
    grid = FakeGrid(finalises=True, latency=10.0, call_deadline=5.0, restart_delay=1.0)
    table = JobTable()
    outbox, receive = outbox_on(table)
    tasks = JobTasks(grid, outbox)
    async with trio.open_nursery() as nursery:
        tasks.open(nursery)
        tasks.start(JobRef(1, "grid-0", Status.COMPLETING, "Done"))
        await trio.sleep(5.5)  # the first try has passed its deadline
        grid.latency = 1.0
        report = await receive.receive()
    assert report.update.status == Status.COMPLETED
    assert (outbox.counts.timeouts, outbox.counts.finalised) == (1, 1)


async def test_finalisations_waiting_for_their_turn_or_a_retry_are_not_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # 20,000 jobs ending at once after an outage held a task each while they waited (about
    # 3.5 KB apiece): resident memory that stayed after the queue had drained.
    grid = Flaky(failures=300, restart_delay=1.0, latency=0.5, finalise_concurrency=4)
    outbox, receive = outbox_on(JobTable(), buffer=1000)
    tasks = JobTasks(grid, outbox)
    jobs = [JobRef(i, f"grid-{i}", Status.COMPLETING, "Done") for i in range(1, 501)]
    most = 0
    async with trio.open_nursery() as nursery:
        inner = await nursery.start(_open_tasks, tasks)
        for job in jobs:
            tasks.start(job)
        reports: list[Report] = []
        while len(reports) < len(jobs):
            most = max(most, len(inner.child_tasks))
            reports.append(await receive.receive())
        nursery.cancel_scope.cancel()
    assert most <= 4 + 1  # the tries running and the dispatcher
    assert {r.update.job for r in reports} == {j.id for j in jobs}
    assert all(r.finalised and r.update.status == Status.COMPLETED for r in reports)
    assert outbox.counts.errors == 300  # every first try failed, then each one once more
    assert grid.peak_finalising <= 4


async def _open_tasks(tasks: JobTasks, *, task_status: trio.TaskStatus[trio.Nursery]) -> None:
    async with trio.open_nursery() as nursery:
        tasks.open(nursery)
        task_status.started(nursery)
        await trio.sleep_forever()


async def test_a_cancelled_job_task_sends_nothing(autojump_clock: trio.testing.MockClock) -> None:
    grid = FakeGrid(finalises=True, latency=5.0)
    table = JobTable()
    outbox, receive = outbox_on(table)
    tasks = JobTasks(grid, outbox)
    async with trio.open_nursery() as nursery:
        tasks.open(nursery)
        tasks.start(JobRef(1, "grid-0", Status.COMPLETING, "Done"))
        tasks.start(JobRef(1, "grid-0", Status.COMPLETING, "Done"))  # runs already: once
        await trio.sleep(1)
        assert tasks.finalise_limiter.borrowed_tokens == 1
        tasks.cancel(1)
    assert grid.finalised == []
    assert receive.statistics().current_buffer_used == 0
