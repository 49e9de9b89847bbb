"""Output sandboxes fetched as soon as a poll sees a job Done, beside the rest of its work.

The engine finalises a job only once its move to completing is stored, and that move waits
for the job's details (two more bulk calls). A download started by the poll itself overlaps
both; `finalise` then takes its outcome. A download that failed, or was never started, is
left to `finalise` to do itself (with the engine's retries).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import trio

log = logging.getLogger("gangamon.dirac")


class _Fetch:
    def __init__(self) -> None:
        self.done = trio.Event()
        #: What the download left ("output in ..."), or None if it failed.
        self.where: str | None = None


class SandboxPrefetch:
    """Downloads started early, at most `limit` at a time, inside `running()`."""

    def __init__(self, download: Callable[[int], Awaitable[str]], limit: int) -> None:
        """`download(dirac_id)` fetches and unpacks one job's sandboxes; says where."""
        self._download = download
        self._limiter = trio.CapacityLimiter(limit)
        self._fetches: dict[int, _Fetch] = {}
        self._nursery: trio.Nursery | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Downloads can start while inside; those still running at the end are abandoned
        (their jobs are downloaded again by `finalise`)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                yield
            finally:
                self._nursery = None
                nursery.cancel_scope.cancel()
                self._fetches.clear()

    def start(self, dirac_id: int) -> None:
        """Start downloading `dirac_id`'s sandboxes, unless already started (or outside
        `running()`)."""
        if self._nursery is not None and dirac_id not in self._fetches:
            self._fetches[dirac_id] = fetch = _Fetch()
            self._nursery.start_soon(self._run, dirac_id, fetch)

    async def take(self, dirac_id: int) -> str | None:
        """Wait for the early download of `dirac_id` and say where it went; None if none was
        started or it failed."""
        fetch = self._fetches.pop(dirac_id, None)
        if fetch is None:
            return None
        await fetch.done.wait()
        return fetch.where

    async def _run(self, dirac_id: int, fetch: _Fetch) -> None:
        try:
            async with self._limiter:
                fetch.where = await self._download(dirac_id)
        except Exception as e:  # finalise downloads it again, and reports what goes wrong
            log.debug("early download of DIRAC job %d's sandbox failed: %r", dirac_id, e)
        finally:
            fetch.done.set()
