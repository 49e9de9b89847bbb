"""Adapters that let existing code serve as a backend.

- `ThreadedBackend`: a blocking bulk poll (a legacy Ganga `updateMonitoringInformation`,
  DIRAC's DISET client) in worker threads.
- `AsyncioBackend`: an asyncio coroutine (Ganga's async backends) inside trio via trio-asyncio.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import trio

from .._extras import needs_extra
from ._protocol import Backend, BackendSettings, BackendUnavailable, JobRef, Update

BlockingPoll = Callable[[Sequence[JobRef]], Sequence[Update]]
AsyncioPoll = Callable[[Sequence[JobRef]], Awaitable[Sequence[Update]]]


class ThreadedBackend(Backend):
    """A blocking poll run through `trio.to_thread.run_sync`.

    The thread limiter has the backend's concurrency and belongs to this object, not to one
    monitor run: a thread abandoned on cancellation keeps its token until it really returns,
    so however often monitoring starts and stops, no more than `concurrency` threads exist.
    Polls are abandoned on cancellation only when `read_only` (the default); otherwise
    cancellation waits for the call to return.
    """

    def __init__(
        self,
        name: str,
        poll: BlockingPoll,
        settings: BackendSettings | None = None,
        *,
        read_only: bool = True,
    ) -> None:
        self.name = name
        self.settings = settings or BackendSettings()
        self._poll = poll
        self._read_only = read_only
        self.threads = trio.CapacityLimiter(self.settings.concurrency)

    async def poll(self, jobs: Sequence[JobRef]) -> Sequence[Update]:
        """Cancelled: abandons the thread if read-only, else waits for it to return."""
        return await trio.to_thread.run_sync(
            self._poll, jobs, limiter=self.threads, abandon_on_cancel=self._read_only
        )


class AsyncioBackend(Backend):
    """An asyncio coroutine poll, run on a trio-asyncio loop held open for the backend's life."""

    def __init__(
        self, name: str, poll: AsyncioPoll, settings: BackendSettings | None = None
    ) -> None:
        self.name = name
        self.settings = settings or BackendSettings()
        self._poll = poll

    @contextlib.asynccontextmanager
    async def _loop(self) -> AsyncIterator[None]:
        # Imported here, not at the top: importing trio_asyncio makes asyncio.new_event_loop()
        # return trio-asyncio loops in every thread, which an embedding host's own asyncio
        # code (Ganga's) must not get unless it runs an asyncio backend through us.
        try:
            import trio_asyncio
        except ModuleNotFoundError as e:
            if e.name != "trio_asyncio":
                raise
            raise BackendUnavailable(
                needs_extra(f"backend {self.name!r} (asyncio code)", "asyncio")
            ) from None

        async with trio_asyncio.open_loop():
            yield

    def lifespan(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._loop()

    async def poll(self, jobs: Sequence[JobRef]) -> Sequence[Update]:
        """Cancelled: the asyncio task is cancelled too."""
        import trio_asyncio

        return await trio_asyncio.aio_as_trio(self._poll)(jobs)  # type: ignore[no-any-return]
