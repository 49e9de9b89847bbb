"""What the engine asks of a backend, and what a backend tells it.

A backend knows its batch system or grid, not the engine: it answers `poll` for many jobs at
once, and optionally pushes changes (`watch`), does the work after completion (`finalise`) and
kills. The engine owns scheduling, limits, deadlines, retries and the store.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass

import msgspec

from .._errors import GangamonError
from .._status import Status

# JobRef and Update are msgspec structs, not frozen dataclasses: a sweep makes an Update per
# job polled, and a frozen dataclass takes ten times as long to build (0.63 vs 0.06 us, half of
# the engine's idle cost per job). Untracked by the garbage collector: their fields (numbers,
# strings, statuses) cannot form cycles.


class JobRef(msgspec.Struct, frozen=True, gc=False):
    """A job as a backend sees it: gangamon's id, the backend's own id, the stored status."""

    id: int
    backend_id: str
    status: Status
    native_status: str | None = None


class Update(msgspec.Struct, frozen=True, gc=False):
    """A backend's report on one job: its status now, in Ganga's terms and the backend's."""

    job: int
    status: Status
    native_status: str | None = None
    reason: str = ""
    #: When the change happened, as the backend knows it (Unix time), if it does: feeds the
    #: time-to-detect figures.
    changed: float | None = None
    #: What else the backend knows of the job (site, times, output data...): stored with the
    #: change in the journal, for its readers (the Ganga shim copies it onto Ganga's job).
    details: dict[str, object] | None = None


@dataclass(frozen=True, slots=True)
class BackendSettings:
    """How the engine drives one backend.

    The poll interval adapts: every sweep with an error or a timeout doubles it, up to
    `max_backoff` times the base; a clean sweep sets it back to the base.
    """

    poll_interval: float = 30.0
    #: Jobs per `poll` call (DIRAC's bulk calls take 1000 ids).
    chunk_size: int = 1000
    #: Calls in flight at once (a `trio.CapacityLimiter`).
    concurrency: int = 4
    #: Deadline of one call on our side, in seconds.
    call_deadline: float = 60.0
    #: Finalisations (output downloads...) in flight at once.
    finalise_concurrency: int = 4
    max_backoff: float = 8.0
    #: First delay before restarting a crashed backend; doubles per crash, with jitter.
    restart_delay: float = 1.0
    max_restart_delay: float = 60.0
    #: Seconds between the polls of jobs whose end is near (`Backend.ending`); None: a fifth
    #: of the poll interval, at least 1 s (at most the poll interval).
    ending_interval: float | None = None
    #: Seconds a finalisation that fails on a transient error (the connection, a deadline, a
    #: refused or expired proxy) is retried, the job kept completing, before it is failed.
    finalise_retry_limit: float = 86400.0
    #: For a backend that answers `Backend.changed`: seconds between the sweeps of every
    #: job, the backstop that bounds any change the deltas miss. Between them a sweep polls
    #: only the jobs `changed` names.
    full_sweep: float = 600.0

    def __post_init__(self) -> None:
        positive = ["poll_interval", "call_deadline", "restart_delay", "max_restart_delay",
                    "finalise_retry_limit", "full_sweep"]  # fmt: skip
        if self.ending_interval is not None:
            positive.append("ending_interval")
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 < value < math.inf):
                raise ValueError(f"backend setting {name} must be a positive number, not {value!r}")
        for name in ("chunk_size", "concurrency", "finalise_concurrency"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"backend setting {name} must be an integer >= 1, not {value!r}")
        if not self.max_backoff >= 1:
            raise ValueError(f"backend setting max_backoff must be >= 1, not {self.max_backoff!r}")

    @property
    def ending_poll_interval(self) -> float:
        """Seconds between the polls of jobs whose end is near."""
        if self.ending_interval is not None:
            return min(self.ending_interval, self.poll_interval)
        return min(max(self.poll_interval / 5, 1.0), self.poll_interval)


class BackendError(GangamonError):
    """A backend call failed in a way the backend understood (the engine counts and retries)."""


class BackendUnavailable(BackendError):
    """The backend cannot work until a person acts (a missing or expired proxy, no binary).

    The engine reports it once, shows it in the backend's statistics, and retries at the
    longest restart delay rather than crash-looping.
    """


class Backend:
    """Base of every backend. Subclasses implement `poll`; the rest is optional.

    `name` is the backend's name in the store (`NewJob.backend`).
    """

    name: str = "backend"
    settings: BackendSettings = BackendSettings()
    #: Whether `poll` answers: the engine then sweeps at the poll interval.
    polls: bool = True
    #: Whether `watch` pushes changes: the engine then runs one watch task per job.
    watches: bool = False
    #: Whether completed jobs need `finalise`: the engine then moves them through completing.
    finalises: bool = False
    #: Whether `launch` starts jobs (`gangamon submit`).
    launches: bool = False
    #: Native statuses just before a job's end (DIRAC's Completing: the output is being
    #: uploaded): jobs in one are polled every `settings.ending_poll_interval`, not only at
    #: the sweeps, so that their end is seen sooner.
    ending: frozenset[str] = frozenset()
    #: When the credentials the backend uses expire (Unix time), where it knows.
    credentials_expiry: float | None = None
    #: Whether `changed` answers: between full sweeps the engine then polls only the jobs
    #: it names.
    deltas: bool = False

    async def poll(self, jobs: Sequence[JobRef]) -> Sequence[Update]:
        """Report the current status of `jobs`. Jobs the backend does not know are left out.

        Runs under the backend's limiter and call deadline; on cancellation it must stop
        promptly or be safe to abandon (it only reads).
        """
        raise NotImplementedError

    async def changed(self, since: float, jobs: Sequence[JobRef]) -> Collection[str] | None:
        """The backend ids among `jobs` that may have changed since `since` (trio time: the
        start of the last poll of them that succeeded), or None when the backend cannot tell
        now (the engine then polls them all).

        Runs under the backend's limiter and call deadline, as `poll` does.
        """
        return None

    def watch(self, job: JobRef) -> AsyncIterator[Update]:
        """Yield each change of `job` as it happens; end when the job is over.

        Cancelled when the job is untracked or the monitor stops.
        """
        raise NotImplementedError

    async def finalise(self, job: JobRef) -> Update:
        """Do the work after completion (download output...); return completed or failed.

        Must be idempotent: after a crash it runs again for jobs left in completing.
        Runs under the finalise limiter and the call deadline; cancelled on stop.
        """
        return Update(job.id, Status.COMPLETED, job.native_status, "nothing to finalise")

    async def kill(self, job: JobRef) -> None:
        """Ask the backend to kill `job`. Never abandoned on cancellation."""
        raise BackendError(f"backend {self.name!r} cannot kill jobs")

    async def launch(self, command: Sequence[str]) -> str:
        """Start `command` (an argument list, never a shell string) as a new job; return its
        backend id. Only if `launches`. Cancelled: the launch is waited for, not abandoned."""
        raise NotImplementedError

    def lifespan(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Held open while the backend is monitored (a client session, an asyncio loop...)."""
        return contextlib.nullcontext()
