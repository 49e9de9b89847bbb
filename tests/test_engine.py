"""The engine in virtual time: fakes whose latency is trio.sleep, MockClock autojumping."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
import trio.testing

import gangamon
from gangamon import (
    AsyncStore,
    Backend,
    BackendError,
    GangamonError,
    Monitor,
    NewJob,
    Outcome,
    Status,
    Store,
    SubscriberLagged,
    Transition,
    UnknownJob,
)
from gangamon._errors import StoreUnwritable
from gangamon.backends import BackendSettings, BackendUnavailable, JobRef, Update

from .fakes import FakeGrid, FakeWatcher

S = Status


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "jobs.sqlite")


def open_monitor(store: Store, backends: list[Backend], **options: Any) -> Any:
    # Store calls inline: a worker thread would make the autojump clock leap.
    return gangamon.open_monitor(AsyncStore(store, in_thread=False), backends, **options)


def jobs_on(backend: str, n: int, status: Status = S.SUBMITTED) -> list[NewJob]:
    return [NewJob(backend, f"{backend}-{i}", status) for i in range(n)]


async def test_jobs_reach_the_grid_status(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    grid = FakeGrid()
    async with open_monitor(store, [grid]) as monitor:
        ids = await monitor.track(jobs_on("grid", 3))
        grid.truth.update({"grid-0": S.RUNNING, "grid-1": S.COMPLETED, "grid-2": S.FAILED})
        assert await monitor.wait_for(ids[1], [S.COMPLETED], timeout=30) == S.COMPLETED
        assert await monitor.wait_for(ids[2], [S.FAILED], timeout=30) == S.FAILED
        assert await monitor.wait_for(ids[0], [S.RUNNING], timeout=30) == S.RUNNING
    assert store.get(ids[0]).native_status == "Running"


async def test_sweeps_run_at_a_fixed_rate(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    grid = FakeGrid(latency=3.0)
    store.add_jobs(jobs_on("grid", 5))
    async with open_monitor(store, [grid]):
        t0 = trio.current_time()
        await trio.sleep(95)
    # A sweep every 10 s from the start, not every 10 s + latency; one call each.
    assert grid.poll_starts == [t0 + 10 * k for k in range(10)]


async def test_a_late_sweep_is_not_followed_by_a_burst(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    grid = FakeGrid(latency=25.0, call_deadline=60.0)
    store.add_jobs(jobs_on("grid", 1))
    async with open_monitor(store, [grid]):
        t0 = trio.current_time()
        await trio.sleep(80)
    # Each sweep takes 25 s against a 10 s interval: the next starts when the last ends.
    assert grid.poll_starts == [t0, t0 + 25, t0 + 50, t0 + 75]


async def test_limiter_bound_is_held_and_reached(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    grid = FakeGrid(chunk_size=5, concurrency=3)
    store.add_jobs(jobs_on("grid", 100))
    async with open_monitor(store, [grid]):
        await trio.sleep(60)
    assert grid.peak == 3
    assert max(len(ids) for ids in grid.polled_ids) == 5


async def test_a_crashing_backend_restarts_and_the_others_keep_their_cadence(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    grid = FakeGrid(latency=0.5)
    watcher = FakeWatcher(crash_at=trio.current_time() + 25)
    store.add_jobs(jobs_on("grid", 2))
    async with open_monitor(store, [grid, watcher], seed=1) as monitor:
        t0 = trio.current_time()
        [job] = await monitor.track([NewJob("local", "p1", S.SUBMITTED)])
        await trio.sleep(40)
        assert watcher.started == 2
        assert monitor.statistics().backends["local"].restarts == 1
        await watcher.channel("p1").send(S.RUNNING)
        assert await monitor.wait_for(job, [S.RUNNING], timeout=5) == S.RUNNING
        await trio.sleep(20)
    assert grid.poll_starts == [t0 + 10 * k for k in range(7)]


async def test_errors_and_timeouts_back_off_then_recover(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    grid = FakeGrid(latency=1.0, call_deadline=5.0)
    store.add_jobs(jobs_on("grid", 1))
    grid.fail_polls, grid.hang_polls = 1, 1
    async with open_monitor(store, [grid]) as monitor:
        t0 = trio.current_time()
        await trio.sleep(95)
        stats = monitor.statistics().backends["grid"]
    # hang at t0 (timed out: interval 20), fail at t0+20 (interval 40), clean at t0+60 (10)
    assert grid.poll_starts == [t0, t0 + 20, t0 + 60, t0 + 70, t0 + 80, t0 + 90]
    assert (stats.errors, stats.timeouts, stats.interval) == (1, 1, 10.0)


async def test_jobs_whose_end_is_near_are_polled_between_the_sweeps(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    grid = FakeGrid(latency=0.5)  # sweeps every 10 s: the jobs near their end every 2 s
    grid.ending = frozenset({"Running"})
    [near, far] = store.add_jobs(jobs_on("grid", 2))
    grid.truth.update({"grid-0": S.RUNNING, "grid-1": S.SUBMITTED})
    async with open_monitor(store, [grid]) as monitor:
        t0 = trio.current_time()
        await trio.sleep_until(t0 + 13)
        grid.truth["grid-0"] = S.COMPLETED
        assert await monitor.wait_for(near, [S.COMPLETED], timeout=10) == S.COMPLETED
        ended = trio.current_time() - t0
        await trio.sleep_until(t0 + 25)
    assert ended == pytest.approx(14.5)  # the poll at 14 s, not the sweep at 20 s
    polls = sorted(
        (round(start - t0, 3), ids)
        for start, ids in zip(grid.poll_starts, grid.polled_ids, strict=True)
    )
    near_polls = [(2.0 * k, ["grid-0"]) for k in range(1, 8)]
    sweeps = [(0.0, ["grid-0", "grid-1"]), (10.0, ["grid-1"]), (20.0, ["grid-1"])]
    assert polls == sorted(near_polls + sweeps)
    assert store.get(far).status == S.SUBMITTED


async def test_the_polls_of_jobs_near_their_end_back_off_with_the_sweeps(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    grid = FakeGrid(latency=1.0, call_deadline=5.0, ending_interval=3.5)
    grid.ending = frozenset({"Running"})
    store.add_jobs(jobs_on("grid", 2))
    grid.truth.update({"grid-0": S.RUNNING, "grid-1": S.SUBMITTED})
    async with open_monitor(store, [grid]):
        t0 = trio.current_time()
        await trio.sleep_until(t0 + 9.5)
        grid.fail_polls = 1  # the sweep at 10 s: the interval doubles at 11 s
        await trio.sleep_until(t0 + 40)
    near = [
        round(s - t0, 3)
        for s, ids in zip(grid.poll_starts, grid.polled_ids, strict=True)
        if ids == ["grid-0"]
    ]
    # Every 3.5 s; every 7 s from the failed sweep's end (11 s) to the next clean one's (31 s).
    assert near == [3.5, 7.0, 10.5, 17.5, 24.5, 31.5, 35.0, 38.5]


def test_the_interval_of_jobs_near_their_end_defaults_to_a_fifth_of_the_sweeps() -> None:
    assert BackendSettings(poll_interval=50).ending_poll_interval == 10
    assert BackendSettings(poll_interval=3).ending_poll_interval == 1  # at least 1 s
    assert BackendSettings(poll_interval=0.5).ending_poll_interval == 0.5  # never above it
    assert BackendSettings(poll_interval=30, ending_interval=60).ending_poll_interval == 30
    assert BackendSettings(poll_interval=30, ending_interval=2).ending_poll_interval == 2
    with pytest.raises(ValueError, match="ending_interval must be a positive number, not inf"):
        BackendSettings(ending_interval=math.inf)


async def test_garbage_and_illegal_reports_are_counted_never_fatal(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    grid = FakeGrid()
    [job] = store.add_jobs(jobs_on("grid", 1))
    grid.garbage_polls = 1
    async with open_monitor(store, [grid]) as monitor:
        await trio.sleep(5)
        grid.truth["grid-0"] = S.NEW  # submitted -> new is not a move Ganga allows
        await trio.sleep(10)
        grid.truth["grid-0"] = S.COMPLETED
        assert await monitor.wait_for(job, [S.COMPLETED], timeout=15) == S.COMPLETED
        stats = monitor.statistics()
    assert stats.backends["grid"].garbage == 3
    assert stats.illegal >= 1
    assert [e.new for e in store.journal(job=job)] == [S.SUBMITTED, S.COMPLETED]


async def test_added_job_is_polled_promptly(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    grid = FakeGrid(latency=0.5, poll_interval=600.0)
    async with open_monitor(store, [grid]) as monitor:
        await trio.sleep(1)
        grid.truth["grid-0"] = S.RUNNING
        t0 = trio.current_time()
        [job] = await monitor.track(jobs_on("grid", 1))
        await monitor.wait_for(job, [S.RUNNING], timeout=5)
        assert trio.current_time() - t0 == pytest.approx(0.5)


async def test_finalisation_goes_through_completing(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    grid = FakeGrid(finalises=True)
    async with open_monitor(store, [grid]) as monitor, monitor.changes() as changes:
        [job] = await monitor.track(jobs_on("grid", 1))
        grid.truth["grid-0"] = S.COMPLETED
        seen = []
        async for entry in changes:
            seen.append(entry.new)
            if entry.new == S.COMPLETED:
                break
    assert seen == [S.SUBMITTED, S.COMPLETING, S.COMPLETED]
    assert grid.finalised == [job]
    assert store.journal(job=job)[-1].reason == "output downloaded"


async def test_restart_reloads_active_jobs_and_refinalises_completing(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    [running, completing, done] = store.add_jobs(
        [
            NewJob("grid", "a", S.RUNNING),
            NewJob("grid", "b", S.COMPLETING),
            NewJob("grid", "c", S.COMPLETED),
        ]
    )
    grid = FakeGrid(finalises=True)
    grid.truth["a"] = S.COMPLETED
    async with open_monitor(store, [grid]) as monitor:
        await monitor.wait_for(running, [S.COMPLETED], timeout=30)
        await monitor.wait_for(completing, [S.COMPLETED], timeout=30)
    assert sorted(grid.finalised) == [running, completing]
    assert all("c" not in ids for ids in grid.polled_ids)
    assert store.get(done).transitions == 0


async def test_untrack_and_kill_cancel_the_jobs_work(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    killed: list[str] = []

    class KillableWatcher(FakeWatcher):
        async def kill(self, job: object) -> None:
            killed.append(job.backend_id)  # type: ignore[attr-defined]

    watcher = KillableWatcher()
    async with open_monitor(store, [watcher]) as monitor:
        a, b = await monitor.track(
            [NewJob("local", "a", S.RUNNING), NewJob("local", "b", S.RUNNING)]
        )
        await trio.sleep(1)
        assert watcher.watching == {a, b}
        await monitor.untrack([a])
        await monitor.kill(b)
        await trio.testing.wait_all_tasks_blocked()
        assert watcher.watching == set()
        with pytest.raises(UnknownJob):
            await monitor.kill(a)
    assert killed == ["b"]
    assert store.get(b).status == S.KILLED
    assert store.get(a).status == S.RUNNING


async def test_a_job_already_monitored_under_its_backend_id_is_not_tracked_twice(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    grid = FakeGrid()
    async with open_monitor(store, [grid]) as monitor:
        [a] = await monitor.track([NewJob("grid", "g1", S.SUBMITTED)])
        again = await monitor.track(
            [NewJob("grid", "g1", S.RUNNING), NewJob("grid", "g2"), NewJob("grid", "g2")]
        )
        assert again[0] == a
        assert again[1] != again[2]  # a new job is not monitored: each is its own record
        [b, b_again] = await monitor.track([NewJob("grid", "g3", S.SUBMITTED)] * 2)
        assert b == b_again
        await trio.sleep(25)
        assert all(ids.count("g1") <= 1 and ids.count("g3") <= 1 for ids in grid.polled_ids)
        grid.truth["g1"] = S.COMPLETED
        assert await monitor.wait_for(a, [S.COMPLETED], timeout=30) == S.COMPLETED
        # Finished, it is no longer monitored: the same backend id is a new job now.
        [c] = await monitor.track([NewJob("grid", "g1", S.SUBMITTED)])
        assert c not in (a, b)
    assert [j.backend_id for j in store.jobs()].count("g1") == 2
    assert store.get(a).status == S.COMPLETED


async def test_wait_for_times_out_naming_the_job(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_monitor(store, [FakeGrid()]) as monitor:
        [job] = await monitor.track(jobs_on("grid", 1))
        with pytest.raises(TimeoutError, match=f"job {job} not in .*completed.* after 30 s"):
            await monitor.wait_for(job, [S.COMPLETED], timeout=30)


async def test_unknown_backend_is_refused_before_storing(store: Store) -> None:
    async with open_monitor(store, [FakeGrid()]) as monitor:
        with pytest.raises(ValueError, match="unknown backend 'lsf' \\(configured: grid\\)"):
            await monitor.track([NewJob("grid", "1"), NewJob("lsf", "2")])
    assert store.jobs() == []


async def test_a_slow_subscriber_is_dropped_not_waited_for(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    grid = FakeGrid()
    async with open_monitor(store, [grid]) as monitor, monitor.changes(buffer=2) as changes:
        ids = await monitor.track(jobs_on("grid", 5))
        grid.truth.update({f"grid-{i}": S.RUNNING for i in range(5)})
        await monitor.wait_for(ids[-1], [S.RUNNING], timeout=30)
        got = [await changes.__anext__(), await changes.__anext__()]
        assert [e.seq for e in got] == [1, 2]
        with pytest.raises(SubscriberLagged, match="after journal seq 2"):
            await changes.__anext__()


async def test_callbacks_see_every_change_and_cannot_break_the_writer(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    grid = FakeGrid()
    seen: list[tuple[int, Status]] = []

    def broken(entry: object) -> None:
        raise RuntimeError("callback bug")

    async with open_monitor(store, [grid]) as monitor:
        monitor.on_change(broken)
        monitor.on_change(lambda e: seen.append((e.job, e.new)))
        [job] = await monitor.track(jobs_on("grid", 1))
        grid.truth["grid-0"] = S.RUNNING
        await monitor.wait_for(job, [S.RUNNING], timeout=30)
    assert seen == [(job, S.SUBMITTED), (job, S.RUNNING)]


async def test_concurrent_tracks_deliver_each_entry_once_in_order(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    # Each track publishes the journal after its own write; both read the cursor before the
    # await that reads the journal, and both delivered what the other had stored: 1, 2, 1, 2.
    seen: list[int] = []
    async with open_monitor(store, [FakeGrid()]) as monitor:
        monitor.on_change(lambda e: seen.append(e.seq))
        async with trio.open_nursery() as nursery:
            for n in range(4):
                nursery.start_soon(monitor.track, [NewJob("grid", f"t{n}", S.SUBMITTED)])
    assert seen == sorted(set(seen))
    assert len(seen) == 4


async def test_concurrent_tracks_of_one_job_store_it_once(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    # Each track checked what was tracked, then awaited the store: a second track of the
    # same job came between and stored it again (two jobs, both polled).
    ids: list[list[int]] = []
    async with open_monitor(store, [FakeGrid()]) as monitor:

        async def track() -> None:
            ids.append(await monitor.track([NewJob("grid", "same", S.SUBMITTED)]))

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(track)
    assert len(store.jobs()) == 1
    assert ids == [[store.jobs()[0].id]] * 3


async def test_a_job_another_process_has_just_added_is_the_one_tracked(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    # Added by `gangamon track` since the monitor's last look: add_jobs met the store's
    # constraint and track failed instead of answering with the job the store holds.
    async with open_monitor(store, [FakeGrid()]) as monitor:
        with Store(store.path) as other:
            [theirs] = other.add_jobs([NewJob("grid", "g9", S.SUBMITTED)])
        assert await monitor.track([NewJob("grid", "g9", S.SUBMITTED)]) == [theirs]
    assert len(store.jobs()) == 1


async def test_jobs_another_process_ended_are_no_longer_polled_or_watched(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    # `gangamon untrack` and `kill` write to the store beside a running monitor: before, the
    # monitor kept polling and watching those jobs until its next restart.
    grid, watcher = FakeGrid(poll_interval=10.0), FakeWatcher()
    async with open_monitor(store, [grid, watcher]) as monitor:
        kept, untracked = await monitor.track(jobs_on("grid", 2))
        [watched] = await monitor.track([NewJob("local", "w", S.RUNNING)])
        await trio.sleep(1)
        assert watcher.watching == {watched}
        with Store(store.path) as other:
            other.apply(
                [
                    Transition(untracked, S.SUBMITTED, S.UNKNOWN, reason="untracked"),
                    Transition(watched, S.RUNNING, S.KILLED, reason="killed"),
                ]
            )
        await monitor.load_new()
        await trio.testing.wait_all_tasks_blocked()
        assert watcher.watching == set()
        grid.polled_ids.clear()
        await trio.sleep(25)
        assert grid.polled_ids
        assert all(ids == ["grid-0"] for ids in grid.polled_ids)
        assert monitor.statistics().backends["grid"].jobs_by_status == {S.SUBMITTED: 1}
    assert store.get(kept).status == S.SUBMITTED
    assert store.get(untracked).status == S.UNKNOWN


class FullDisk(AsyncStore):
    """A store whose file system refuses the next `refusals` writes of transitions."""

    def __init__(self, store: Store, refusals: int) -> None:
        super().__init__(store, in_thread=False)
        self.refusals = refusals

    async def apply(self, batch: Sequence[Transition]) -> list[Outcome]:
        if self.refusals:
            self.refusals -= 1
            raise StoreUnwritable(self.store.where, "cannot write: database or disk is full")
        return await super().apply(batch)


def tracked_on(grid: FakeGrid, store: Store, n: int, says: Status) -> list[int]:
    """`n` jobs stored submitted, on `grid`, which says they are in `says`."""
    ids = store.add_jobs(jobs_on(grid.name, n))
    grid.truth = {f"{grid.name}-{i}": says for i in range(n)}
    return ids


async def test_a_full_disk_is_waited_out_losing_nothing_and_logged_once(
    store: Store, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    # The writer died with the monitor, and every report waiting with it.
    grid = FakeGrid(poll_interval=10.0)
    ids = tracked_on(grid, store, 3, S.RUNNING)
    full = FullDisk(store, refusals=6)
    with caplog.at_level(logging.WARNING, logger="gangamon.engine"):
        async with gangamon.open_monitor(full, [grid]) as monitor:
            for job in ids:
                await monitor.wait_for(job, [S.RUNNING], timeout=600)
            grid.truth = {f"grid-{i}": S.COMPLETED for i in range(3)}
            for job in ids:
                await monitor.wait_for(job, [S.COMPLETED], timeout=600)
    assert full.refusals == 0
    assert [j.status for j in store.jobs()] == [S.COMPLETED] * 3
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        f"job store '{store.path}': cannot write: database or disk is full; retrying, nothing is"
        " lost meanwhile",
        "the store takes writes again (after 6 refusals)",
    ]


async def test_a_monitor_stops_while_the_disk_stays_full(
    store: Store, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    grid = FakeGrid(poll_interval=10.0)
    ids = tracked_on(grid, store, 2, S.RUNNING)
    full = FullDisk(store, refusals=10**9)
    with caplog.at_level(logging.ERROR, logger="gangamon.engine"), trio.fail_after(600):
        async with gangamon.open_monitor(full, [grid]):
            await trio.sleep(120)  # polls keep reporting; the writer waits on the disk
    assert [store.get(job).status for job in ids] == [S.SUBMITTED, S.SUBMITTED]
    assert (
        caplog.records[-1].getMessage().endswith("the last reports are not written (polled again)")
    )


async def test_stop_before_run_is_kept_and_a_later_run_is_not_stopped(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    grid = FakeGrid()
    store.add_jobs(jobs_on("grid", 3))
    monitor = Monitor(AsyncStore(store, in_thread=False), [grid])
    monitor.stop()
    with trio.fail_after(60):
        await monitor.run()  # returns: the stop was asked for before it began
    polls = len(grid.polled_ids)
    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        await trio.sleep(60)
        assert len(grid.polled_ids) > polls + 1  # sweeping on: the earlier stop is spent
        monitor.stop()


class ExpiredProxyGrid(FakeGrid):
    """Every poll: the proxy has expired (a person has to act). Checked before any call,
    as `DiracBackend.poll` checks it."""

    renewed = False

    async def poll(self, jobs: Sequence[JobRef]) -> Sequence[Update]:
        if self.renewed:
            return await super().poll(jobs)
        raise BackendUnavailable("proxy /tmp/x509up_u0 expired at 2026-12-01 10:00 UTC")


async def test_an_expired_proxy_is_named_when_every_chunk_poll_raises_it_at_once(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    # More jobs than a chunk: several polls raise together, and the supervisor got an
    # exception group ("crashed: ExceptionGroup ... (4 sub-exceptions)"), not the proxy.
    grid = ExpiredProxyGrid(chunk_size=10, concurrency=4)
    store.add_jobs(jobs_on("grid", 40))
    async with open_monitor(store, [grid]) as monitor:
        await trio.sleep(5)
        stats = monitor.statistics().backends["grid"]
    assert stats.problem == "proxy /tmp/x509up_u0 expired at 2026-12-01 10:00 UTC"


async def test_failing_polls_show_in_problem_from_the_first_until_the_first_good_one(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    # The problem stayed empty (and the backend "up") while every poll failed.
    grid = FakeGrid(latency=1.0, poll_interval=10.0)
    tracked_on(grid, store, 3, S.SUBMITTED)
    grid.fail_polls = 2
    async with open_monitor(store, [grid]) as monitor:
        await trio.sleep(1.5)  # the first poll has failed
        failing = monitor.statistics().backends["grid"]
        assert failing.problem == "poll failed: RuntimeError: grid says no"
        assert failing.last_success is None
        while len(grid.poll_starts) < 3:  # noqa: ASYNC110 (virtual time)
            await trio.sleep(1)
        await trio.sleep(1.5)  # the third poll has answered
        working = monitor.statistics().backends["grid"]
    assert working.problem is None
    assert working.last_success is not None
    assert abs(working.last_success - time.time()) < 60


async def test_a_crash_is_the_problem_until_a_poll_after_the_restart_succeeds(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    # The supervisor's problem was never cleared once the backend worked again.
    grid = ExpiredProxyGrid(restart_delay=1.0, max_restart_delay=2.0)
    tracked_on(grid, store, 2, S.SUBMITTED)
    async with open_monitor(store, [grid]) as monitor:
        await trio.sleep(0.5)
        assert monitor.statistics().backends["grid"].problem is not None
        grid.renewed = True
        await trio.sleep(5)
        assert monitor.statistics().backends["grid"].problem is None


class SlowKillGrid(FakeGrid):
    """A kill that takes a while: `killing` is set when it has begun."""

    def __init__(self) -> None:
        super().__init__()
        self.killing = trio.Event()

    async def kill(self, job: JobRef) -> None:
        self.killing.set()
        await trio.sleep(3)


async def test_a_kill_stores_killed_even_when_another_process_moved_the_job_meanwhile(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    # The store's refusal (stale: running now, not submitted) was ignored: kill returned, the
    # job stayed running in the store, and no backend monitored it any more.
    grid = SlowKillGrid()
    async with open_monitor(store, [grid]) as monitor:
        [job] = await monitor.track([NewJob("grid", "k1", S.SUBMITTED)])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(monitor.kill, job)
            await grid.killing.wait()
            # Another process (a CLI, Ganga) stores the job running while the kill is on.
            store.apply([Transition(job, S.SUBMITTED, S.RUNNING, reason="seen elsewhere")])
    assert store.get(job).status == S.KILLED


async def test_statistics_describe_each_backend(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    grid = FakeGrid(latency=2.0, concurrency=3)
    store.add_jobs(jobs_on("grid", 250))
    async with open_monitor(store, [grid]) as monitor:
        await trio.sleep(1)
        during = monitor.statistics().backends["grid"]
        await trio.sleep(7)
        after = monitor.statistics().backends["grid"]
    assert (during.in_flight, during.limiter_borrowed, during.limiter_total) == (3, 3, 3)
    assert (after.jobs, after.in_flight, after.last_poll_latency) == (250, 0, 2.0)
    assert after.calls == 3  # 250 jobs in chunks of 100, one sweep so far
    assert after.jobs_by_status == {S.SUBMITTED: 250}


async def test_a_polls_duration_leaves_out_its_wait_for_the_limiter(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    # One call at a time: the third chunk waits 4 s for its turn, then takes 2 s.
    grid = FakeGrid(latency=2.0, concurrency=1)
    store.add_jobs(jobs_on("grid", 250))
    async with open_monitor(store, [grid]) as monitor:
        await trio.sleep(7)
        grid.fail_polls = 3  # the next sweep fails: its polls are not timed
        await trio.sleep(10)
        stats = monitor.statistics().backends["grid"]
        polls = monitor.histograms()["grid"].poll_duration
    assert polls is not None
    assert stats.last_poll_latency == 2.0
    assert (polls.count, polls.sum) == (3, 6.0)
    assert dict(polls.buckets)[1.0] == 0
    assert dict(polls.buckets)[2.5] == 3


class Dated(FakeGrid):
    """Says that each change it reports happened `ago` seconds before the poll answered."""

    def __init__(self, name: str, ago: float) -> None:
        super().__init__(name)
        self.ago = ago

    async def poll(self, jobs: Sequence[JobRef]) -> Sequence[Update]:
        updates = await super().poll(jobs)
        return [msgspec.structs.replace(u, changed=time.time() - self.ago) for u in updates]


async def test_detection_delays_are_kept_per_backend_and_for_all(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    slow, quick = Dated("slow", ago=100), Dated("quick", ago=1)
    async with open_monitor(store, [slow, quick]) as monitor:
        [on_slow] = await monitor.track(jobs_on("slow", 1))
        [on_quick] = await monitor.track(jobs_on("quick", 1))
        slow.truth["slow-0"] = quick.truth["quick-0"] = S.RUNNING
        await monitor.wait_for(on_slow, [S.RUNNING], timeout=30)
        await monitor.wait_for(on_quick, [S.RUNNING], timeout=30)
        by_backend = monitor.histograms()
    detection = {name: dict(h.detection.buckets) for name, h in by_backend.items()}
    assert (detection["slow"][60], detection["slow"][120]) == (0, 1)
    assert (detection["quick"][0.5], detection["quick"][2.5]) == (0, 1)
    everything = monitor.detection.statistics()
    assert everything.count == 2
    assert everything.sum == pytest.approx(101, abs=1)
    assert by_backend["slow"].poll_duration is not None


async def test_monitor_cannot_run_twice_at_once(store: Store) -> None:
    monitor = Monitor(store, [FakeGrid()])
    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        with pytest.raises(Exception, match="already running"):
            await monitor.run()
        monitor.stop()


async def test_a_report_older_than_the_stored_one_is_dropped(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    grid = FakeGrid(call_deadline=30.0)
    grid.truth["grid-0"] = S.SUBMITTED
    grid.latencies = [10.0]  # the prompt poll at t0+5 answers only at t0+15
    async with open_monitor(store, [grid]) as monitor:
        t0 = trio.current_time()
        await trio.sleep(5)
        [job] = await monitor.track(jobs_on("grid", 1))
        await trio.sleep(4)
        grid.truth["grid-0"] = S.RUNNING  # the sweep at t0+10 sees this, answers at t0+11
        await trio.sleep_until(t0 + 16)
        # The slow call's "submitted" is older than the stored "running": it must not win,
        # although Ganga's graph allows running -> submitted (a resubmission).
        assert monitor.statistics().out_of_order == 1
    assert [e.new for e in store.journal(job=job)] == [S.SUBMITTED, S.RUNNING]


async def test_keyboard_interrupt_comes_out_bare(store: Store) -> None:
    class Interrupting(FakeGrid):
        def lifespan(self) -> Any:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await Monitor(AsyncStore(store, in_thread=False), [Interrupting()]).run()


async def test_open_monitor_lets_the_blocks_error_out_bare(store: Store) -> None:
    with pytest.raises(ZeroDivisionError):
        async with open_monitor(store, [FakeGrid()]):
            _ = 1 / 0


async def test_a_failed_kill_keeps_the_job_monitored(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    grid = FakeGrid()  # its kill() raises BackendError: it cannot kill
    async with open_monitor(store, [grid]) as monitor:
        [job] = await monitor.track(jobs_on("grid", 1))
        with pytest.raises(BackendError, match="cannot kill"):
            await monitor.kill(job)
        grid.truth["grid-0"] = S.RUNNING
        assert await monitor.wait_for(job, [S.RUNNING], timeout=30) == S.RUNNING


class SlowKills(FakeGrid):
    """A grid whose kills wait for `release`, then fail if `refuse`."""

    def __init__(self) -> None:
        super().__init__()
        self.release = trio.Event()
        self.refuse = False

    async def kill(self, job: JobRef) -> None:
        await self.release.wait()
        if self.refuse:
            raise BackendError("grid refuses the kill")
        self.truth[job.backend_id] = S.KILLED


async def test_a_job_being_killed_is_still_the_one_tracked_under_its_backend_id(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    # Its kill took the job out of its runner's table: a `track` of the same backend id
    # meanwhile stored a second job, and `load_new` tracked the job a second time.
    grid = SlowKills()
    async with open_monitor(store, [grid]) as monitor, trio.open_nursery() as nursery:
        [job] = await monitor.track(jobs_on("grid", 1))
        nursery.start_soon(monitor.kill, job)
        await trio.testing.wait_all_tasks_blocked()
        assert await monitor.track(jobs_on("grid", 1)) == [job]
        assert await monitor.load_new() == 0
        grid.release.set()
    assert store.get(job).status == S.KILLED
    assert len(store.jobs()) == 1


async def test_a_job_whose_kill_failed_is_put_back_once_and_monitored(
    store: Store, autojump_clock: trio.testing.MockClock
) -> None:
    grid = SlowKills()
    grid.refuse = True
    async with open_monitor(store, [grid]) as monitor:
        [job] = await monitor.track(jobs_on("grid", 1))
        async with trio.open_nursery() as nursery:

            async def kill() -> None:
                with pytest.raises(BackendError, match="refuses"):
                    await monitor.kill(job)

            nursery.start_soon(kill)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(GangamonError, match="being killed already"):
                await monitor.kill(job)
            assert await monitor.load_new() == 0
            grid.release.set()
        assert monitor.statistics().backends["grid"].jobs == 1
        grid.truth["grid-0"] = S.RUNNING
        assert await monitor.wait_for(job, [S.RUNNING], timeout=30) == S.RUNNING


async def test_untracking_while_the_writer_writes_is_safe(tmp_path: Path) -> None:
    # A real worker thread for the store: the writer really awaits while untrack runs.
    grid = FakeGrid(latency=0.0, poll_interval=0.01)
    store = Store(tmp_path / "jobs.sqlite")
    monitor = Monitor(store, [grid])
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(monitor.run)
            ids = await monitor.track(jobs_on("grid", 200))
            for round_, status in enumerate([S.RUNNING, S.SUBMITTED] * 10):
                grid.truth.update({f"grid-{i}": status for i in range(200)})
                await trio.sleep(0.01)
                await monitor.untrack(ids[round_ * 10 : round_ * 10 + 10])
            monitor.stop()
    assert monitor.statistics().backends["grid"].jobs == 0


async def test_jobs_another_process_stores_are_picked_up_once(
    store: Store, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    grid = FakeGrid()
    async with open_monitor(store, [grid]) as monitor:
        with Store(store.path) as other:  # `gangamon track`, or Ganga, in another process
            first, second = other.add_jobs(jobs_on("grid", 2))
            other.add_jobs([NewJob("elsewhere", "7", S.SUBMITTED)])  # not a backend of ours
        assert await monitor.load_new() == 2
        assert await monitor.load_new() == 0  # already monitored
        await monitor.untrack([second])
        with Store(store.path) as other:
            [third] = other.add_jobs([NewJob("grid", "grid-9", S.SUBMITTED)])
        assert await monitor.load_new() == 1  # the untracked job is not taken back
        grid.truth.update({"grid-0": S.RUNNING, "grid-1": S.RUNNING, "grid-9": S.RUNNING})
        for job in (first, third):
            assert await monitor.wait_for(job, [S.RUNNING], timeout=60) == S.RUNNING
        await trio.sleep(60)  # virtual time: several sweeps
        assert store.get(second).status == S.SUBMITTED  # running at the grid, but untracked
