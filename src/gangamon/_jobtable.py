"""The table of the jobs one backend still has to report on, as last stored."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, ValuesView

from ._status import Status
from .backends._protocol import JobRef


class JobTable:
    """Tracked jobs by id and by backend id, with when each one's newest applied report was
    observed, and counts by status kept up to date on every change (so that statistics cost
    nothing at 10^5 jobs)."""

    def __init__(self) -> None:
        self._jobs: dict[int, JobRef] = {}
        #: The job tracked under an id, if any: the dict's own lookup, called for every job of
        #: every poll (a method around it cost a tenth of a sweep's CPU).
        self.get: Callable[[int], JobRef | None] = self._jobs.get
        self._by_backend_id: dict[str, int] = {}
        #: The other jobs under a backend id that several tracked jobs share (the store may
        #: hold such twins, from two processes): rare, so kept apart from the index.
        self._also: dict[str, set[int]] = {}
        self._by_status: Counter[Status] = Counter()
        #: When the newest applied report of a job was observed: older ones are out of order.
        self.observed: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, job: object) -> bool:
        return job in self._jobs

    def __iter__(self) -> Iterator[int]:
        return iter(self._jobs)

    def values(self) -> ValuesView[JobRef]:
        return self._jobs.values()

    def tracking(self, backend_id: str) -> int | None:
        """The id of the job tracked under `backend_id`, if any."""
        return self._by_backend_id.get(backend_id)

    def put(self, job: JobRef) -> None:
        """Track `job`, or record its new status."""
        old = self._jobs.get(job.id)
        if old is not None:
            self._by_status[old.status] -= 1
            if old.backend_id != job.backend_id:
                self._unindex(old.backend_id, job.id)
        self._by_status[job.status] += 1
        self._jobs[job.id] = job
        held = self._by_backend_id.get(job.backend_id)
        if job.backend_id and held != job.id:
            self._by_backend_id[job.backend_id] = job.id
            if held is not None or job.backend_id in self._also:  # twins: rare
                others = self._also.setdefault(job.backend_id, set())
                others.discard(job.id)
                if held is not None:
                    others.add(held)
                if not others:
                    del self._also[job.backend_id]

    def remove(self, job: int) -> JobRef | None:
        """Stop tracking `job`; what was tracked, if anything."""
        gone = self._jobs.pop(job, None)
        if gone is not None:
            self._by_status[gone.status] -= 1
            self._unindex(gone.backend_id, job)
        self.observed.pop(job, None)
        return gone

    def _unindex(self, backend_id: str, job: int) -> None:
        """`job` is no longer tracked under `backend_id`; another job under it takes its place
        in the index."""
        others = self._also.get(backend_id)
        if self._by_backend_id.get(backend_id) == job:
            if others:
                self._by_backend_id[backend_id] = others.pop()
            else:
                self._by_backend_id.pop(backend_id, None)
        elif others:
            others.discard(job)
        if others is not None and not others:
            del self._also[backend_id]

    def by_status(self) -> dict[Status, int]:
        """How many jobs are tracked in each status (statuses with none left out)."""
        return {status: n for status, n in self._by_status.items() if n}
