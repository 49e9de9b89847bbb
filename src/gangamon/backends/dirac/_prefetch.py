"""Output sandboxes fetched as soon as a poll sees a job end, beside the rest of its work.

A Done job: the engine finalises it only once its move to completing is stored, and that move
waits for the job's details (two more bulk calls). A download started by the poll itself
overlaps both; `finalise` then takes its outcome. A download that failed, or was never
started, is left to `finalise` to do itself (with the engine's retries).

A Failed job (Ganga's `failed_sandbox_download`): its download runs after it is failed, and
nothing waits for it; a failure is logged.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import trio

log = logging.getLogger("gangamon.dirac")


class _Fetch:
    def __init__(self) -> None:
        self.done = trio.Event()
        #: What the download left ("output in ..."), or None if it failed.
        self.where: str | None = None


class SandboxPrefetch:
    """Downloads started early, each holding a token of `limiter`, inside `running()`."""

    def __init__(
        self, download: Callable[[int, Path], Awaitable[str]], limiter: trio.CapacityLimiter
    ) -> None:
        """`download(dirac_id, target)` fetches one job's sandboxes and unpacks them in
        `target`; says where. `limiter` is shared with the backend's other finalisation calls,
        so that early downloads add none to their bound."""
        self._download = download
        self._limiter = limiter
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

    def start(self, dirac_id: int, target: Path) -> None:
        """Start downloading `dirac_id`'s sandboxes into `target`, for `take`, if a token of
        the limiter is free now, unless already started (or outside `running()`).

        Never queued: when many jobs end at once the finalisers download them in their turn,
        each under its deadline, rather than wait behind thousands of early downloads (at
        20,000 jobs they passed their deadlines, and the waiting tasks held 100 MB).
        """
        if self._nursery is None or dirac_id in self._fetches:
            return
        fetch = _Fetch()
        # The token is taken here, not by the task once it runs: a poll starts the downloads
        # of all its Done jobs in one go, each of them saw the same free token, and all but
        # the first then waited in the limiter, a task each (about 4.7 KB apiece).
        try:
            self._limiter.acquire_on_behalf_of_nowait(fetch)
        except trio.WouldBlock:  # (a freed token goes to a waiter at once)
            return
        self._fetches[dirac_id] = fetch
        self._nursery.start_soon(self._run, dirac_id, target, fetch)

    def start_detached(
        self, dirac_id: int, target: Path, done: Callable[[Path], None] | None = None
    ) -> None:
        """Download `dirac_id`'s sandboxes into `target`, then call `done(target)` in a
        worker thread; nothing takes the outcome."""
        if self._nursery is not None:
            self._nursery.start_soon(self._run_detached, dirac_id, target, done)

    async def take(self, dirac_id: int) -> str | None:
        """Wait for the early download of `dirac_id` and say where it went; None if none was
        started or it failed. Cancelled (a finalisation past its deadline, while the download
        waits its turn): the download is left for the next take."""
        fetch = self._fetches.get(dirac_id)
        if fetch is None:
            return None
        await fetch.done.wait()
        self._fetches.pop(dirac_id, None)
        return fetch.where

    async def _run(self, dirac_id: int, target: Path, fetch: _Fetch) -> None:
        """The download, holding the token `start` took for it."""
        try:
            fetch.where = await self._download(dirac_id, target)
        except Exception as e:  # finalise downloads it again, and reports what goes wrong
            log.debug("early download of DIRAC job %d's sandbox failed: %r", dirac_id, e)
        finally:
            self._limiter.release_on_behalf_of(fetch)
            fetch.done.set()

    async def _run_detached(
        self, dirac_id: int, target: Path, done: Callable[[Path], None] | None
    ) -> None:
        try:
            async with self._limiter:
                await self._download(dirac_id, target)
                if done is not None:
                    await trio.to_thread.run_sync(done, target)
        except Exception as e:
            log.warning("DIRAC job %d failed; its sandbox could not be downloaded: %s", dirac_id, e)
