"""A blocking facade over the trio engine, for synchronous hosts (Ganga, scripts) and asyncio.

The engine runs on trio in a daemon thread started by `anyio.from_thread.start_blocking_portal`.
Every blocking method submits a task to that thread and waits for it; if the wait is
interrupted (Ctrl-C raises KeyboardInterrupt in the waiting thread) the trio task is cancelled
too, rather than left running as a plain `portal.call` would. The `*_async` methods return
awaitables for asyncio hosts: they wait on the task's future without blocking the host's loop,
and cancelling them cancels the trio task.

Stopping is bounded: `stop()` asks the monitor to stop (it gives calls in flight `grace`
seconds), waits at most `deadline` seconds for that, then cancels it and abandons the thread
if even that hangs. The thread is a daemon and interpreter exit calls `stop()`, so exit never
waits on monitoring longer than the deadline.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from pathlib import Path
from typing import Any, TypeVar, TypeVarTuple, Unpack

import anyio.from_thread
import trio

from ._engine import Monitor, MonitorStatistics
from ._errors import GangamonError, single_exception
from ._status import Status
from ._store import JobRecord, JobStore, JournalEntry, NewJob, open_store
from .backends._protocol import Backend

log = logging.getLogger("gangamon.embed")

T = TypeVar("T")
Args = TypeVarTuple("Args")


class NotRunning(GangamonError):
    """A call on an embedded monitor that is not running (never started, or stopped)."""


class EmbeddedMonitor:
    """A `Monitor` running in a thread of its own, driven by blocking calls.

    `start()` and `stop()` are idempotent and thread-safe; every other method may be called
    from any thread except the engine's own (callbacks run there: they must not call back in).
    """

    def __init__(
        self,
        store: JobStore | Path | str,
        backends: Sequence[Backend] | Callable[[], Sequence[Backend]],
        *,
        grace: float = 1.0,
        deadline: float = 2.0,
        name: str = "gangamon",
    ) -> None:
        """`backends` may be a callable, called in the engine's thread: trio objects some
        backends create then belong to that thread. `deadline` bounds `stop()`."""
        self._store_arg = store
        self._backends = backends
        self._grace = grace
        self.deadline = deadline
        self._name = name
        self._lock = threading.RLock()
        self._callbacks: list[Callable[[JournalEntry], object]] = []
        self._portal_cm: contextlib.AbstractContextManager[anyio.from_thread.BlockingPortal] | None
        self._portal_cm = None
        self._portal: anyio.from_thread.BlockingPortal | None = None
        self._monitor: Monitor | None = None
        self._run: concurrent.futures.Future[None] | None = None
        self._store: JobStore | None = None
        #: Whether we opened the store (then we close it); a store object passed in is the caller's.
        self._owns_store = not isinstance(store, JobStore)

    # -- life --------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._run is not None and not self._run.done()

    def start(self) -> EmbeddedMonitor:
        """Start the engine thread and the monitor; return once every backend is started.
        Does nothing if already running; after a crash, clears what is left and starts anew."""
        with self._lock:
            if self.running:
                return self
            self.stop()  # whatever a crashed run left behind
            portal_cm = anyio.from_thread.start_blocking_portal("trio", name=self._name)
            portal = portal_cm.__enter__()
            try:
                self._store = (
                    self._store_arg
                    if isinstance(self._store_arg, JobStore)
                    else open_store(self._store_arg)
                )
                monitor = portal.call(self._make_monitor, self._store)
                self._run, _ = portal.start_task(monitor.run, name="gangamon-monitor")
            except BaseException:
                _abandon(portal_cm, portal, timeout=self.deadline)
                if self._store is not None and self._owns_store:
                    self._store.close()  # opened above, for a monitor that never ran
                self._store = None
                raise
            self._portal_cm, self._portal, self._monitor = portal_cm, portal, monitor
            atexit.register(self.stop)
            return self

    def _make_monitor(self, store: JobStore) -> Monitor:
        backends = self._backends() if callable(self._backends) else self._backends
        monitor = Monitor(store, backends, grace=self._grace)
        for callback in self._callbacks:
            monitor.on_change(callback)
        return monitor

    def stop(self, deadline: float | None = None) -> bool:
        """Stop monitoring within `deadline` seconds (default: the constructor's).

        The monitor gets most of the deadline to stop gracefully (calls in flight finish,
        received reports are written), then is cancelled. Returns True if it ended either
        way, False if even cancellation did not end it in time (a call that cannot be
        abandoned hangs): its daemon thread is then left behind and dies with the
        interpreter. Idempotent; a store object passed in is left open.
        """
        deadline = self.deadline if deadline is None else deadline
        with self._lock:
            atexit.unregister(self.stop)
            portal, portal_cm, run, monitor = (
                self._portal,
                self._portal_cm,
                self._run,
                self._monitor,
            )
            self._portal = self._portal_cm = self._run = self._monitor = None
            if portal is None or portal_cm is None or run is None or monitor is None:
                return True
            end = time.monotonic() + deadline
            # Most of the deadline for a graceful stop, the rest for cancellation.
            graceful_end = end - min(0.25, deadline / 4)
            with contextlib.suppress(RuntimeError):  # the loop may already be gone
                portal.start_task_soon(_sync_in_trio, monitor.stop)
            try:
                run.result(timeout=max(0.0, graceful_end - time.monotonic()))
            except concurrent.futures.TimeoutError:
                run.cancel()
            except BaseException as exc:  # the monitor crashed: say so, stop anyway
                if not isinstance(exc, concurrent.futures.CancelledError):
                    log.error("gangamon monitor ended with %r", single_exception(exc))
            clean = _abandon(portal_cm, portal, timeout=max(0.05, end - time.monotonic()))
            if self._store is not None and self._owns_store and clean:
                self._store.close()
            self._store = None
            return clean

    def __enter__(self) -> EmbeddedMonitor:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- blocking calls ------------------------------------------------------------------------

    def call(self, async_fn: Callable[[Unpack[Args]], Awaitable[T]], *args: *Args) -> T:
        """Run `async_fn(*args)` in the engine's thread and wait for it.

        Interrupted (KeyboardInterrupt, or any exception raised in the waiting thread): the
        trio task is cancelled too, even if the interruption came while it was being
        spawned, then the exception propagates.
        """
        portal = self._portal
        if portal is None:
            raise NotRunning("gangamon is not running: call start() first")
        call = _CancellableCall()
        try:
            # Spawning waits for the task to start: Ctrl-C may land inside it, before we
            # hold a future to cancel. The call object covers that window.
            future: concurrent.futures.Future[T] = portal.start_task_soon(call.run, async_fn, *args)
            return future.result()
        except BaseException:
            call.cancel(portal)
            raise

    def call_soon(
        self, async_fn: Callable[[Unpack[Args]], Awaitable[T]], *args: *Args
    ) -> concurrent.futures.Future[T]:
        """Start `async_fn(*args)` in the engine's thread; return its future at once.
        Cancelling the future cancels the task."""
        portal = self._portal
        if portal is None:
            raise NotRunning("gangamon is not running: call start() first")
        return portal.start_task_soon(_unwrapped, async_fn, *args)

    @property
    def monitor(self) -> Monitor:
        """The engine's `Monitor` (to be used only from the engine's thread)."""
        if self._monitor is None:
            raise NotRunning("gangamon is not running: call start() first")
        return self._monitor

    def track(self, jobs: Sequence[NewJob]) -> list[int]:
        """Store `jobs` and monitor the active ones; return their gangamon ids (an active job
        already monitored under the same backend id keeps its id: see `Monitor.track`)."""
        return self.call(self.monitor.track, jobs)

    def untrack(self, jobs: Collection[int]) -> None:
        """Stop monitoring `jobs` (their store records stay)."""
        self.call(self.monitor.untrack, jobs)

    def record(self, job: int) -> JobRecord:
        """The stored record of `job`; `UnknownJob` naming it if there is none."""
        return self.call(self.monitor.store.get, job)

    def status(self, job: int) -> Status:
        return self.record(job).status

    def wait_for(self, job: int, statuses: Collection[Status], timeout: float = math.inf) -> Status:
        """Block until `job` is in one of `statuses`; `TimeoutError` after `timeout` s."""
        return self.call(self.monitor.wait_for, job, statuses, timeout)

    def kill(self, job: int) -> None:
        self.call(self.monitor.kill, job)

    def statistics(self) -> MonitorStatistics:
        return self.call(_sync_in_trio, self.monitor.statistics)

    def on_change(self, callback: Callable[[JournalEntry], object]) -> None:
        """Call `callback(entry)` in the engine's thread after each commit; it must not block
        (hand the entry to a queue). Registered before `start()`, it sees every change."""
        self._callbacks.append(callback)
        if self._portal is not None and self._monitor is not None:
            self.call(_sync_in_trio, self._monitor.on_change, callback)

    # -- for asyncio hosts -----------------------------------------------------------------------

    def _awaitable(
        self, async_fn: Callable[[Unpack[Args]], Awaitable[T]], *args: *Args
    ) -> Awaitable[T]:
        return asyncio.wrap_future(self.call_soon(async_fn, *args))

    async def track_async(self, jobs: Sequence[NewJob]) -> list[int]:
        """`track` without blocking the asyncio loop; cancelled, it cancels the trio task."""
        return await self._awaitable(self.monitor.track, jobs)

    async def status_async(self, job: int) -> Status:
        return (await self._awaitable(self.monitor.store.get, job)).status

    async def wait_for_async(
        self,
        job: int,
        statuses: Collection[Status],
        timeout: float = math.inf,  # noqa: ASYNC109 - the caller's bound, as in Monitor.wait_for
    ) -> Status:
        """`wait_for` without blocking the asyncio loop; cancelled, it cancels the trio task."""
        return await self._awaitable(self.monitor.wait_for, job, statuses, timeout)


class _CancellableCall:
    """One blocking call's trio task, cancellable from the calling thread at any moment."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._scope: trio.CancelScope | None = None
        self._cancelled = False

    async def run(self, async_fn: Callable[[Unpack[Args]], Awaitable[T]], *args: *Args) -> T:
        with trio.CancelScope() as scope:
            with self._lock:
                self._scope = scope
                if self._cancelled:
                    scope.cancel()
            return await _unwrapped(async_fn, *args)
        raise NotRunning("the call was cancelled")  # the caller has gone; nobody reads this

    def cancel(self, portal: anyio.from_thread.BlockingPortal) -> None:
        with self._lock:
            self._cancelled = True
            scope = self._scope
        if scope is not None:
            with contextlib.suppress(RuntimeError):  # the engine has stopped already
                portal.start_task_soon(_cancel, scope)


