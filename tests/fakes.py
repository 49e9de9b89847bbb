"""Fake backends for engine tests: pure trio, latency in virtual time, faults on request.

They live in tests only: gangamon's own backends talk to real systems.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import trio

from gangamon import Backend, BackendSettings, JobRef, Status, Update


class FakeGrid(Backend):
    """A grid whose truth the test sets: `truth[backend_id] = status`."""

    def __init__(
        self,
        name: str = "grid",
        *,
        latency: float = 1.0,
        finalises: bool = False,
        **settings: float,
    ) -> None:
        self.name = name
        defaults: dict[str, float] = {
            "poll_interval": 10.0,
            "call_deadline": 5.0,
            "chunk_size": 100,
            "concurrency": 2,
        }
        defaults.update(settings)
        self.settings = BackendSettings(**defaults)  # type: ignore[arg-type]
        self.finalises = finalises
        self.latency = latency
        self.truth: dict[str, Status] = {}
        self.poll_starts: list[float] = []
        self.polled_ids: list[list[str]] = []
        self.in_flight = 0
        self.peak = 0
        self.fail_polls = 0  # the next n polls raise
        self.hang_polls = 0  # the next n polls never return
        self.garbage_polls = 0  # the next n polls answer nonsense
        self.finalised: list[int] = []
        self.latencies: list[float] = []  # per-call latencies, used first

    async def poll(self, jobs: Sequence[JobRef]) -> Sequence[Update]:
        self.poll_starts.append(trio.current_time())
        self.polled_ids.append([j.backend_id for j in jobs])
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        truth = dict(self.truth)  # what the grid knew when the call arrived
        try:
            await trio.sleep(self.latencies.pop(0) if self.latencies else self.latency)
            if self.hang_polls:
                self.hang_polls -= 1
                await trio.sleep_forever()
            if self.fail_polls:
                self.fail_polls -= 1
                raise RuntimeError("grid says no")
            if self.garbage_polls:
                self.garbage_polls -= 1
                return ["garbage", Update(999_999, Status.RUNNING), None]  # type: ignore[list-item]
            return [
                Update(j.id, truth[j.backend_id], truth[j.backend_id].value.title())
                for j in jobs
                if j.backend_id in truth
            ]
        finally:
            self.in_flight -= 1

    async def finalise(self, job: JobRef) -> Update:
        await trio.sleep(self.latency)
        self.finalised.append(job.id)
        return Update(job.id, Status.COMPLETED, "Done", "output downloaded")


class FakeWatcher(Backend):
    """A push backend: each job's changes come from a channel the test feeds."""

    polls = False
    watches = True

    def __init__(self, name: str = "local", *, crash_at: float | None = None) -> None:
        self.name = name
        self.settings = BackendSettings(poll_interval=10.0, restart_delay=1.0)
        self.crash_at = crash_at
        self.started = 0
        self.watching: set[int] = set()
        self.events: dict[str, trio.MemorySendChannel[Status]] = {}
        self._receivers: dict[str, trio.MemoryReceiveChannel[Status]] = {}

    def channel(self, backend_id: str) -> trio.MemorySendChannel[Status]:
        if backend_id not in self.events:
            send, receive = trio.open_memory_channel[Status](100)
            self.events[backend_id], self._receivers[backend_id] = send, receive
        return self.events[backend_id]

    @contextlib.asynccontextmanager
    async def _life(self) -> AsyncIterator[None]:
        self.started += 1
        yield

    def lifespan(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._life()

    async def watch(self, job: JobRef) -> AsyncIterator[Update]:
        self.channel(job.backend_id)
        receive = self._receivers[job.backend_id]
        self.watching.add(job.id)
        try:
            while True:
                if self.crash_at is not None and trio.current_time() >= self.crash_at:
                    self.crash_at = None
                    raise RuntimeError("watcher crashed")
                status = None
                with trio.move_on_after(1.0):
                    status = await receive.receive()
                if status is not None:
                    yield Update(job.id, status)
        finally:
            self.watching.discard(job.id)
