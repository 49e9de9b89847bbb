"""Blocking backends in real threads: hung calls never hold up stopping, nor pile up threads.

Real time here (threads and MockClock's autojump do not mix), bounded by fail_after.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import trio

from gangamon import (
    AsyncioBackend,
    BackendSettings,
    JobRef,
    Monitor,
    NewJob,
    Status,
    Store,
    ThreadedBackend,
    Update,
)

HUNG = 10
GRACE = 0.5


class HangingPoll:
    """A blocking poll that never returns until released: a DISET call to a dead server."""

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()

    def __call__(self, jobs: Sequence[JobRef]) -> Sequence[Update]:
        self.entered.release()
        self.release.wait()
        return []


async def test_stop_is_bounded_with_ten_calls_hung_and_threads_do_not_pile_up(
    tmp_path: Path,
) -> None:
    poll = HangingPoll()
    settings = BackendSettings(
        poll_interval=0.05, chunk_size=1, concurrency=HUNG, call_deadline=3600.0
    )
    backend = ThreadedBackend("legacy", poll, settings)
    store = Store(tmp_path / "jobs.sqlite")
    store.add_jobs([NewJob("legacy", str(i), Status.RUNNING) for i in range(HUNG * 3)])
    monitor = Monitor(store, [backend], grace=GRACE)
    baseline = threading.active_count()
    try:
        for cycle in range(3):
            async with trio.open_nursery() as nursery:
                await nursery.start(monitor.run)
                if cycle == 0:
                    for _ in range(HUNG):  # wait until ten calls are really blocked
                        await trio.to_thread.run_sync(poll.entered.acquire)
                assert backend.threads.borrowed_tokens == HUNG
                started = trio.current_time()
                monitor.stop()
            stop_took = trio.current_time() - started
            assert stop_took < GRACE + 1.0, f"stop took {stop_took:.2f} s"
            # The hung threads are the only ones added: no new thread per cycle. (+2: the
            # store's worker and the waiter above may each hold one cached thread.)
            assert threading.active_count() <= baseline + HUNG + 2
    finally:
        poll.release.set()


async def test_threaded_backend_reports_through_the_engine(tmp_path: Path) -> None:
    def poll(jobs: Sequence[JobRef]) -> Sequence[Update]:
        return [Update(j.id, Status.COMPLETED, "Done") for j in jobs]

    store = Store(tmp_path / "jobs.sqlite")
    monitor = Monitor(store, [ThreadedBackend("legacy", poll)])
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(monitor.run)
            [job] = await monitor.track([NewJob("legacy", "1", Status.SUBMITTED)])
            assert await monitor.wait_for(job, [Status.COMPLETED]) == Status.COMPLETED
            monitor.stop()


async def test_asyncio_backend_runs_inside_trio(tmp_path: Path) -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def poll(jobs: Sequence[JobRef]) -> Sequence[Update]:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0.01)
        return [Update(j.id, Status.RUNNING, "Running") for j in jobs]

    store = Store(tmp_path / "jobs.sqlite")
    monitor = Monitor(store, [AsyncioBackend("aio", poll)])
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(monitor.run)
            [job] = await monitor.track([NewJob("aio", "1", Status.SUBMITTED)])
            assert await monitor.wait_for(job, [Status.RUNNING]) == Status.RUNNING
            monitor.stop()
    assert loops
    assert store.get(job).native_status == "Running"
