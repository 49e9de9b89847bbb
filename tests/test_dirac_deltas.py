"""Polling DIRAC by deltas: getJobs names what changed since the last sweep, on DIRAC's
clock; between full sweeps only those jobs are polled. In virtual time, in-process."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, strategies as st

from gangamon import AsyncStore, BackendSettings, Monitor, NewJob, Status, Store
from gangamon.backends import JobRef
from gangamon.backends.dirac import DiracBackend, ganga_status
from gangamon.sim.dirac import DiracSim

from .dirac_inprocess import InProcessDirac

FINAL = [Status.COMPLETED, Status.FAILED, Status.KILLED]


def deltas_backend(transport: InProcessDirac, tmp_path: Path, **settings: Any) -> DiracBackend:
    # Chunks of 50: a sweep of more than one call asks what changed first.
    base: dict[str, Any] = {
        "poll_interval": 10.0,
        "full_sweep": 600.0,
        "call_deadline": 30.0,
        "chunk_size": 50,
    }
    base.update(settings)
    return DiracBackend(
        transport,
        output_dir=tmp_path / "out",
        download_output=False,
        settings=BackendSettings(**base),
        delta_margin=5.0,
    )


def inline_monitor(store: Store, backends: list[DiracBackend]) -> Monitor:
    # Store calls inline: a worker thread would make the autojump clock leap.
    return Monitor(AsyncStore(store, in_thread=False), backends)


def changed_between(sim: DiracSim, since: float, until: float) -> set[str]:
    return {str(j.id) for j in sim.jobs.values() if any(since <= t <= until for t, _, _ in j.path)}


@given(
    skew=st.floats(-7200, 7200),
    back=st.floats(0, 900),
    seed=st.integers(0, 1000),
    dates=st.booleans(),
)
def test_changed_names_every_job_changed_since_the_cut(
    skew: float, back: float, seed: int, dates: bool
) -> None:
    # Without the server's Date, the cut is on our clock: right within the margin only.
    skew = skew if dates else skew % 8.0 - 4.0

    async def main() -> None:
        sim = DiracSim(seed=seed, mean_runtime=600.0, clock_skew=skew)
        ids = sim.submit(200)
        transport = InProcessDirac(sim, dates=dates)
        backend = deltas_backend(transport, Path("/nonexistent"))
        refs = [JobRef(n, str(i), Status.SUBMITTED) for n, i in enumerate(ids)]
        async with backend.lifespan():
            await trio.sleep(1000)
            await backend.poll(refs[:5])  # any reply tells DIRAC's time
            since = trio.current_time() - back
            asked = trio.current_time()
            got = await backend.changed(since, refs)
        assert got is not None
        assert changed_between(sim, since, asked) <= got
        # No more than the margin, the clock's seconds and the call's time reach back (and
        # the skew, where the server does not say its time).
        reach = 5.0 + 2.1 + (0 if dates else abs(skew))
        assert got <= changed_between(sim, since - reach, trio.current_time())

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


async def track(store: Store, sim: DiracSim, n: int, runtime: float) -> list[int]:
    ids = sim.submit(n, mean_runtime=runtime)
    return store.add_jobs([NewJob("dirac", str(i), Status.SUBMITTED) for i in ids])


def expected(sim: DiracSim, dirac_id: str) -> Status:
    status, minor = sim.jobs[int(dirac_id)].path[-1][1:]
    return ganga_status(status, minor)


def wrong(store: Store, sim: DiracSim) -> list[object]:
    return [j for j in store.jobs() if j.status != expected(sim, j.backend_id or "")]


async def run_until_final(monitor: Monitor, jobs: list[int]) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        for job in jobs:
            await monitor.wait_for(job, FINAL, timeout=3600)
        monitor.stop()


async def test_between_full_sweeps_only_the_changed_jobs_are_polled(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    sim = DiracSim(seed=3)
    store = Store(tmp_path / "jobs.sqlite")
    jobs = await track(store, sim, 3000, runtime=3600.0)
    transport = InProcessDirac(sim)
    # No full sweep after the first: whatever is seen is seen by the deltas.
    backend = deltas_backend(transport, tmp_path, full_sweep=10**6)
    monitor = inline_monitor(store, [backend])
    last_end = max(job.finished_at() for job in sim.jobs.values())
    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        await trio.sleep_until(last_end + 30)
        pending = [j for j in store.jobs() if j.status not in FINAL]
        monitor.stop()
    assert len(jobs) == 3000
    assert pending == []
    assert wrong(store, sim) == []
    # A full sweep of 3000 jobs every 10 s would have been 60 calls each; the first alone is.
    sweeps = last_end / 10
    assert transport.calls["getJobsStates"] < 0.1 * 60 * sweeps
    # Every sweep asks what changed while it would take more than one call (50 jobs).
    assert transport.calls["getJobs"] >= sweeps / 2
    assert transport.calls["getJobsSummary"] == 1  # the owner, learnt once
    stats = monitor.statistics().backends["dirac"]
    assert stats.delta_calls == transport.calls["getJobs"]


async def test_a_dirac_without_get_jobs_is_swept_in_full_and_said_once(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    sim = DiracSim(seed=4)
    store = Store(tmp_path / "jobs.sqlite")
    jobs = await track(store, sim, 200, runtime=300.0)
    transport = InProcessDirac(sim)
    transport.missing.add("getJobs")
    monitor = inline_monitor(store, [deltas_backend(transport, tmp_path)])
    with caplog.at_level(logging.WARNING, logger="gangamon.dirac"):
        await run_until_final(monitor, jobs)
    assert transport.calls["getJobs"] == 1
    assert [r.getMessage() for r in caplog.records if "getJobs" in r.getMessage()] == [
        "backend dirac: DIRAC at this URL has no getJobs (Unknown method getJobs); polling "
        "every job"
    ]


async def test_jobs_of_one_call_are_swept_without_asking_what_changed(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    sim = DiracSim(seed=6)
    store = Store(tmp_path / "jobs.sqlite")
    jobs = await track(store, sim, 40, runtime=300.0)
    transport = InProcessDirac(sim)
    monitor = inline_monitor(store, [deltas_backend(transport, tmp_path)])
    await run_until_final(monitor, jobs)
    assert transport.calls["getJobs"] == 0
    assert wrong(store, sim) == []


async def test_lost_replies_and_errors_fall_back_to_full_sweeps_missing_nothing(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    sim = DiracSim(seed=5)
    store = Store(tmp_path / "jobs.sqlite")
    jobs = await track(store, sim, 500, runtime=600.0)
    transport = InProcessDirac(sim)
    monitor = inline_monitor(store, [deltas_backend(transport, tmp_path, full_sweep=120.0)])
    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        for _ in range(20):
            await trio.sleep(37)
            transport.lose = 2
        for job in jobs:
            await monitor.wait_for(job, FINAL, timeout=7200)
        monitor.stop()
    assert wrong(store, sim) == []
