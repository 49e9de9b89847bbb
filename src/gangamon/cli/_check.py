"""`gangamon track --check`: the ids the backend itself does not know, asked before storing."""

from __future__ import annotations

from collections.abc import Sequence

import trio

from .._errors import GangamonError
from .._status import Status
from ..backends import Backend, JobRef


async def unknown_ids(backend: Backend, ids: Sequence[str]) -> list[str]:
    """The ids among `ids` that `backend` does not report on, asked in its chunks, inside its
    lifespan and under its deadline. A backend that does not poll (local jobs, known by their
    directories) knows them all."""
    if not backend.polls:
        return []
    settings = backend.settings
    reported: set[int] = set()
    refs = [JobRef(i, backend_id, Status.SUBMITTED) for i, backend_id in enumerate(ids)]
    async with backend.lifespan():
        for start in range(0, len(refs), settings.chunk_size):
            chunk = refs[start : start + settings.chunk_size]
            try:
                with trio.fail_after(settings.call_deadline):
                    updates = await backend.poll(chunk)
            except trio.TooSlowError:
                raise GangamonError(
                    f"backend {backend.name} did not answer within {settings.call_deadline:g} s"
                ) from None
            reported.update(update.job for update in updates)
    return [ref.backend_id for ref in refs if ref.id not in reported]
