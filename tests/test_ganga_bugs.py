"""Ganga 8.7.12's monitoring bugs A-D (reference/ganga.md §6), each shown impossible here."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from gangamon import AsyncStore, Monitor, NewJob, Status, Store

from .fakes import FakeGrid

S = Status


@pytest.fixture
def store(tmp_path: Path) -> AsyncStore:
    return AsyncStore(Store(tmp_path / "jobs.sqlite"), in_thread=False)


async def test_a_two_backends_active_together_are_both_monitored(
    store: AsyncStore, autojump_clock: trio.testing.MockClock
) -> None:
    # Ganga polls only the backend of the last job its scan saw.
    local, pbs = FakeGrid("local"), FakeGrid("pbs")
    await store.add_jobs([NewJob("local", "l0", S.SUBMITTED), NewJob("pbs", "p0", S.SUBMITTED)])
    monitor = Monitor(store, [local, pbs])
    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        t0 = trio.current_time()
        # Two more backends' worth of jobs becoming active in one call.
        await monitor.track([NewJob("local", "l1", S.SUBMITTED), NewJob("pbs", "p1", S.SUBMITTED)])
        await trio.sleep(25)
        monitor.stop()
    for grid, prefix in ((local, "l"), (pbs, "p")):
        assert grid.poll_starts == [t0, t0, t0 + 10, t0 + 20]  # first sweep, prompt poll, ...
        assert grid.polled_ids[:3] == [[f"{prefix}0"], [f"{prefix}1"], [f"{prefix}0", f"{prefix}1"]]


async def test_b_stop_start_cycles_never_multiply_polling(
    store: AsyncStore, autojump_clock: trio.testing.MockClock
) -> None:
    # Ganga adds a scan chain per disable/enable or runMonitoring() call.
    grid = FakeGrid()
    await store.add_jobs([NewJob("grid", "g0", S.SUBMITTED)])
    monitor = Monitor(store, [grid])
    for cycle in range(5):
        before = len(grid.poll_starts)
        async with trio.open_nursery() as nursery:
            t0 = trio.current_time()
            await nursery.start(monitor.run)
            # runMonitoring-style calls while running add jobs, never sweeps.
            await monitor.track([NewJob("grid", f"x{cycle}", S.SUBMITTED)])
            await trio.sleep(35)
            monitor.stop()
        # One sweep per interval, whatever happened before, and the prompt poll of the job
        # tracked at t0.
        assert grid.poll_starts[before:] == [t0, t0, t0 + 10, t0 + 20, t0 + 30]


async def test_c_finished_jobs_are_never_processed_again(
    store: AsyncStore, autojump_clock: trio.testing.MockClock
) -> None:
    # Ganga, with a poll rate below its 2 s scan, completes finished jobs again (s -> s,
    # hooks rerun). Here a finished job leaves the poll set, and a repeat is not a change.
    grid = FakeGrid(poll_interval=0.5, latency=0.1)
    [job] = await store.add_jobs([NewJob("grid", "g0", S.RUNNING)])
    grid.truth["g0"] = S.COMPLETED
    async with trio.open_nursery() as nursery:
        monitor = await nursery.start(Monitor(store, [grid]).run)
        await trio.sleep(10)
        monitor.stop()
    assert grid.polled_ids == [["g0"]]
    assert [e.new for e in await store.journal(job=job)] == [S.RUNNING, S.COMPLETED]


def _task_count(task: trio.lowlevel.Task | None) -> int:
    assert task is not None
    return 1 + sum(_task_count(t) for n in task.child_nurseries for t in n.child_tasks)


async def test_d_nothing_piles_up_over_many_polls(
    store: AsyncStore, autojump_clock: trio.testing.MockClock
) -> None:
    # Ganga keeps one timer handle per poll until teardown.
    grid = FakeGrid(poll_interval=1.0, latency=0.1)
    await store.add_jobs([NewJob("grid", str(i), S.RUNNING) for i in range(10)])
    async with trio.open_nursery() as nursery:
        monitor = await nursery.start(Monitor(store, [grid]).run)
        await trio.sleep(5.5)
        early = _task_count(trio.lowlevel.current_root_task())
        await trio.sleep(5000)
        late = _task_count(trio.lowlevel.current_root_task())
        monitor.stop()
    assert len(grid.poll_starts) > 5000
    assert late == early
