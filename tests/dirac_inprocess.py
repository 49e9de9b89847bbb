"""The simulator's DIRAC services called in-process, on trio's clock: for tests in virtual
time (a MockClock), where no network may be waited on. Each call takes `latency` seconds,
its reply carries the server's Date as the HTTPS face sends it, and replies can be lost."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import trio

from gangamon.backends import BackendError
from gangamon.backends.dirac._deltas import get_jobs_since
from gangamon.backends.dirac._server_clock import ServerClock
from gangamon.backends.dirac._wire import JobState, job_states, unwrap
from gangamon.sim.dirac import DiracSim


class InProcessDirac:
    def __init__(self, sim: DiracSim, *, latency: float = 0.05, dates: bool = True) -> None:
        self.sim = sim
        self.latency = latency
        self.dates = dates
        self.proxy: Path | None = None
        self.server_clock = ServerClock()
        self.calls: Counter[str] = Counter()
        #: The next this many calls are answered by DIRAC but their replies lost.
        self.lose = 0
        #: Methods the server does not have.
        self.missing: set[str] = set()

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[InProcessDirac]:
        # Both wall clocks tied to trio's at once: under a MockClock the real time that ties
        # them hardly moves while trio's leaps.
        self.sim.wall.fix(trio.current_time())
        yield self

    async def call(self, system: str, service: str, method: str, *args: object) -> Any:
        self.calls[method] += 1
        sent = trio.current_time()
        await trio.sleep(self.latency / 2)
        if method in self.missing:
            result: dict[str, object] = {"OK": False, "Message": f"Unknown method {method}",
                                         "Errno": 38}  # fmt: skip
        else:
            handler = self.sim.services[f"{system}/{service}"]
            result = handler.call(method, list(args), trio.current_time())
        date = self.sim.http_date()
        await trio.sleep(self.latency / 2)
        if self.lose:
            self.lose -= 1
            raise BackendError(f"{method}: ReadError: connection reset")
        if self.dates:
            self.server_clock.observe(date, sent, trio.current_time())
        return unwrap(result)

    async def changed_since(
        self, owners: Sequence[str], cut: int
    ) -> tuple[set[str], dict[int, JobState]]:
        return await get_jobs_since(self, owners, cut)

    async def job_states(self, ids: list[int]) -> dict[int, JobState]:
        return job_states(
            await self.call("WorkloadManagement", "JobMonitoring", "getJobsStates", ids)
        )

    async def sandbox(self, location: str) -> bytes:
        raise BackendError("no sandboxes in-process")