async def _cancel(scope: trio.CancelScope) -> None:
    scope.cancel()


async def _unwrapped(async_fn: Callable[[Unpack[Args]], Awaitable[T]], *args: *Args) -> T:
    """Our exception-group policy at the public edge: a lone exception comes out bare."""
    try:
        return await async_fn(*args)
    except BaseExceptionGroup as group:
        raise single_exception(group) from None


async def _sync_in_trio(fn: Callable[[Unpack[Args]], T], *args: *Args) -> T:
    await trio.lowlevel.checkpoint()
    return fn(*args)


def _abandon(
    portal_cm: contextlib.AbstractContextManager[Any],
    portal: anyio.from_thread.BlockingPortal,
    *,
    timeout: float,
) -> bool:
    """Close the portal (cancelling what still runs) within `timeout` seconds, else leave its
    daemon thread behind. True if it closed in time."""
    del portal  # closing the context manager stops it
    closer = threading.Thread(
        target=_close_quietly, args=(portal_cm,), name="gangamon-close", daemon=True
    )
    closer.start()
    closer.join(timeout)
    if closer.is_alive():
        log.warning("gangamon's thread did not stop within %.1f s; left behind", timeout)
        return False
    return True


class _Closing(Exception):
    """Thrown into the portal's context manager: it then cancels the tasks still running
    (calls other threads are still waiting on), rather than waiting for them."""


def _close_quietly(portal_cm: contextlib.AbstractContextManager[Any]) -> None:
    try:
        portal_cm.__exit__(_Closing, _Closing(), None)
    except _Closing:
        pass
    except Exception:
        log.exception("closing gangamon's portal failed")
