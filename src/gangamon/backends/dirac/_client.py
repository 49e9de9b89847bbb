"""DIRAC's own Python client as a transport: its blocking calls in worker threads.

For sites where the DIRAC client is what users have (DIRACOS, /cvmfs). Each call runs
through `trio.to_thread.run_sync` under this transport's limiter; status calls only read, so
a call past its deadline is abandoned (its thread keeps its limiter token until it returns,
so hung calls never add up to more than `threads` threads).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import trio

from .._protocol import BackendError, BackendUnavailable
from ._deltas import get_jobs_since
from ._server_clock import ServerClock
from ._wire import DiracError, JobState, WireError, job_states


class DiracClientTransport:
    """Calls through DIRAC's `JobMonitoringClient` (or a generic `Client` for other services).

    DIRAC must be importable and initialised (`DIRAC.initialize(...)`) by the caller; `url`,
    if given, overrides the JobMonitoring URL from DIRAC's configuration.
    """

    def __init__(self, *, proxy: Path | None = None, url: str | None = None, threads: int = 8):
        self.proxy = proxy
        self.url = url
        self.threads = trio.CapacityLimiter(threads)
        #: DIRAC's client does not show the Date of its replies: never known.
        self.server_clock = ServerClock()

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[DiracClientTransport]:
        try:
            import DIRAC  # noqa: F401
        except ImportError:
            raise BackendUnavailable(
                "the DIRAC client is not installed (pip install DIRAC, or use DIRACOS)"
            ) from None
        yield self

    async def call(self, system: str, service: str, method: str, *args: object) -> Any:
        """One RPC in a worker thread; the S_OK value, or `DiracError`.

        Cancelled: the thread is abandoned (status calls only read).
        """

        def blocking() -> Any:
            if (system, service) == ("WorkloadManagement", "JobMonitoring"):
                from DIRAC.WorkloadManagementSystem.Client.JobMonitoringClient import (
                    JobMonitoringClient,
                )

                client = JobMonitoringClient()
                if self.url:
                    client.setServer(self.url)
            else:
                from DIRAC.Core.Base.Client import Client

                client = Client(url=f"{system}/{service}")
            return getattr(client, method)(*args)

        result = await trio.to_thread.run_sync(
            blocking, limiter=self.threads, abandon_on_cancel=True
        )
        if not isinstance(result, dict) or "OK" not in result:
            raise BackendError(f"DIRAC's {method} returned {result!r:.200}")
        if not result["OK"]:
            raise DiracError(str(result.get("Message")), int(result.get("Errno") or 0))
        return result.get("Value")

    async def changed_since(
        self, owners: Sequence[str], cut: int
    ) -> tuple[set[str], dict[int, JobState]]:
        """The ids of the owners' jobs changed at or after `cut` (getJobs)."""
        return await get_jobs_since(self, owners, cut)

    async def job_states(self, ids: list[int]) -> dict[int, JobState]:
        """getJobsStates for `ids`, checked into typed records; errors as `call`'s."""
        value = await self.call("WorkloadManagement", "JobMonitoring", "getJobsStates", ids)
        try:
            return job_states(value)
        except WireError as e:
            raise BackendError(f"DIRAC's getJobsStates: {e}") from None

    async def sandbox(self, location: str) -> bytes:
        """The tarball of a sandbox `SB:<SE>|<PFN>`, through DIRAC's SandboxStoreClient and
        the storage element it names (DIRAC's DIP storage needs no gfal2), in a worker thread.
        `DiracError` with DIRAC's message if it cannot be had.

        Cancelled: the thread is abandoned (it writes only a temporary file of DIRAC's).
        """

        def blocking() -> Any:
            from DIRAC.WorkloadManagementSystem.Client.SandboxStoreClient import (
                SandboxStoreClient,
            )

            return SandboxStoreClient().downloadSandbox(location, inMemory=True)

        result = await trio.to_thread.run_sync(
            blocking, limiter=self.threads, abandon_on_cancel=True
        )
        if not isinstance(result, dict) or not result.get("OK"):
            message = result.get("Message") if isinstance(result, dict) else result
            raise DiracError(f"download of sandbox {location}: {message}")
        return bytes(result["Value"])
