from __future__ import annotations

from pathlib import Path

import trio

from gangamon import AsyncStore, NewJob, Outcome, Status, Store, Transition

S = Status


async def test_async_round_trip(tmp_path: Path) -> None:
    store = AsyncStore(Store(tmp_path / "jobs.sqlite"))
    [job] = await store.add_jobs([NewJob("local", "1", S.SUBMITTED)])
    assert await store.apply([Transition(job, S.SUBMITTED, S.RUNNING)]) == [Outcome.APPLIED]
    assert (await store.get(job)).status == S.RUNNING
    assert [j.id for j in await store.active_jobs("local")] == [job]
    assert [j.id for j in await store.jobs(statuses=[S.RUNNING])] == [job]
    assert [e.new for e in await store.journal(job=job)] == [S.SUBMITTED, S.RUNNING]
    assert store.statistics().applied == 1
    await store.aclose()


async def test_cancelled_write_is_whole_or_absent_and_frees_the_store(tmp_path: Path) -> None:
    store = AsyncStore(Store(tmp_path / "jobs.sqlite"))
    jobs = await store.add_jobs([NewJob("dirac", str(i), S.SUBMITTED) for i in range(20_000)])
    batch = [Transition(j, S.SUBMITTED, S.RUNNING) for j in jobs]
    cancelled = 0
    for delay in (0.0, 0.001, 0.005, 0.02):
        with trio.move_on_after(delay) as scope:
            await store.apply(batch)
        cancelled += scope.cancelled_caught
        running = sum(j.status == S.RUNNING for j in await store.jobs())
        assert running in (0, len(jobs))  # never half a batch
        if running:
            batch = [Transition(j, S.RUNNING, S.SUBMITTED) for j in jobs]
        else:
            batch = [Transition(j, S.SUBMITTED, S.RUNNING) for j in jobs]
    assert cancelled >= 1
    # The connection was handed back: the thread token is free and calls go on working.
    assert store._thread.borrowed_tokens == 0
    entries = await store.journal()
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    await store.aclose()
