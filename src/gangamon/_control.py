"""Jobs killed or untracked outside any monitor: `gangamon kill` and `untrack`, beside a running
`gangamon run` or without one.

The store changes by compare-and-set from the status read, so a monitor running on it is not
disturbed: it follows the change at its next look at the store (`Monitor.load_new`) and stops
polling or watching the job. An untracked job becomes `unknown`: nothing follows it any more.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import trio

from ._astore import AsyncStore
from ._errors import GangamonError
from ._status import ACTIVE, Status
from ._store import JobRecord, Outcome, Transition
from .backends._protocol import Backend, JobRef

#: The journal's reason for a job untracked by hand.
UNTRACKED = "untracked: no longer monitored"
#: Tries at storing a move against a status a monitor keeps changing.
ATTEMPTS = 3

T = TypeVar("T")


class Done(enum.Enum):
    KILLED = "killed"
    UNTRACKED = "untracked"
    #: It had ended (or was not active) before: nothing done.
    ENDED = "had ended"


@dataclass(frozen=True, slots=True)
class Controlled:
    job: int
    done: Done
    #: The stored status after it.
    status: Status


async def kill_jobs(
    store: AsyncStore,
    backend: Backend,
    jobs: Sequence[int],
    each: Callable[[Controlled], object] = lambda _: None,
) -> list[Controlled]:
    """Kill `jobs` of `backend` through it, one after the other inside its lifespan and under
    its call deadline, then store each as killed; a job that is not active is left alone.
    `each` is told of every job as it is done.

    `GangamonError` naming the first job that is not the backend's or whose kill fails (the
    ones before it are killed, stored and told of). Cancelled: a kill under way is waited for
    (a kill is a write), then its job is stored.
    """
    records = [of_backend(await store.get(job), backend) for job in jobs]
    done: list[Controlled] = []

    def tell(controlled: Controlled) -> None:
        done.append(controlled)
        each(controlled)

    async with backend.lifespan():
        for record in records:
            if record.status not in ACTIVE:
                tell(Controlled(record.id, Done.ENDED, record.status))
                continue
            # A kill is a write: shielded, so that a cancel waits for it.
            await call_on(record, backend, backend.kill, late="not killed", shield=True)
            tell(await _move(store, record, Status.KILLED, "killed", Done.KILLED))
    return done


async def untrack_jobs(store: AsyncStore, jobs: Sequence[int]) -> list[Controlled]:
    """Store each active job of `jobs` as unknown (nothing monitors it any more); the others
    are left alone. `UnknownJob` for an id the store does not hold, before anything changes."""
    records = [await store.get(job) for job in jobs]
    done = []
    for record in records:
        if record.status not in ACTIVE:
            done.append(Controlled(record.id, Done.ENDED, record.status))
        else:
            done.append(await _move(store, record, Status.UNKNOWN, UNTRACKED, Done.UNTRACKED))
    return done


def of_backend(record: JobRecord, backend: Backend) -> JobRecord:
    """`record`, if it is a job of `backend`; else `GangamonError` naming it."""
    if record.backend != backend.name or not record.backend_id:
        raise GangamonError(f"job {record.id} is not a job of backend {backend.name}")
    return record


async def call_on(
    record: JobRecord,
    backend: Backend,
    call: Callable[[JobRef], Awaitable[T]],
    *,
    late: str,
    shield: bool = False,
) -> T:
    """`call` of `record`'s job under the backend's call deadline; `GangamonError` naming the
    job for the backend's error, or for the deadline ("job 5: <late> within 120 s")."""
    ref = JobRef(record.id, record.backend_id or "", record.status, record.native_status)
    deadline = backend.settings.call_deadline
    try:
        with trio.CancelScope(shield=shield), trio.fail_after(deadline):
            result = await call(ref)
    except trio.TooSlowError:
        raise GangamonError(f"job {record.id}: {late} within {deadline:g} s") from None
    except GangamonError as e:
        raise GangamonError(f"job {record.id}: {e}") from None
    return result


async def move_from_stored(
    store: AsyncStore, job: int, status: Status, new: Status, reason: str
) -> tuple[Status, Outcome]:
    """Move `job`, last known in `status`, to `new` by compare-and-set, tried again from the
    stored status while another writer (a monitor) moves it, `ATTEMPTS` times at most; (the
    status it was moved from, or stays in, and the outcome). A job that left the active
    statuses meanwhile keeps where it is: (that status, UNCHANGED)."""
    for _ in range(ATTEMPTS):
        [outcome] = await store.apply([Transition(job, status, new, reason=reason)])
        if outcome is not Outcome.STALE:
            return status, outcome
        status = (await store.get(job)).status
        if status not in ACTIVE:
            return status, Outcome.UNCHANGED
    return status, Outcome.STALE


async def _move(
    store: AsyncStore, record: JobRecord, new: Status, reason: str, done: Done
) -> Controlled:
    """`record`'s job moved to `new` (see `move_from_stored`); one that a monitor moved there
    first (from what the backend said) is done all the same, one that ended otherwise is left."""
    status, outcome = await move_from_stored(store, record.id, record.status, new, reason)
    if outcome is Outcome.APPLIED or status == new:
        return Controlled(record.id, done, new)
    if outcome is Outcome.UNCHANGED:
        return Controlled(record.id, Done.ENDED, status)
    if outcome is Outcome.STALE:
        raise GangamonError(f"job {record.id}: its status kept changing; try again")
    raise GangamonError(
        f"job {record.id}: the store refused {status.value} -> {new.value} ({outcome.value})"
    )
