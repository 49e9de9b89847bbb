"""A job's output fetched again, outside any monitor: after its finalisation failed for good
(an outage longer than the retry limit), or to have it once more.

Only the download is the backend's; the store changes only for a job whose finalisation
failed, which completes once its output is in (compare-and-set: a monitor running on the
store meanwhile is not disturbed, it no longer tracks the job).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._astore import AsyncStore
from ._control import call_on, of_backend
from ._errors import GangamonError
from ._jobtasks import FINALISATION_FAILED
from ._status import Status
from ._store import Outcome, Transition
from .backends._protocol import Backend


@dataclass(frozen=True, slots=True)
class Fetched:
    job: int
    #: Where the output went, as the backend says.
    reason: str
    #: The job was failed by its finalisation and is completed now.
    completed: bool


async def fetch_output(store: AsyncStore, backend: Backend, jobs: Sequence[int]) -> list[Fetched]:
    """Finalise `jobs` of `backend` once more, one after the other, inside its lifespan and
    under its call deadline. `GangamonError` naming the first job that cannot be fetched
    (not the backend's, nothing to fetch, the backend's own error)."""
    if not backend.finalises:
        raise GangamonError(f"backend {backend.name} has no output to fetch")
    records = [of_backend(await store.get(job), backend) for job in jobs]
    fetched = []
    async with backend.lifespan():
        for record in records:
            update = await call_on(record, backend, backend.finalise, late="no output")
            completed = False
            if record.status == Status.FAILED and update.status == Status.COMPLETED:
                journal = await store.journal(job=record.id)
                if journal and journal[-1].reason.startswith(FINALISATION_FAILED):
                    done = Transition(
                        record.id,
                        Status.FAILED,
                        Status.COMPLETED,
                        update.native_status,
                        f"output fetched again: {update.reason}",
                    )
                    [outcome] = await store.apply([done])
                    completed = outcome is Outcome.APPLIED
            fetched.append(Fetched(record.id, update.reason, completed))
    return fetched
