"""Ganga backends gangamon has no native backend for, run through the adapters.

Their `updateMonitoringInformation(jobs)` is Ganga's own code: it reads its system and sets
the jobs' statuses itself (calling `updateStatus` in the thread it runs in; that cannot be
moved without changing Ganga). gangamon calls it once per chunk of jobs (subjobs included,
in bulk), blocking ones in worker threads under the backend's limiter and deadline, asyncio
ones on a trio-asyncio loop, then reads the jobs' statuses back so that its store, waiters
and subscribers follow. The writer then finds each job already in its status and leaves it.

Blocking calls are never abandoned on cancellation: they change jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from .._status import UnknownStatus, parse_status
from ..backends._adapters import AsyncioBackend, ThreadedBackend
from ..backends._protocol import Backend, BackendSettings, JobRef, Update

log = logging.getLogger("gangamon.ganga")

#: gangamon id -> Ganga job object, for the jobs a poll asks about.
Resolve = Callable[[JobRef], Any]


def legacy_backend(
    name: str, backend_class: type, resolve: Resolve, settings: BackendSettings
) -> Backend:
    """A gangamon backend calling `backend_class.updateMonitoringInformation`."""
    update = backend_class.updateMonitoringInformation  # type: ignore[attr-defined]
    if asyncio.iscoroutinefunction(update):

        async def poll_async(jobs: Sequence[JobRef]) -> Sequence[Update]:
            pairs = _pairs(jobs, resolve)
            await update([job for _, job in pairs])
            return _read_back(pairs)

        return _LazyAsyncioBackend(name, poll_async, settings)

    def poll(jobs: Sequence[JobRef]) -> Sequence[Update]:
        pairs = _pairs(jobs, resolve)
        update([job for _, job in pairs])
        return _read_back(pairs)

    return ThreadedBackend(name, poll, settings, read_only=False)


def _pairs(jobs: Sequence[JobRef], resolve: Resolve) -> list[tuple[JobRef, Any]]:
    pairs = []
    for ref in jobs:
        job = resolve(ref)
        if job is not None:
            pairs.append((ref, job))
    return pairs


def _read_back(pairs: list[tuple[JobRef, Any]]) -> list[Update]:
    updates = []
    for ref, job in pairs:
        try:
            status = parse_status(job.status)
        except UnknownStatus as e:
            log.warning("Ganga job %d: %s", ref.id, e)
            continue
        native = getattr(getattr(job, "backend", None), "status", None)
        updates.append(
            Update(ref.id, status, native if isinstance(native, str) else None, "set by Ganga")
        )
    return updates


def poll_interval(config: Any, name: str) -> float:
    """Ganga's `[PollThread]` rate for backend `name`, or its default (30 s)."""
    try:
        value = config[name] if name in config else config["default_backend_poll_rate"]
        return float(value) if float(value) > 0 else 30.0
    except Exception:
        return 30.0


class _LazyAsyncioBackend(AsyncioBackend):
    """Opens its trio-asyncio loop per call, not for the backend's life: most sessions never
    have a job on such a backend, and importing trio_asyncio changes what
    asyncio.new_event_loop() returns for the whole process."""

    def lifespan(self) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    async def poll(self, jobs: Sequence[JobRef]) -> Sequence[Update]:
        async with self._loop():
            return await super().poll(jobs)
