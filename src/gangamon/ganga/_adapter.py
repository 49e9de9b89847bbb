"""Every other Ganga backend, run through the adapters on Ganga's own monitoring code.

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
import functools
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from .._status import Status, UnknownStatus, parse_status
from .._store import NewJob
from ..backends._adapters import AsyncioBackend, ThreadedBackend
from ..backends._protocol import Backend, BackendSettings, JobRef, Update
from ._family import poll_interval
from ._writer import Applier, PlainApplier

log = logging.getLogger("gangamon.ganga")

#: The Ganga job object a poll asks about, by its gangamon job.
Resolve = Callable[[JobRef], Any]


class AdapterFamily:
    """Claims every Ganga backend plugin no earlier family has taken; asked last.

    A job is tracked under its Ganga id ("3", "3.1"): a poll finds its object through
    `resolve(backend_name, ref)`, which the service answers from the jobs it has registered
    (before tracking them, so that the first poll finds them).
    """

    def __init__(
        self,
        classes: Callable[[], Mapping[str, type]],
        poll_config: Any,
        resolve: Callable[[str, JobRef], Any],
    ) -> None:
        self._classes = classes
        self._poll_config = poll_config
        self._resolve = resolve
        self._names: frozenset[str] = frozenset()

    def claims(self, backend_name: str, backend: Any) -> bool:
        return backend_name in self._names

    def backends(self, taken: Collection[str] = ()) -> list[Backend]:
        """One adapter per Ganga backend plugin but those named in `taken` (the backends of
        the families before this one: engine backend names are unique). An idle one costs
        two sleeping tasks."""
        built = [
            adapter_backend(
                name,
                cls,
                functools.partial(self._resolve, name),
                BackendSettings(
                    poll_interval=poll_interval(self._poll_config, name),
                    call_deadline=600.0,
                    concurrency=2,
                ),
            )
            for name, cls in self._classes().items()
            if name not in taken
        ]
        self._names = frozenset(backend.name for backend in built)
        return built

    def new_job(self, job: Any, backend_name: str, start: Status) -> tuple[NewJob, Applier]:
        return NewJob(backend_name, str(job.getFQID(".")), start), PlainApplier()


def adapter_backend(
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


class _LazyAsyncioBackend(AsyncioBackend):
    """Opens its trio-asyncio loop per call, not for the backend's life: most sessions never
    have a job on such a backend, and importing trio_asyncio changes what
    asyncio.new_event_loop() returns for the whole process."""

    def lifespan(self) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    async def poll(self, jobs: Sequence[JobRef]) -> Sequence[Update]:
        async with self._loop():
            return await super().poll(jobs)
